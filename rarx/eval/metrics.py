"""Retrieval measures through ir-measures, so every figure equals what ``ir_measures``
(and pytrec_eval/trec_eval under it) gives for the same run and qrels.

Runs are passed as ``{qid: {docid: score}}``: trec_eval orders hits by score (ties by
docid), not by the rank column, and so does this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rarx.errors import InputError, RarxError
from rarx.io.trec import iter_run
from rarx.types import Ranking

Run = dict[str, dict[str, float]]
QrelsDict = Mapping[str, Mapping[str, int]]

DEFAULT_MEASURES = ("nDCG@10", "R@10", "R@100")


def _ir_measures():  # noqa: ANN202 - the module
    from rarx.errors import require

    return require("ir_measures", "eval")


def parse_measures(names: Iterable[str]) -> list[Any]:
    """ir-measures measure objects for strings such as ``nDCG@10``; an unknown or
    malformed string is an error that lists the measures ir-measures knows."""
    irm = _ir_measures()
    measures = []
    for name in names:
        try:
            measures.append(irm.parse_measure(name))
        except (NameError, ValueError, TypeError, SyntaxError) as exc:
            known = ", ".join(sorted(irm.measures.registry))
            raise RarxError(
                f"unknown measure {name!r} ({exc}); write measures as ir-measures strings such as "
                f"nDCG@10, R@100, AP, P@30, RR@10. Known measures: {known}"
            ) from None
    if not measures:
        raise RarxError("no measures given; pass e.g. -m nDCG@10 -m R@100")
    return measures


@dataclass
class RunFile:
    run: Run
    duplicates: int = 0


def read_run_scores(path: str | Path) -> RunFile:
    """A TREC run file as ``{qid: {docid: score}}``. A repeated (qid, docid) keeps the
    last score, as ir-measures does when it reads the same file; the count is reported."""
    run: Run = {}
    duplicates = 0
    for qid, docid, score in iter_run(path):
        docs = run.setdefault(qid, {})
        duplicates += docid in docs
        docs[docid] = score
    if not run:
        raise InputError("run file is empty", path)
    return RunFile(run, duplicates)


def run_from_rankings(rankings: Sequence[Ranking]) -> Run:
    # Queries without hits are left out; ir-measures then scores them 0.
    return {r.qid: {h.docid: h.score for h in r.hits} for r in rankings if r.hits}


@dataclass
class Evaluation:
    """Aggregate figures (ir-measures' mean: every judged query, 0 where the run has none)
    and per query."""

    measures: list[str]
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]
    warnings: list[str] = field(default_factory=list)
    queries: int = 0  # how many queries the aggregate averages over

    def as_dict(self, per_query: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"measures": self.aggregate, "queries": self.queries}
        if per_query:
            out["per_query"] = self.per_query
        if self.warnings:
            out["warnings"] = self.warnings
        return out


def check_run(run: Run, qrels: QrelsDict, duplicates: int = 0) -> list[str]:
    """Warnings for what trec_eval silently tolerates."""
    warnings = []
    if duplicates:
        warnings.append(
            f"run has {duplicates} repeated (query, document) pairs; the last score of each is used"
        )
    extra = [q for q in run if q not in qrels]
    if extra:
        warnings.append(
            f"{len(extra)} of {len(run)} run queries have no qrels (e.g. {extra[0]!r}); "
            "they are not scored"
        )
    unjudged = [q for q in qrels if q not in run]
    if unjudged:
        warnings.append(
            f"{len(unjudged)} judged queries are missing from the run (e.g. "
            f"{unjudged[0]!r}); they count as 0 in the mean, as in ir-measures "
            "(trec_eval -c)"
        )
    return warnings


def evaluate(
    run: Run, qrels: QrelsDict, measures: Sequence[str], duplicates: int = 0
) -> Evaluation:
    """Score ``run`` against ``qrels`` with ir-measures: aggregate and per query."""
    irm = _ir_measures()
    parsed = parse_measures(measures)
    qrels = {q: dict(d) for q, d in qrels.items()}
    warnings = check_run(run, qrels, duplicates)
    if not any(q in qrels for q in run):
        raise RarxError(
            "no query of the run has qrels: check that the run and qrels use the same query ids"
        )
    aggregate = irm.calc_aggregate(parsed, qrels, run)
    per_query: dict[str, dict[str, float]] = {}
    for metric in irm.iter_calc(parsed, qrels, run):
        per_query.setdefault(metric.query_id, {})[str(metric.measure)] = float(metric.value)
    return Evaluation(
        measures=[str(m) for m in parsed],
        aggregate={str(m): float(aggregate[m]) for m in parsed},
        per_query=per_query,
        warnings=warnings,
        queries=len(per_query),
    )
