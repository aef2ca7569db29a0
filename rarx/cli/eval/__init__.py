"""``rarx eval``: one subcommand per module here; the work is done by :mod:`rarx.eval`."""

from __future__ import annotations

import click

from rarx.cli.main import LazyGroup

EVAL_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("rarx.cli.eval.run:run_cmd", "Score a run file against qrels."),
    "retrieval": ("rarx.cli.eval.retrieval:retrieval_cmd",
                  "Evaluate retrieval systems side by side on a dataset."),
    "qa": ("rarx.cli.eval.qa:qa_cmd", "EM, F1 and retrieval rate of a pipeline on QA data."),
    "adaptive": ("rarx.cli.eval.adaptive:adaptive_cmd",
                 "Adapt-LLM's evaluation: never / always / gated retrieval."),
    "mcr": ("rarx.cli.eval.mcr:mcr_cmd", "MCR accuracy per file (RAR-b multiple choice)."),
    "report": ("rarx.cli.eval.report:report_cmd", "Tables and figures of results files."),
}  # fmt: skip


class EvalGroup(LazyGroup):
    commands_table = EVAL_COMMANDS


@click.group("eval", cls=EvalGroup)
def eval_() -> None:
    """Score runs (ir-measures), retrieval systems on datasets, and MCR accuracy."""
