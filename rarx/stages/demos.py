"""The ``demos`` stage: retrieve labelled examples similar to the query from a bank
(a qa-memory index of ``{question, answer}`` rows) for ``generate`` to show as few-shot
demonstrations. The query itself is never its own demonstration: a stored example
with the query's id or the same question text is left out."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from rarx.errors import ConfigError
from rarx.index.registry import has_capability
from rarx.stages.base import Resources
from rarx.stages.common import DEMOS
from rarx.stages.registry import KindStage, index_param, stage_kind
from rarx.text import normalize_answer
from rarx.types import QueryState


@dataclass(frozen=True)
class DemosParams:
    index: str  # the bank: rarx index --kind qa-memory --corpus examples.jsonl
    k: int = 4
    # nearest: the k most similar; random: k drawn at random (the usual control)
    select: Literal["nearest", "random"] = "nearest"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ConfigError(f"parameter 'k' must be >= 0, got {self.k}")


def _same(a: str, b: str) -> bool:
    return normalize_answer(a) == normalize_answer(b)


@stage_kind(
    "demos",
    DemosParams,
    "retrieve few-shot demonstrations from a labelled bank",
    provides={DEMOS},
    indexes=index_param("qa_pairs"),
)
class DemosStage(KindStage[DemosParams]):
    params: DemosParams

    def __init__(self, bank: Any, params: DemosParams):
        if not has_capability(bank, "qa_pairs"):
            raise ConfigError(
                "demos needs a bank of labelled examples built with: rarx index --kind "
                f"qa-memory --corpus EXAMPLES.jsonl --index DIR (got a {bank.kind!r} index)"
            )
        self.bank = bank
        self.params = params

    @classmethod
    def from_params(cls, p: DemosParams, resources: Resources) -> DemosStage:
        return cls(resources.index(p.index), p)

    def _keep(self, s: QueryState, pair: Any) -> bool:
        return pair.id != s.query.qid and not _same(pair.question, s.query.text)

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        k = self.params.k
        if self.params.select == "random":
            pool = sorted(self.bank.pairs.values(), key=lambda p: p.id)
            chosen = []
            for s in batch:  # seeded per query: the same query gets the same draw
                rng = random.Random(f"{self.params.seed}:{s.query.qid}")
                picks = [p for p in rng.sample(pool, min(len(pool), k + 2)) if self._keep(s, p)]
                chosen.append([(p, None) for p in picks[:k]])
        else:
            found = self.bank.nearest([s.query for s in batch], k + 2) if k else [[]] * len(batch)
            chosen = [[(p, sc) for p, sc in f if self._keep(s, p)][:k]
                      for s, f in zip(batch, found, strict=True)]  # fmt: skip
        out = []
        for s, picks in zip(batch, chosen, strict=True):
            demos = tuple(p.as_dict(score) for p, score in picks)
            out.append(s.with_context(**{DEMOS: demos}).traced(
                self.name, "selected", select=self.params.select, ids=[d["id"] for d in demos]
            ))  # fmt: skip
        return out
