"""``rarx eval mcr`` as a library call: every MCR file of a path scored by one scorer, with
the leakage warnings for a trained model and the results file's content."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.eval.mcr import McrResult


@dataclass
class McrRun:
    rows: list[McrResult]  # one per file
    results: dict[str, Any]  # the results file (kind "mcr")
    warnings: list[str]  # a trained model evaluated on a set its training data overlaps


def run_mcr(
    data_path: str | Path, scorer: str, model: str | None = None, *, instructions: bool = False,
    normalize: str | None = None, device: str | None = None, dtype: str | None = None,
    batch_size: int | None = None, per_question: bool | None = None, quiet: bool = True,
) -> McrRun:  # fmt: skip
    """Accuracy without (and with ``instructions``, with) instructions on every MCR file
    of ``data_path`` (:func:`rarx.eval.mcr_kinds.load_mcr`; all are read before a model
    loads)."""
    from rarx.eval.leakage import model_warnings
    from rarx.eval.mcr_kinds import load_mcr
    from rarx.eval.mcr_scorers import load_scorer, run_scorer
    from rarx.eval.report_kinds import with_report
    from rarx.eval.results import envelope

    sets = load_mcr(data_path)
    warnings = [w for s in sets for w in model_warnings(
        [model] if model else [], [s.label, s.path.name, s.path.parent.name],
        [it.query for it in s.items])]  # fmt: skip
    llm = scorer.startswith("llm-")
    if dtype and not llm:
        raise ConfigError(f"--dtype is for the LLM scorers, not {scorer}")
    options = {"quiet": quiet, "dtype": dtype} if llm else {}
    scoring = load_scorer(scorer, model, normalize=normalize, device=device,
                          batch_size=batch_size, per_question=per_question or None,
                          **options)  # fmt: skip
    rows = [run_scorer(s.path, s.items, scoring, instructions, s.kind.name if s.kind else None)
            for s in sets]  # fmt: skip
    settings = scoring.settings()
    files = [r.as_dict() for r in rows]
    results = with_report(envelope("mcr", model=settings["model"], scorer=scorer,
                                   settings=settings, files=files))  # fmt: skip
    return McrRun(rows, results, warnings)
