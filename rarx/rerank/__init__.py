"""Rerankers: ``cross-encoder``, ``listwise`` (generated permutation) and ``first``
(single-token listwise). Importing this package loads no model and no torch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from rarx.errors import ConfigError
from rarx.rerank.base import Reranker, RerankError, RerankResult
from rarx.rerank.permutation import apply_order, order_by_scores, repair_permutation
from rarx.rerank.prompts import LISTWISE, ListwiseTemplate
from rarx.rerank.windows import sliding_windows
from rarx.types import Query, Ranking

# The reranker names, once: the rerank stage's parameter type, the CLI's and the server's
# --rerank choices all read them from here.
Method = Literal["first", "listwise", "cross-encoder"]
METHODS: tuple[str, ...] = get_args(Method)


def make_reranker(
    method: str,
    model: str,
    k: int,
    window: int = 20,
    stride: int = 10,
    strict: bool = False,
    **kw: Any,
) -> Reranker:
    """A reranker by method name. ``model`` is an LLM name for ``first``/``listwise``
    (e.g. ``smollm2-135m``) and a cross-encoder name or path for ``cross-encoder``.

    Extra keywords: for LLM methods ``llm`` (an already loaded LLM, then ``model`` is
    only its label), ``backend`` (``transformers``, ``ctranslate2`` or ``openai``; by
    default the one ``model`` names as ``BACKEND:MODEL``, else transformers), ``llm_options``
    (backend options: ``device``, ``batch_size``, ``base_url``, ...),
    ``passage_tokens`` (default 300), ``template``, ``instruction`` (the task, opening
    the prompt), ``docs`` (docid -> Document, for hits without text), and for ``first``
    ``orders`` (candidate orders per window, combined) and ``calibrate`` (``none``,
    ``query-free`` or ``query``: the identifiers' prior from a content-free window,
    subtracted); for ``cross-encoder``
    ``batch_size``, ``max_length``, ``device``, ``docs``.
    """
    if method == "cross-encoder":
        from rarx.rerank.cross_encoder import CrossEncoderReranker

        return CrossEncoderReranker(model, k, **kw)
    if method not in ("first", "listwise"):
        raise ConfigError(f"unknown rerank method {method!r}; expected one of {', '.join(METHODS)}")
    from rarx.rerank.listwise import FirstReranker, ListwiseReranker

    llm = kw.pop("llm", None)
    backend = kw.pop("backend", None)
    llm_options: Mapping[str, Any] = kw.pop("llm_options", None) or {}
    if llm is None:
        from rarx.llm import LLMSpec, load_llm

        # Without an explicit backend, ``model`` may name one: "ctranslate2:qwen2.5-coder-1.5b".
        if backend:
            llm = load_llm(LLMSpec(model, backend, llm_options))
        else:
            llm = load_llm(LLMSpec.parse(model, **llm_options))
    if method == "listwise" and kw.pop("orders", 1) != 1:
        raise ConfigError("'orders' applies to method 'first' only (FIRST's order combination)")
    if method == "listwise" and kw.pop("calibrate", "none") != "none":
        raise ConfigError("'calibrate' applies to method 'first' only (FIRST's identifier prior)")
    cls = FirstReranker if method == "first" else ListwiseReranker
    return cls(llm, k, window, stride, strict=strict, **kw)


def rerank(
    query: Query | str,
    ranking: Ranking,
    method: str = "first",
    model: str = "smollm2-135m",
    k: int = 100,
    *,
    reranker: Reranker | None = None,
    **kw: Any,
) -> Ranking:
    """Rerank one ranking. Pass ``reranker`` (from :func:`make_reranker`) to reuse a
    loaded model across calls; otherwise one is made for this call."""
    if isinstance(query, str):
        query = Query(ranking.qid, query)
    reranker = reranker or make_reranker(method, model, k, **kw)
    return reranker.rerank([query], [ranking])[0]


__all__ = [
    "LISTWISE",
    "METHODS",
    "Method",
    "ListwiseTemplate",
    "RerankError",
    "RerankResult",
    "Reranker",
    "apply_order",
    "make_reranker",
    "order_by_scores",
    "repair_permutation",
    "rerank",
    "sliding_windows",
]
