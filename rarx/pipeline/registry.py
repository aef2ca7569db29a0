"""The stage kinds a pipeline file may name, with their parameters and context contract.

Each kind has a frozen dataclass of parameters (checked before anything loads), what it
needs from earlier stages and provides to later ones (context keys and ``"ranking"``),
and a builder that gets its models and indexes from a shared :class:`Resources`.
Importing this module imports no model code; builders import theirs when called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rarx.errors import ConfigError
from rarx.pipeline.params import LLMRef
from rarx.pipeline.resources import Resources, llm_name
from rarx.stages.arr import ArrParams
from rarx.stages.common import ANSWER, DEMOS, DRAFT, MEMORY, RETRIEVE, run_active
from rarx.stages.demos import DemosParams
from rarx.stages.fuse import FuseParams
from rarx.stages.gate import GateParams
from rarx.stages.generate import GenerateParams
from rarx.stages.qa_memory import QAMemoryParams
from rarx.stages.retrieve import RetrieveParams
from rarx.types import QueryState


@dataclass(frozen=True)
class RerankParams:
    method: Literal["first", "listwise", "cross-encoder"] = "first"
    llm: LLMRef = "smollm2-135m"  # an LLM, or a cross-encoder name/path for cross-encoder
    k: int = 100  # hits reranked (the rest keep their order below them)
    window: int = 20
    stride: int = 10
    passage_tokens: int = 300

    def __post_init__(self) -> None:
        if self.k < 1 or self.window < 2 or not 0 < self.stride < self.window:
            raise ConfigError(
                f"need k >= 1, window >= 2 and 0 < stride < window; got k={self.k}, "
                f"window={self.window}, stride={self.stride}"
            )


class _SkippingStage:
    """A stage that does not know the skip flags (rerank), made to respect them."""

    def __init__(self, stage: Any, retrieval: bool):
        self.stage = stage
        self.name = stage.name
        self.needs = stage.needs
        self.provides = stage.provides
        self.retrieval = retrieval

    def run(self, batch: Sequence[QueryState]) -> list[QueryState]:
        return run_active(self.name, batch, self.stage.run, retrieval=self.retrieval)


def _retrieve(p: RetrieveParams, r: Resources) -> Any:
    from rarx.stages.retrieve import RetrieveStage

    return RetrieveStage(r.index(p.index), p.k, p.instruction)


def _fuse(p: FuseParams, r: Resources) -> Any:
    from rarx.stages.fuse import FuseStage

    return FuseStage([(r.index(s.index), s) for s in p.retrieve], p.k, p.rrf_k)


def _rerank(p: RerankParams, r: Resources) -> Any:
    from rarx.rerank import make_reranker
    from rarx.stages.rerank import RerankStage

    if p.method == "cross-encoder":
        if not isinstance(p.llm, str):
            raise ConfigError("rerank method 'cross-encoder' takes a model name or path in 'llm'")
        reranker = make_reranker(p.method, p.llm, p.k)
    else:
        reranker = make_reranker(
            p.method, llm_name(p.llm), p.k, p.window, p.stride, llm=r.llm(p.llm),
            passage_tokens=p.passage_tokens,
        )  # fmt: skip
    return _SkippingStage(RerankStage(reranker), retrieval=True)


def _generate(p: GenerateParams, r: Resources) -> Any:
    from rarx.stages.generate import GenerateStage

    return GenerateStage(r.llm(p.llm), p)


def _gate(p: GateParams, r: Resources) -> Any:
    from rarx.stages.gate import GateStage

    return GateStage(p, r.llm(p.llm) if p.uses_llm else None)


def _qa_memory(p: QAMemoryParams, r: Resources) -> Any:
    from rarx.stages.qa_memory import QAMemoryStage

    return QAMemoryStage(r.index(p.index), p)


def _demos(p: DemosParams, r: Resources) -> Any:
    from rarx.stages.demos import DemosStage

    return DemosStage(r.index(p.index), p)


def _arr(p: ArrParams, r: Resources) -> Any:
    from rarx.stages.arr import ArrStage

    return ArrStage(r.index(p.index), r.llm(p.draft_llm), r.llm(p.revise_llm), p)


def _none(p: Any) -> frozenset[str]:
    return frozenset()


def _const(*keys: str) -> Callable[[Any], frozenset[str]]:
    return lambda p: frozenset(keys)


@dataclass(frozen=True)
class StageKind:
    name: str
    params: type
    build: Callable[[Any, Resources], Any]
    summary: str
    needs: Callable[[Any], frozenset[str]] = _none
    provides: Callable[[Any], frozenset[str]] = _none
    # index paths and the index kinds each accepts, for checks that read only manifests
    indexes: Callable[[Any], list[tuple[str, tuple[str, ...]]]] = lambda p: []


_ANY_INDEX = ("bm25", "dense")

STAGE_KINDS: dict[str, StageKind] = {
    k.name: k
    for k in (
        StageKind("retrieve", RetrieveParams, _retrieve, "search an index (BM25 or dense)",
                  provides=_const("ranking"),
                  indexes=lambda p: [(p.index, _ANY_INDEX)]),
        StageKind("fuse", FuseParams, _fuse, "several retrievals fused with RRF",
                  provides=_const("ranking"),
                  indexes=lambda p: [(s.index, _ANY_INDEX) for s in p.retrieve]),
        StageKind("rerank", RerankParams, _rerank, "rerank the ranking (FIRST, listwise, CE)",
                  needs=_const("ranking"), provides=_const("ranking")),
        StageKind("generate", GenerateParams, _generate, "a reader LLM writes the answer",
                  needs=lambda p: frozenset({"ranking"} if p.top_docs > 0 else set()),
                  provides=_const(ANSWER)),
        StageKind("gate", GateParams, _gate, "decide per query whether to retrieve",
                  provides=_const(RETRIEVE, "gate")),
        StageKind("qa_memory", QAMemoryParams, _qa_memory, "answer from stored QA pairs",
                  provides=_const(MEMORY, ANSWER),
                  indexes=lambda p: [(p.index, ("qa-memory",))]),
        StageKind("demos", DemosParams, _demos, "retrieve few-shot demonstrations",
                  provides=_const(DEMOS), indexes=lambda p: [(p.index, ("qa-memory",))]),
        StageKind("arr", ArrParams, _arr, "adapt-retrieve-revise: draft, retrieve, revise",
                  provides=_const("ranking", DRAFT, ANSWER),
                  indexes=lambda p: [(p.index, _ANY_INDEX)]),
    )
}  # fmt: skip


def stage_kind(name: str, where: str) -> StageKind:
    kind = STAGE_KINDS.get(name)
    if kind is None:
        raise ConfigError(
            f"{where}: unknown stage {name!r}; accepted stages: {', '.join(STAGE_KINDS)}"
        )
    return kind
