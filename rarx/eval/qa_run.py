"""Scoring a RAG pipeline on a QA dataset: exact match, token F1 and how often it
retrieved, per query and on average; and the check that no QA memory or demonstration
bank the pipeline reads holds the questions it is evaluated on."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class MemoryOverlap:
    """Evaluated questions that a qa-memory index (a memory or a demonstration bank) of
    the pipeline holds, matched by normalised text (SQuAD answer normalisation)."""

    stage: str  # e.g. "stage 2 (qa_memory)"
    index: str
    found: int  # evaluated questions stored in the index
    questions: int  # evaluated questions
    stored: int  # questions in the index

    def __str__(self) -> str:
        return (
            f"{self.stage}: {self.index} holds {self.found} of the {self.questions} evaluated "
            f"questions ({self.stored:,} stored)"
        )


def memory_overlap(spec: Any, queries: Sequence[Query]) -> list[MemoryOverlap]:
    """For each qa-memory index that a stage of ``spec`` (a PipelineSpec) reads, how many
    of ``queries`` it stores; indexes that hold none are left out. Reads manifests and
    stored questions only, no model."""
    from rarx.eval.qa import normalize_answer
    from rarx.index.base import MANIFEST_NAME
    from rarx.index.qa_memory import ANSWERS_FILE, read_pairs

    asked = [normalize_answer(q.text) for q in queries]
    found = []
    for stage in spec.stages:
        path = getattr(stage.params, "index", None)
        if not isinstance(path, str) or not (Path(path) / MANIFEST_NAME).is_file():
            continue  # no index there yet: building the pipeline says so
        manifest = json.loads((Path(path) / MANIFEST_NAME).read_text(encoding="utf-8"))
        if manifest.get("kind") != "qa-memory":
            continue
        stored = {normalize_answer(p.question) for p in read_pairs(Path(path) / ANSWERS_FILE)}
        n = sum(1 for a in asked if a in stored)
        if n:
            found.append(MemoryOverlap(stage.where, path, n, len(queries), len(stored)))
    return found


def check_memory_overlap(
    spec: Any, queries: Sequence[Query], allow: bool = False
) -> list[MemoryOverlap]:
    """Raise when a memory or demonstration bank of the pipeline holds evaluated
    questions (each would find itself and its gold answer), unless ``allow``; return the
    overlaps so a caller that allows them can warn and record them."""
    overlaps = memory_overlap(spec, queries)
    if overlaps and not allow:
        raise RarxError(
            "; ".join(str(o) for o in overlaps) + ": those questions are stored with their "
            "gold answers where the pipeline looks them up. Build memories and "
            "demonstration banks from a split disjoint from the evaluated one (see "
            "pipelines/README.md), or pass --allow-memory-overlap to measure that upper "
            "bound knowingly"
        )
    return overlaps


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
    # run_batches: a local Pipeline runs them in turn, a RayPipeline on its workers
    for out in progress(pipeline.run_batches(batches), desc="answering", unit="batch",
                        total=len(batches), quiet=quiet):  # fmt: skip
        states.extend(out)
    result = score_states(states, golds)
    return QAEvaluation(result.aggregate, result.per_query, time.perf_counter() - start)


@dataclass
class QARun:
    evaluation: QAEvaluation
    results: dict[str, Any]  # the results file (kind "qa")
    warnings: list[str]  # trained models on overlapping data, answers from memory
    where: str  # the dataset's folder
    queries: int
    pipeline: str  # its name


def run_qa(
    pipeline_path: str | Path, dataset: str, *, limit: int | None = None, batch_size: int = 16,
    strict: bool = False, allow_memory_overlap: bool = False, open_pipeline: Any = None,
    quiet: bool = True,
) -> QARun:  # fmt: skip
    """``rarx eval qa``: the pipeline file over the first ``limit`` questions of a
    packaged QA dataset. ``open_pipeline(spec, strict)``: a context manager giving the
    pipeline to run (:func:`rarx.distributed.pipeline_opener` for Ray workers; by default
    one in this process)."""
    from contextlib import nullcontext

    from rarx.eval.leakage import dataset_warnings, spec_models
    from rarx.eval.report_kinds import with_report
    from rarx.eval.results import envelope
    from rarx.eval.retrieval import resolve_dataset
    from rarx.pipeline.pipeline import Pipeline
    from rarx.pipeline.spec import load_spec

    spec = load_spec(pipeline_path)  # fails on a bad file before the dataset or models load
    data = resolve_dataset(dataset)
    queries = list(data.queries)[:limit]
    for q in queries:
        gold_answers(q, str(data.path))
    overlaps = check_memory_overlap(spec, queries, allow=allow_memory_overlap)
    warnings = dataset_warnings(spec_models(spec), data, dataset)
    warnings += [f"{o}; their answers come from memory: an upper bound, not an evaluation"
                 for o in overlaps]  # fmt: skip
    if open_pipeline is None:
        opened: Any = nullcontext(Pipeline.from_spec(spec, strict=strict))
    else:
        opened = open_pipeline(spec, strict)
    with opened as pipe:
        result = evaluate_pipeline(pipe, queries, str(data.path), batch_size, quiet)
    results = with_report(envelope(
        "qa",
        dataset={"name": dataset, "path": str(data.path), "queries": len(queries)},
        system={"pipeline": str(pipeline_path), "name": spec.name,
                "memory_overlap": [vars(o) for o in overlaps]},
        figures=result.aggregate,
        seconds=result.seconds,
    ))  # fmt: skip
    return QARun(result, results, warnings, str(data.path), len(queries), spec.name)
