"""The ``rerank`` stage: a reranker over each state's ranking, every LLM call traced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rarx.errors import ConfigError
from rarx.llm import LLMRef, llm_name
from rarx.rerank import Method, Reranker, make_reranker
from rarx.stages.base import Resources
from rarx.stages.common import RANKING
from rarx.stages.registry import KindStage, stage_kind
from rarx.types import QueryState


@dataclass(frozen=True)
class RerankParams:
    method: Method = "first"
    llm: LLMRef = "smollm2-135m"  # an LLM, or a cross-encoder name/path for cross-encoder
    k: int = 100  # hits reranked (the rest keep their order below them)
    window: int = 20
    stride: int = 10
    passage_tokens: int = 300
    instruction: str = ""  # first/listwise: the task, opening the prompt (e.g. RAR-b's)
    orders: int = 1  # first: candidate orders per window, combined (position-bias remedy)
    # first: subtract the identifiers' prior read from a content-free window (per window
    # size: query-free; per query and window size: query)
    calibrate: Literal["none", "query-free", "query"] = "none"

    def __post_init__(self) -> None:
        if self.orders < 1:
            raise ConfigError(f"'orders' must be at least 1, got {self.orders}")
        if self.orders > 1 and self.method != "first":
            raise ConfigError(f"'orders' applies to method 'first' only, not {self.method!r}")
        if self.calibrate != "none" and self.method != "first":
            raise ConfigError(f"'calibrate' applies to method 'first' only, not {self.method!r}")
        if self.instruction and self.method == "cross-encoder":
            raise ConfigError("'instruction' applies to methods 'first' and 'listwise'")
        if self.k < 1 or self.window < 2 or not 0 < self.stride < self.window:
            raise ConfigError(
                f"need k >= 1, window >= 2 and 0 < stride < window; got k={self.k}, "
                f"window={self.window}, stride={self.stride}"
            )


def llm_rerank_options(p: RerankParams) -> dict[str, Any]:
    """The keywords an LLM reranker takes from ``p`` beyond window and model (the
    defaults stay unsaid, so a reranker without them is built as it always was)."""
    return {**({"instruction": p.instruction} if p.instruction else {}),
            **({"orders": p.orders} if p.orders > 1 else {}),
            **({"calibrate": p.calibrate} if p.calibrate != "none" else {})}  # fmt: skip


@stage_kind("rerank", RerankParams, "rerank the ranking (FIRST, listwise, cross-encoder)",
            needs={RANKING}, provides={RANKING})  # fmt: skip
class RerankStage(KindStage[RerankParams]):
    """Like every retrieval stage, it leaves alone a query whose answer is final or
    whose gate decided against retrieval."""

    def __init__(self, reranker: Reranker, params: RerankParams | None = None):
        self.reranker = reranker
        self.params = params

    @classmethod
    def from_params(cls, p: RerankParams, resources: Resources) -> RerankStage:
        if p.method == "cross-encoder":
            if not isinstance(p.llm, str):
                raise ConfigError(
                    "rerank method 'cross-encoder' takes a model name or path in 'llm'"
                )
            return cls(make_reranker(p.method, p.llm, p.k,
                                     model_obj=resources.cross_encoder(p.llm)), p)
        llm = resources.llm(p.llm)
        label = llm.name if isinstance(p.llm, tuple) else llm_name(p.llm)  # the chosen one
        reranker = make_reranker(
            p.method, label, p.k, p.window, p.stride, llm=llm,
            passage_tokens=p.passage_tokens, **llm_rerank_options(p),
        )  # fmt: skip
        return cls(reranker, p)

    retrieval = True  # skipped where the gate decided against retrieval

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        missing = [s.query.qid for s in batch if s.ranking is None]
        if missing:
            raise ConfigError(
                f"rerank needs a ranking, queries {missing[:5]} have none; "
                f"put a retrieve stage before rerank"
            )
        results = self.reranker.rerank_detailed(
            [s.query for s in batch],
            [s.ranking for s in batch],  # type: ignore[misc]
        )
        out = []
        for state, result in zip(batch, results, strict=True):
            new = state.with_ranking(result.ranking)
            for event, data in result.events:
                new = new.traced(self.name, event, method=self.reranker.method, **data)
            out.append(new)
        return out
