"""The ``retrieve`` stage: any index (BM25, dense, ...) searched for each query."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rarx.errors import ConfigError
from rarx.index.base import Index
from rarx.index.registry import search as search_index
from rarx.stages.base import Resources
from rarx.stages.common import RANKING, hit_summary, run_active
from rarx.stages.registry import IndexUse, KindStage, stage_kind
from rarx.types import Query, QueryState, Ranking


@dataclass(frozen=True)
class RetrieveParams:
    index: str  # an index directory built with `rarx index`
    k: int = 10
    instruction: str = ""  # dense indexes only: prepended to each query when encoding

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"parameter 'k' must be at least 1, got {self.k}")


def search(index: Index, queries: Sequence[Query], k: int, instruction: str = "") -> list[Ranking]:
    """Rankings with their documents attached (generate and rerank read the text); an
    instruction needs a kind with the instructions capability."""
    return search_index(index, queries, k, instruction=instruction, with_docs=True)


@stage_kind(
    "retrieve",
    RetrieveParams,
    "search an index (BM25, dense, ...)",
    provides={RANKING},
    indexes=lambda p: [IndexUse(p.index, "ranked_search")],
)
class RetrieveStage(KindStage[RetrieveParams]):
    def __init__(self, index: Index, k: int = 10, instruction: str = ""):
        self.index = index
        self.k = k
        self.instruction = instruction
        self.label = str(getattr(index, "path", index.kind))
        self.params = RetrieveParams(self.label, k, instruction)

    @classmethod
    def from_params(cls, p: RetrieveParams, resources: Resources) -> RetrieveStage:
        return cls(resources.index(p.index), p.k, p.instruction)

    def run(self, batch: Sequence[QueryState]) -> list[QueryState]:
        return run_active(self.name, batch, self._run, retrieval=True)

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        start = time.perf_counter()
        rankings = search(self.index, [s.query for s in batch], self.k, self.instruction)
        seconds = (time.perf_counter() - start) / len(batch)
        return [
            s.with_ranking(r).traced(
                self.name, "retrieved", index=self.label, k=self.k, hits=len(r),
                top=hit_summary(r.hits, 3), seconds=round(seconds, 5),
            )
            for s, r in zip(batch, rankings, strict=True)
        ]  # fmt: skip
