"""Evaluating retrieval systems on a dataset: figures, per query, and significance
against the first system. :func:`evaluate_retrieval` is ``rarx eval retrieval`` as a
library call (what a server calls too)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rarx.errors import RarxError
from rarx.eval.datasets import BeirDataset, default_dir, load_beir, prepare_dataset
from rarx.eval.datasets.beir import is_beir_folder
from rarx.eval.datasets.prepare import DATASETS
from rarx.eval.metrics import (
    DEFAULT_MEASURES,
    Evaluation,
    evaluate,
    parse_measures,
    run_from_rankings,
)
from rarx.eval.significance import mean_ci, paired_t_test
from rarx.eval.systems import SystemRun

log = logging.getLogger(__name__)


def resolve_dataset(name_or_path: str, split: str = "test") -> BeirDataset:
    """A BEIR folder (or RAR-b Full folder) by path, a packaged dataset by name (prepared
    into ``data/<name>`` on first use), or a download (``rarb/<task>``, ``beir/<name>``)
    in its default folder."""
    path = Path(name_or_path)
    if path.is_dir():
        return load_beir(path, split)
    if name_or_path in DATASETS:
        target = default_dir(name_or_path)
        if not is_beir_folder(target):
            prepare_dataset(name_or_path, target)
        return load_beir(target, split)
    source, _, name = name_or_path.partition("/")
    if source in ("rarb", "beir") and name:  # a download's spec: its default folder
        from rarx.eval.datasets.rarb import default_target, rarb_task

        target = default_target(rarb_task(name)) if source == "rarb" else Path("data/beir") / name
        if is_beir_folder(target):
            return load_beir(target, split)
        raise RarxError(
            f"{name_or_path} is not downloaded ({target} is missing); run "
            f"`rarx datasets download {name_or_path}` or pass --dataset FOLDER"
        )
    raise RarxError(
        f"{name_or_path!r} is neither a dataset folder nor a packaged dataset "
        f"({', '.join(DATASETS)}); a folder needs corpus.jsonl, queries.jsonl and "
        f"qrels/{split}.tsv"
    )


@dataclass
class SystemResult:
    run: SystemRun
    evaluation: Evaluation
    p_values: dict[str, float | None]
    ci95: dict[str, tuple[float, float] | None] = field(default_factory=dict)

    def as_dict(self, per_query: bool = False) -> dict[str, Any]:
        return {
            "system": self.run.name,
            "settings": self.run.settings,
            "measures": self.evaluation.aggregate,
            "ci95": self.ci95,
            "queries": self.evaluation.queries,
            "p_value_vs_first": self.p_values,
            "seconds": self.run.seconds,
            "queries_per_second": self.run.queries_per_second,
            **({"per_query": self.evaluation.per_query} if per_query else {}),
        }



def compare(runs: Sequence[SystemRun], qrels: dict, measures: Sequence[str]) -> list[SystemResult]:
    """Score each run; p-values are paired t-tests of each measure against the first run."""
    results = []
    base: Evaluation | None = None
    for run in runs:
        ev = evaluate(run_from_rankings(run.rankings), qrels, measures)
        p_values: dict[str, float | None] = {}
        if base is not None:
            for m in ev.measures:
                p_values[m] = paired_t_test(
                    {q: v[m] for q, v in base.per_query.items()},
                    {q: v[m] for q, v in ev.per_query.items()},
                )[0]
        else:
            base = ev
        results.append(SystemResult(run, ev, p_values, intervals(ev, qrels)))
    return results


def intervals(ev: Evaluation, qrels: dict) -> dict[str, tuple[float, float] | None]:
    """Each measure's 95% bootstrap interval (seed 0) over the queries its mean averages:
    every judged query, 0 where the run has none (as ir-measures' aggregate counts it)."""
    judged = sorted(set(qrels) | set(ev.per_query))
    return {m: mean_ci([ev.per_query.get(q, {}).get(m, 0.0) for q in judged])
            for m in ev.aggregate}  # fmt: skip


@dataclass(frozen=True)
class RetrievalSystems:
    """Which systems to evaluate: built indexes, pipeline files, and systems built over
    the dataset's corpus (BM25, dense models, with instructions, SPLADE models, RRF
    hybrids)."""

    indexes: tuple[Path, ...] = ()
    pipelines: tuple[Path, ...] = ()
    bm25: bool = False
    models: tuple[str, ...] = ()
    hybrid: bool = False  # RRF of BM25 and each dense or SPLADE run
    instructions: bool = False  # each dense model also with the dataset's instruction
    splade: tuple[str, ...] = ()  # SPLADE models (impact indexes over the corpus)

    def check(self) -> None:
        if not (self.indexes or self.pipelines or self.bm25 or self.models or self.splade):
            raise RarxError(
                "nothing to evaluate: pass --index PATH, --pipeline FILE, --bm25, --model NAME "
                "and/or --splade NAME"
            )
        if self.hybrid and not (self.bm25 and (self.models or self.splade)):
            raise RarxError(
                "--hybrid fuses BM25 with a dense or SPLADE model: pass --bm25 and --model "
                "or --splade"
            )


@dataclass
class RetrievalEvaluation:
    """Every system's figures on one dataset, in the order they were run."""

    dataset: str
    data: BeirDataset
    split: str
    depth: int
    measures: tuple[str, ...]
    systems: list[SystemResult] = field(default_factory=list)

    @property
    def queries(self) -> int:
        return len(self.data.judged_queries)

    def as_dict(self) -> dict[str, Any]:
        """The results envelope (``--results`` / ``--json``)."""
        from rarx.eval.report_kinds import with_report
        from rarx.eval.results import envelope

        data = self.data
        return with_report(envelope(
            "retrieval",
            dataset={"name": self.dataset, "path": str(data.path), "split": self.split,
                     "queries": self.queries, "documents": len(data.corpus),
                     "instruction": data.instruction},
            settings={"depth": self.depth, "measures": list(self.measures),
                      "significance": "paired t-test vs first"},
            systems=[s.as_dict() for s in self.systems],
        ))  # fmt: skip


def evaluate_retrieval(
    dataset: str, systems: RetrievalSystems, *, split: str = "test",
    measures: Sequence[str] = DEFAULT_MEASURES, depth: int = 100,
    work_dir: Path = Path("indexes/eval"), quiet: bool = True, execution: Any = None,
) -> RetrievalEvaluation:  # fmt: skip
    """Run each system over the dataset's judged queries and score it, with paired
    t-tests against the first. Everything is checked before any index or model loads;
    BM25 and SPLADE indexes and dense document embeddings are kept in ``work_dir`` for reuse.
    ``execution`` runs pipelines and encodes documents (default: in this process; see
    :class:`rarx.eval.systems.LocalExecution`)."""
    from rarx.eval.systems import (
        DenseModel,
        bm25_run,
        hybrid_run,
        index_run,
        pipeline_run,
        splade_run,
    )

    names = tuple(measures)
    parse_measures(names)
    systems.check()
    if systems.pipelines:
        from rarx.pipeline.spec import load_spec

        for p in systems.pipelines:
            load_spec(p)  # a bad pipeline fails before any index or model loads
    data = resolve_dataset(dataset, split)
    for warning in data.warnings:
        log.warning("%s", warning)
    if systems.instructions and not data.instruction:
        raise RarxError(f"{data.path} has no instruction.txt; drop --instructions")
    queries = data.judged_queries
    runs = [index_run(p, queries, depth) for p in systems.indexes]
    runs += [pipeline_run(p, queries, depth, execution=execution) for p in systems.pipelines]
    bm25_result = bm25_run(data, queries, depth, work_dir, quiet) if systems.bm25 else None
    if bm25_result:
        runs.append(bm25_result)
    for model in systems.models:
        dense = DenseModel(model, data, cache_dir=work_dir / "embeddings", quiet=quiet,
                           execution=execution)  # fmt: skip
        variants = [dense.search(queries, depth)]
        if systems.instructions:
            variants.append(dense.search(queries, depth, data.instruction))
        runs.extend(variants)
        if systems.hybrid and bm25_result:
            runs.extend(hybrid_run([bm25_result, v], depth) for v in variants)
    for model in systems.splade:
        runs.append(splade_run(data, queries, depth, work_dir, model, quiet))
        if systems.hybrid and bm25_result:
            runs.append(hybrid_run([bm25_result, runs[-1]], depth))
    return RetrievalEvaluation(dataset, data, split, depth, names, compare(runs, data.qrels, names))
