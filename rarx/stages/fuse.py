"""The ``fuse`` stage: several retrievals of the same queries fused with RRF (hybrid)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rarx.errors import ConfigError
from rarx.index.base import Index
from rarx.index.fusion import RRF_K, rrf
from rarx.stages.base import Resources
from rarx.stages.common import RANKING, hit_summary
from rarx.stages.registry import IndexUse, KindStage, stage_kind
from rarx.stages.retrieve import RetrieveParams, search
from rarx.types import QueryState


@dataclass(frozen=True)
class FuseParams:
    retrieve: tuple[RetrieveParams, ...]  # each as a retrieve stage's parameters
    k: int = 10  # fused hits kept
    rrf_k: int = RRF_K

    def __post_init__(self) -> None:
        if len(self.retrieve) < 2:
            raise ConfigError(
                f"parameter 'retrieve' must list at least two retrievals to fuse, got "
                f"{len(self.retrieve)}; for one index use a retrieve stage"
            )
        if self.k < 1 or self.rrf_k < 0:
            raise ConfigError(f"'k' must be >= 1 and 'rrf_k' >= 0, got {self.k}, {self.rrf_k}")


@stage_kind(
    "fuse",
    FuseParams,
    "several retrievals fused with RRF (hybrid)",
    provides={RANKING},
    indexes=lambda p: [IndexUse(s.index, "ranked_search") for s in p.retrieve],
)
class FuseStage(KindStage[FuseParams]):
    def __init__(self, sources: Sequence[tuple[Index, RetrieveParams]], k: int = 10,
                 rrf_k: int = RRF_K):  # fmt: skip
        self.sources = list(sources)
        self.k = k
        self.rrf_k = rrf_k
        self.params = FuseParams(tuple(p for _, p in self.sources), k, rrf_k)

    @classmethod
    def from_params(cls, p: FuseParams, resources: Resources) -> FuseStage:
        return cls([(resources.index(s.index), s) for s in p.retrieve], p.k, p.rrf_k)

    retrieval = True  # skipped where the gate decided against retrieval

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        queries = [s.query for s in batch]
        start = time.perf_counter()
        runs = [search(index, queries, p) for index, p in self.sources]
        fused = rrf(runs, k=self.k, rrf_k=self.rrf_k)
        seconds = (time.perf_counter() - start) / len(batch)
        labels = [p.index for _, p in self.sources]
        return [
            s.with_ranking(r).traced(
                self.name, "fused", indexes=labels, k=self.k, rrf_k=self.rrf_k,
                hits_per_index=[len(run[i]) for run in runs], top=hit_summary(r.hits, 3),
                seconds=round(seconds, 5),
            )
            for i, (s, r) in enumerate(zip(batch, fused, strict=True))
        ]  # fmt: skip
