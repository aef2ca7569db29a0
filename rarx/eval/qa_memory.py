"""Calibrating a QA memory's decision threshold on a dev split (RePAQ backs off to
retrieval when its best match is not trustworthy enough).

Each dev question is scored against the memory exactly as the ``qa_memory`` stage would
(cosine, or a cross-encoder over the nearest stored questions); a hit at threshold ``t``
is a question whose best score is at least ``t``, and it is correct when the stored
answer equals a gold answer after :func:`rarx.text.normalize_answer`. The lowest
threshold whose hits reach the target precision wins (the most coverage at that
precision), and is written into the index manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError, InputError
from rarx.index.qa_memory import write_calibration
from rarx.io.jsonl import read_jsonl
from rarx.text import normalize_answer
from rarx.types import Query


@dataclass(frozen=True)
class DevQuestion:
    qid: str
    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Calibration:
    threshold: float
    precision: float  # measured at the threshold on the dev split
    coverage: float  # share of dev questions answered from memory at the threshold
    target: float
    questions: int
    hits: int
    rerank_model: str | None
    dev: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_dev(path: str | Path) -> list[DevQuestion]:
    """Dev questions with gold answers: rows ``{question, answer}`` (answer a string or
    a list of aliases) or a prepared QA dataset's ``{_id, text, answers}``."""
    out: list[DevQuestion] = []
    for lineno, obj in read_jsonl(path):
        q = obj.get("question", obj.get("text"))
        a = obj.get("answers", obj.get("answer"))
        answers = (a,) if isinstance(a, str) else tuple(a) if isinstance(a, list) else ()
        if not isinstance(q, str) or not q.strip() or not answers:
            raise InputError(
                "expected 'question' (or 'text') and 'answer' (or a list 'answers')", path, lineno
            )
        out.append(DevQuestion(str(obj.get("id", obj.get("_id", f"dev{len(out)}"))),
                               q.strip(), tuple(str(x) for x in answers)))  # fmt: skip
    if not out:
        raise InputError("no dev questions", path)
    return out


def is_correct(stored: str, gold: Sequence[str]) -> bool:
    norm = normalize_answer(stored)
    return any(norm == normalize_answer(g) for g in gold)


def pick_threshold(
    scored: Sequence[tuple[float, bool]], precision: float, min_hits: int = 1
) -> tuple[float, float, int]:
    """The lowest threshold (one of the scores) at which the questions scoring at or
    above it are correct at least ``precision`` of the time, with at least ``min_hits``
    of them; returns (threshold, precision there, hits there)."""
    if not 0.0 < precision <= 1.0:
        raise ConfigError(f"target precision must be in (0, 1], got {precision}")
    ranked = sorted(scored, key=lambda sc: -sc[0])
    best: tuple[float, float, int] | None = None
    correct, top = 0, 0.0
    for i, (score, ok) in enumerate(ranked):
        correct += ok
        # a threshold takes every question tied at its score, so test at the last of a tie
        if i + 1 < len(ranked) and ranked[i + 1][0] == score:
            continue
        hits = i + 1
        if hits >= min_hits:
            top = max(top, correct / hits)
        if hits >= min_hits and correct / hits >= precision:
            best = (score, correct / hits, hits)
    if best is None:
        raise ConfigError(
            f"no threshold reaches precision {precision} on {len(scored)} dev questions "
            f"(with at least {min_hits} hits; the best reached is {top:.3f}); lower "
            "--precision, add dev questions, or use a reranker (--rerank-model)"
        )
    return best


def score_dev(
    memory: Any, dev: Sequence[DevQuestion], reranker: Any = None, rerank_k: int = 10
) -> list[tuple[float, bool]]:
    """(best score, whether the best pair's answer is correct) per dev question."""
    from rarx.stages.qa_memory import score_memory

    queries = [Query(d.qid, d.question) for d in dev]
    found = score_memory(memory, queries, 1, reranker, rerank_k)
    return [
        (float(f[0][1]), is_correct(f[0][0].answer, d.answers)) if f else (float("-inf"), False)
        for d, f in zip(dev, found, strict=True)
    ]


def calibrate_memory(
    path: str | Path,
    dev: str | Path,
    precision: float = 0.9,
    *,
    rerank_model: str | None = None,
    rerank_k: int = 10,
    min_hits: int = 1,
    write: bool = True,
) -> Calibration:
    """Calibrate the qa-memory index at ``path`` on the dev file and (with ``write``)
    record the threshold in its manifest for the ``qa_memory`` stage to use."""
    from rarx.index.qa_memory import QAMemoryIndex

    memory = QAMemoryIndex.load(path)
    questions = read_dev(dev)
    reranker = None
    if rerank_model is not None:
        from rarx.rerank.cross_encoder import CrossEncoderReranker

        reranker = CrossEncoderReranker(rerank_model, k=rerank_k)
    scored = score_dev(memory, questions, reranker, rerank_k)
    threshold, reached, hits = pick_threshold(scored, precision, min_hits)
    cal = Calibration(
        threshold=threshold, precision=round(reached, 4),
        coverage=round(hits / len(questions), 4), target=precision, questions=len(questions),
        hits=hits, rerank_model=rerank_model, dev=str(dev),
    )  # fmt: skip
    if write:
        write_calibration(path, {**cal.as_dict(), "rerank_k": rerank_k})
    return cal
