"""The ``retrieve`` stage: any index (BM25, dense, ...) searched for each query."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rarx.errors import ConfigError
from rarx.index.base import Index
from rarx.index.registry import search as search_index
from rarx.stages.base import Resources
from rarx.stages.common import RANKING, hit_summary
from rarx.stages.registry import KindStage, index_param, stage_kind
from rarx.types import Query, QueryState, Ranking


@dataclass(frozen=True)
class RetrieveParams:
    index: str  # an index directory built with `rarx index`
    k: int = 10
    instruction: str = ""  # kinds with the instructions capability (dense): query prefix
    threads: int = 1  # kinds with the threads capability (BM25): queries searched in parallel
    # attach each hit's document (generate and rerank read the text); off for runs that
    # need only ids and scores
    docs: bool = True

    def __post_init__(self) -> None:
        if self.k < 1 or self.threads < 1:
            raise ConfigError(
                f"parameters 'k' and 'threads' must be at least 1, got {self.k}, {self.threads}"
            )


def search(index: Index, queries: Sequence[Query], p: RetrieveParams) -> list[Ranking]:
    """``index`` searched as ``p`` says; an instruction needs a kind with the
    instructions capability (else a ConfigError naming the kind)."""
    return search_index(index, queries, p.k, instruction=p.instruction, threads=p.threads,
                        with_docs=p.docs)  # fmt: skip


@stage_kind(
    "retrieve",
    RetrieveParams,
    "search an index (BM25, dense, ...)",
    provides={RANKING},
    indexes=index_param("ranked_search"),
)
class RetrieveStage(KindStage[RetrieveParams]):
    params: RetrieveParams

    def __init__(self, index: Index, k: int = 10, instruction: str = "", *, threads: int = 1,
                 docs: bool = True):  # fmt: skip
        self.index = index
        self.label = str(getattr(index, "path", index.kind))
        self.params = RetrieveParams(self.label, k, instruction, threads, docs)

    @classmethod
    def from_params(cls, p: RetrieveParams, resources: Resources) -> RetrieveStage:
        return cls(resources.index(p.index), p.k, p.instruction, threads=p.threads, docs=p.docs)

    retrieval = True  # skipped where the gate decided against retrieval

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        start = time.perf_counter()
        rankings = search(self.index, [s.query for s in batch], self.params)
        seconds = (time.perf_counter() - start) / len(batch)
        return [
            s.with_ranking(r).traced(
                self.name, "retrieved", index=self.label, k=self.params.k, hits=len(r),
                top=hit_summary(r.hits, 3), seconds=round(seconds, 5),
            )
            for s, r in zip(batch, rankings, strict=True)
        ]  # fmt: skip
