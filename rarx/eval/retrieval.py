"""Evaluating retrieval systems on a dataset: figures, per query, and significance
against the first system."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import RarxError
from rarx.eval.datasets import BeirDataset, default_dir, load_beir, prepare_dataset
from rarx.eval.datasets.beir import is_beir_folder
from rarx.eval.datasets.prepare import DATASETS
from rarx.eval.metrics import Evaluation, evaluate, run_from_rankings
from rarx.eval.significance import paired_t_test
from rarx.eval.systems import SystemRun


def resolve_dataset(name_or_path: str, split: str = "test") -> BeirDataset:
    """A BEIR folder (or RAR-b ``full/<task>/`` folder) by path, or a packaged dataset by
    name (prepared into ``data/<name>`` on first use)."""
    path = Path(name_or_path)
    if path.is_dir():
        return load_beir(path, split)
    if name_or_path in DATASETS:
        target = default_dir(name_or_path)
        if not is_beir_folder(target):
            prepare_dataset(name_or_path, target)
        return load_beir(target, split)
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

    def as_dict(self, per_query: bool = False) -> dict[str, Any]:
        return {
            "system": self.run.name,
            "settings": self.run.settings,
            "measures": self.evaluation.aggregate,
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
        results.append(SystemResult(run, ev, p_values))
    return results
