"""``rarx train data teacher``: a teacher's option scores on the training questions."""

from __future__ import annotations

from pathlib import Path

import click

from rarx.cli.options import quiet_option
from rarx.eval.mcr_scorers import SCORERS


@click.command("teacher")
@click.option("--data", required=True, help="Multiple-choice training file or data name.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output JSONL: {id, scores} per training question.",
)
@click.option(
    "--scorer",
    type=click.Choice(list(SCORERS)),
    default="llm-likelihood",
    show_default=True,
    help="MCR scorer that teaches.",
)
@click.option("--model", default=None, help="The teacher model (scorer's default if unset).")
@click.option(
    "--normalize",
    type=click.Choice(["sum", "mean", "pmi"]),
    default=None,
    help="llm-likelihood: how option log-probabilities are normalised.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first N training questions (the student trains on those).",
)
@click.option("--device", default=None)
@click.option(
    "--dtype",
    default=None,
    help="LLM teachers: the weights' dtype (e.g. bfloat16; default float32).",
)
@quiet_option
def teacher(data: str, out: Path, scorer: str, model: str | None, normalize: str | None,
            limit: int | None, device: str | None, dtype: str | None,
            quiet: bool) -> None:  # fmt: skip
    """Score the training split's options with a teacher (never the dev split or any
    evaluation file), for 'rarx train cross-encoder --teacher-scores'."""
    from rarx.train.data.teacher import write_teacher_scores

    n = write_teacher_scores(data, out, scorer, model, limit, normalize=normalize, device=device,
                             dtype=dtype)  # fmt: skip
    click.echo(f"{out}: teacher scores for {n} training questions")
