"""The ``qa_memory`` stage: answer from a memory of question–answer pairs (RePAQ).

The nearest stored questions are looked up for each query. In ``answer`` mode a
nearest question at or above ``threshold`` (cosine similarity) supplies the answer and
the rest of the pipeline is skipped for that query; below it the query backs off to
the rest of the pipeline, carrying the top pairs (``memory`` in the context) that
``generate`` may show the reader. In ``context`` mode nothing is short-circuited.

With ``rerank_model`` (any sentence-transformers CrossEncoder path), the ``rerank_k``
nearest stored questions are rescored against the query by the cross-encoder and the
decision uses its score (RePAQ's reranker). Without an explicit ``threshold`` the stage
uses the one ``rarx qa-memory calibrate`` wrote into the index manifest for the same
scorer; with neither, a cosine of 0.9.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rarx.errors import ConfigError
from rarx.index.qa_memory import calibration_of
from rarx.index.registry import has_capability
from rarx.stages.base import Resources
from rarx.stages.common import ANSWER, FINAL, MEMORY
from rarx.stages.registry import KindStage, index_param, stage_kind
from rarx.types import Query, QueryState

DEFAULT_THRESHOLD = 0.9  # cosine, when nothing was calibrated


@dataclass(frozen=True)
class QAMemoryParams:
    index: str  # a qa-memory index: rarx index --kind qa-memory --corpus pairs.jsonl
    threshold: float | None = None  # None: the calibrated one in the manifest, else 0.9
    k: int = 3  # pairs kept in the context
    mode: Literal["answer", "context"] = "answer"
    rerank_model: str | None = None  # a CrossEncoder (name or path) to rescore the nearest
    rerank_k: int = 10  # nearest stored questions the cross-encoder rescores

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"parameter 'k' must be at least 1, got {self.k}")
        if self.rerank_k < 1:
            raise ConfigError(f"parameter 'rerank_k' must be at least 1, got {self.rerank_k}")
        # a cross-encoder's scores have their own scale; only cosines are bounded
        if (
            self.threshold is not None
            and self.rerank_model is None
            and not (-1.0 <= self.threshold <= 1.0)
        ):
            raise ConfigError(
                f"'threshold' is a cosine similarity in [-1, 1], got {self.threshold}"
            )


@stage_kind("qa_memory", QAMemoryParams, "answer from stored question-answer pairs (RePAQ)",
            provides={MEMORY, ANSWER, FINAL},
            indexes=index_param("qa_pairs"))  # fmt: skip
class QAMemoryStage(KindStage[QAMemoryParams]):
    params: QAMemoryParams

    def __init__(self, memory: Any, params: QAMemoryParams, reranker: Any = None):
        if not has_capability(memory, "qa_pairs"):
            raise ConfigError(
                f"qa_memory needs a qa-memory index, got a {getattr(memory, 'kind', '?')!r} "
                "one; build it with: rarx index --kind qa-memory --corpus PAIRS.jsonl --index DIR"
            )
        if (params.rerank_model is None) != (reranker is None):
            raise ConfigError("pass a cross-encoder reranker exactly when 'rerank_model' is set")
        self.memory = memory
        self.params = params
        self.reranker = reranker
        self.threshold, self.threshold_from = resolve_threshold(
            params, getattr(memory, "manifest", None)
        )

    @classmethod
    def from_params(cls, p: QAMemoryParams, resources: Resources) -> QAMemoryStage:
        reranker = None
        if p.rerank_model is not None:
            from rarx.rerank.cross_encoder import CrossEncoderReranker

            reranker = CrossEncoderReranker(p.rerank_model, k=p.rerank_k)
        return cls(resources.index(p.index), p, reranker)

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        p = self.params
        start = time.perf_counter()
        found = score_memory(self.memory, [s.query for s in batch], p.k, self.reranker, p.rerank_k)
        seconds = round((time.perf_counter() - start) / len(batch), 5)
        out = []
        for s, pairs in zip(batch, found, strict=True):
            memory = tuple(pair.as_dict(score) for pair, score in pairs)
            best = pairs[0][1] if pairs else float("-inf")
            hit = p.mode == "answer" and bool(pairs) and best >= self.threshold
            state = s.with_context(**{MEMORY: memory})
            data = {"best_score": round(best, 5), "threshold": self.threshold,
                    "threshold_from": self.threshold_from, "pairs": memory,
                    "seconds": seconds}  # fmt: skip
            if hit:
                answer = pairs[0][0].answer
                state = state.with_context(**{ANSWER: answer, FINAL: True})
                out.append(state.traced(self.name, "hit", answer=answer, **data))
            else:
                out.append(state.traced(self.name, "miss", **data))
        return out


def resolve_threshold(p: QAMemoryParams, manifest: Any) -> tuple[float, str]:
    """The decision threshold and where it came from: the stage's ``threshold``, else a
    calibration in the manifest made for the same scorer, else 0.9 for cosines."""
    if p.threshold is not None:
        return float(p.threshold), "params"
    cal = calibration_of(manifest) if manifest is not None else None
    if cal is not None and cal.get("rerank_model") == p.rerank_model:
        return float(cal["threshold"]), "calibration"
    if p.rerank_model is not None:
        found = "none" if cal is None else f"one for {cal.get('rerank_model') or 'cosine'}"
        raise ConfigError(
            f"qa_memory with rerank_model {p.rerank_model!r} needs a threshold on that "
            f"model's scores; the index manifest has {found}. Set 'threshold', or run: "
            f"rarx qa-memory calibrate --memory {p.index} --dev DEV.jsonl "
            f"--rerank-model {p.rerank_model}"
        )
    return DEFAULT_THRESHOLD, "default"


def score_memory(
    memory: Any, queries: Sequence[Query], k: int, reranker: Any = None, rerank_k: int = 10
) -> list[list[tuple[Any, float]]]:
    """The ``k`` best stored pairs per query, best first: by cosine, or with ``reranker``
    (a CrossEncoderReranker) by its score over the ``rerank_k`` nearest questions."""
    if reranker is None:
        return memory.nearest(queries, k)
    found = memory.nearest(queries, max(k, rerank_k))
    texts = [(q.text, pair.question) for q, cands in zip(queries, found, strict=True)
             for pair, _ in cands]  # fmt: skip
    if not texts:
        return [[] for _ in queries]
    scores = reranker.model.predict(texts, batch_size=reranker.batch_size,
                                    show_progress_bar=False).tolist()  # fmt: skip
    out, at = [], 0
    for cands in found:
        rescored = [(pair, float(scores[at + i])) for i, (pair, _) in enumerate(cands)]
        at += len(cands)
        rescored.sort(key=lambda ps: -ps[1])  # stable: ties keep the cosine order
        out.append(rescored[:k])
    return out
