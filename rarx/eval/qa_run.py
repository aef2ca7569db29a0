"""Scoring a RAG pipeline on a QA dataset: exact match, token F1 and how often it
retrieved, per query and on average."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rarx.errors import RarxError
from rarx.eval.qa import exact_match, token_f1
from rarx.progress import progress
from rarx.stages.common import ANSWER, ERROR
from rarx.types import Query, QueryState


@dataclass(frozen=True)
class QAEvaluation:
    aggregate: dict[str, float]
    per_query: list[dict[str, Any]]
    seconds: float


def gold_answers(query: Query, where: str) -> list[str]:
    answers = query.meta.get("answers")
    if not answers or not isinstance(answers, list | tuple):
        raise RarxError(
            f"{where}: query {query.qid!r} has no 'answers' list in queries.jsonl; "
            f"QA evaluation needs a dataset with answers (e.g. sciq, squad, boolq)"
        )
    return [str(a) for a in answers]


def score_states(states: Sequence[QueryState], golds: Sequence[list[str]]) -> QAEvaluation:
    rows: list[dict[str, Any]] = []
    for s, gold in zip(states, golds, strict=True):
        answer = s.context.get(ANSWER) or ""
        rows.append({
            "qid": s.query.qid,
            "answer": answer,
            "gold": gold,
            "em": exact_match(answer, gold),
            "f1": token_f1(answer, gold),
            # Retrieval happened when some stage produced a ranking for the query.
            "retrieved": s.ranking is not None,
            "error": s.context.get(ERROR),
        })  # fmt: skip
    n = max(len(rows), 1)
    aggregate = {
        "EM": sum(r["em"] for r in rows) / n,
        "F1": sum(r["f1"] for r in rows) / n,
        "retrieval_rate": sum(r["retrieved"] for r in rows) / n,
        "errors": float(sum(1 for r in rows if r["error"])),
    }
    return QAEvaluation(aggregate, rows, 0.0)


def evaluate_pipeline(
    pipeline: Any, queries: Sequence[Query], where: str, batch_size: int = 16, quiet: bool = False
) -> QAEvaluation:
    """Run ``pipeline`` over ``queries`` in batches and score its answers."""
    golds = [gold_answers(q, where) for q in queries]
    batches = [queries[i : i + batch_size] for i in range(0, len(queries), batch_size)]
    states: list[QueryState] = []
    start = time.perf_counter()
    for batch in progress(batches, desc="answering", unit="batch", quiet=quiet):
        states.extend(pipeline.run(list(batch)))
    result = score_states(states, golds)
    return QAEvaluation(result.aggregate, result.per_query, time.perf_counter() - start)
