"""A search as a pipeline: retrieve from one index or fuse several, then optionally
rerank. ``rarx search`` and a service build the same stages from their options that a
pipeline file would name, so there is one path from a query to its ranking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rarx.index.base import Capability, Index
from rarx.index.fusion import RRF_K
from rarx.index.registry import has_capability
from rarx.llm import llm_name
from rarx.pipeline.pipeline import Pipeline
from rarx.pipeline.resources import Resources
from rarx.rerank import Reranker, make_reranker
from rarx.stages.base import Stage
from rarx.stages.fuse import FuseStage
from rarx.stages.rerank import RerankParams, RerankStage, llm_rerank_options
from rarx.stages.retrieve import RetrieveParams, RetrieveStage


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10  # hits per query in the result
    instruction: str = ""  # for the indexes that take instructions; the others ignore it
    threads: int = 1  # for the indexes that search queries in parallel
    fusion_depth: int = 1000  # hits taken from each index before fusing
    rrf_k: int = RRF_K
    docs: bool = True  # attach documents to the hits (text output, reranking)
    rerank: RerankParams | None = None  # rerank the top rerank.k hits
    strict: bool = False  # a reranking window that fails is an error, not kept in order


def search_pipeline(
    indexes: Sequence[Index], options: SearchOptions | None = None,
    resources: Resources | None = None,
) -> Pipeline:  # fmt: skip
    """Stages for ``indexes`` (already open, with their load options). The pipeline is
    strict: a failing query fails the call, as a search should. With ``resources``, a
    reranking LLM comes from there (loaded once, shared under its policy), not loaded anew."""
    o = options or SearchOptions()
    if not indexes:
        raise ValueError("search_pipeline needs at least one index")
    depth = max(o.k, o.rerank.k) if o.rerank else o.k
    docs = o.docs or o.rerank is not None

    def params(index: Index, k: int) -> RetrieveParams:
        instruction = o.instruction if has_capability(index, Capability.INSTRUCTIONS) else ""
        return RetrieveParams(str(index.path), k, instruction, o.threads, docs)

    stages: list[Stage]
    if len(indexes) == 1:
        if o.instruction:  # asked for one index that cannot take it: say so, do not drop it
            p = RetrieveParams(str(indexes[0].path), depth, o.instruction, o.threads, docs)
        else:
            p = params(indexes[0], depth)
        stages = [RetrieveStage(indexes[0], p.k, p.instruction, threads=p.threads, docs=docs)]
    else:
        sources = [(ix, params(ix, max(depth, o.fusion_depth))) for ix in indexes]
        stages = [FuseStage(sources, depth, o.rrf_k)]
    if o.rerank is not None:
        stages.append(RerankStage(_reranker(o.rerank, o.strict, resources), o.rerank))
    return Pipeline(stages, strict=True)


def _reranker(r: RerankParams, strict: bool, resources: Resources | None = None) -> Reranker:
    if r.method == "cross-encoder":  # from `resources`: loaded once for every search
        name = llm_name(r.llm)
        model = resources.cross_encoder(name) if resources is not None else None
        return make_reranker(r.method, name, r.k, model_obj=model)
    extra: dict[str, Any] = {"passage_tokens": r.passage_tokens, **llm_rerank_options(r)}
    ref = r.llm
    if isinstance(ref, tuple):  # a preference list: the first LLM installed here
        ref = (resources or Resources()).choose(ref)
    if resources is not None:
        extra["llm"] = resources.llm(ref)
    elif not isinstance(ref, str):  # {model, backend, ...backend options}
        options = dict(ref)
        options.pop("model", None)
        extra.update(backend=options.pop("backend", "transformers"), llm_options=options)
    return make_reranker(r.method, llm_name(ref), r.k, r.window, r.stride, strict, **extra)
