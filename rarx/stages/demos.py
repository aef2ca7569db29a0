"""The ``demos`` stage: retrieve labelled examples similar to the query from a bank
(a qa-memory index of ``{question, answer}`` rows) for ``generate`` to show as few-shot
demonstrations. The query itself is never its own demonstration: a stored example
with the query's id or the same question is left out (a lettered multiple-choice
question is the same with its options in any order)."""

from __future__ import annotations

import random
import re
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


_OPTION = re.compile(r"^\s*[A-Z][.)]\s+(.*)$")


def mc_question_key(text: str) -> str:
    """The normalised question; trailing lettered option lines (``A. ...``, ``B) ...``)
    count as a set, so a shuffled copy of a multiple-choice question has the same key."""
    lines = text.strip().splitlines()
    options: list[str] = []
    while len(lines) > 1 and (m := _OPTION.match(lines[-1])):
        options.append(normalize_answer(m.group(1)))
        lines.pop()
    if len(options) < 2:  # not a lettered list: the whole text is the question
        return normalize_answer(text)
    return "\n".join([normalize_answer(" ".join(lines)), *sorted(options)])


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
        same = mc_question_key(pair.question) == mc_question_key(s.query.text)
        return pair.id != s.query.qid and not same

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
