"""The ``fuse`` stage: several retrievals of the same queries fused with RRF (hybrid)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rarx.errors import ConfigError
from rarx.index.fusion import RRF_K, rrf
from rarx.stages.common import hit_summary, run_active
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


class FuseStage:
    name: ClassVar[str] = "fuse"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"ranking"})

    def __init__(self, sources: Sequence[tuple[Any, RetrieveParams]], k: int = 10,
                 rrf_k: int = RRF_K):  # fmt: skip
        self.sources = list(sources)
        self.k = k
        self.rrf_k = rrf_k

    def run(self, batch: Sequence[QueryState]) -> list[QueryState]:
        return run_active(self.name, batch, self._run, retrieval=True)

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        queries = [s.query for s in batch]
        start = time.perf_counter()
        runs = [search(index, queries, p.k, p.instruction) for index, p in self.sources]
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
