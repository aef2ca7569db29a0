"""The ``qa_memory`` stage: answer from a memory of question–answer pairs (RePAQ).

The nearest stored questions are looked up for each query. In ``answer`` mode a
nearest question at or above ``threshold`` (cosine similarity) supplies the answer and
the rest of the pipeline is skipped for that query; below it the query backs off to
the rest of the pipeline, carrying the top pairs (``memory`` in the context) that
``generate`` may show the reader. In ``context`` mode nothing is short-circuited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from rarx.errors import ConfigError
from rarx.index.registry import has_capability
from rarx.stages.base import Resources
from rarx.stages.common import ANSWER, FINAL, MEMORY
from rarx.stages.registry import KindStage, index_param, stage_kind
from rarx.types import QueryState


@dataclass(frozen=True)
class QAMemoryParams:
    index: str  # a qa-memory index: rarx index --kind qa-memory --corpus pairs.jsonl
    threshold: float = 0.9
    k: int = 3  # pairs kept in the context
    mode: Literal["answer", "context"] = "answer"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"parameter 'k' must be at least 1, got {self.k}")
        if not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(
                f"'threshold' is a cosine similarity in [-1, 1], got {self.threshold}"
            )


@stage_kind("qa_memory", QAMemoryParams, "answer from stored question-answer pairs (RePAQ)",
            provides={MEMORY, ANSWER, FINAL},
            indexes=index_param("qa_pairs"))  # fmt: skip
class QAMemoryStage(KindStage[QAMemoryParams]):
    params: QAMemoryParams

    def __init__(self, memory: Any, params: QAMemoryParams):
        if not has_capability(memory, "qa_pairs"):
            raise ConfigError(
                f"qa_memory needs a qa-memory index, got a {getattr(memory, 'kind', '?')!r} "
                "one; build it with: rarx index --kind qa-memory --corpus PAIRS.jsonl --index DIR"
            )
        self.memory = memory
        self.params = params

    @classmethod
    def from_params(cls, p: QAMemoryParams, resources: Resources) -> QAMemoryStage:
        return cls(resources.index(p.index), p)

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        p = self.params
        start = time.perf_counter()
        found = self.memory.nearest([s.query for s in batch], p.k)
        seconds = round((time.perf_counter() - start) / len(batch), 5)
        out = []
        for s, pairs in zip(batch, found, strict=True):
            memory = tuple(pair.as_dict(score) for pair, score in pairs)
            best = pairs[0][1] if pairs else float("-inf")
            hit = p.mode == "answer" and bool(pairs) and best >= p.threshold
            state = s.with_context(**{MEMORY: memory})
            data = {"best_score": round(best, 5), "threshold": p.threshold, "pairs": memory,
                    "seconds": seconds}  # fmt: skip
            if hit:
                answer = pairs[0][0].answer
                state = state.with_context(**{ANSWER: answer, FINAL: True})
                out.append(state.traced(self.name, "hit", answer=answer, **data))
            else:
                out.append(state.traced(self.name, "miss", **data))
        return out
