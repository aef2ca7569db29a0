"""``rarx train reader --demos``: meta-train a reader on retrieved demonstrations."""

from __future__ import annotations

from typing import Any

import click

from rarx.cli.train.options import options_from, settings_from, settings_options, train_options
from rarx.cli.train.report import print_card
from rarx.train.reader import ReaderTrainSettings
from rarx.train.reader_data import ReaderDataSettings


@click.command("reader")
@train_options(base="smollm2-135m", lr=2e-5, batch_size=4, lora=True)
@click.option("--demos", is_flag=True, required=True,
              help="Meta-train with retrieved demonstrations (Mueller et al.); the only "
              "reader objective so far.")  # fmt: skip
@click.option("--held-out", default=ReaderDataSettings.held_out, show_default=True,
              help="--data reasoning-mc: the evaluated task, left out of the training "
              "tasks and the bank (with its family: ARC-Easy takes ARC-Challenge "
              "along).")  # fmt: skip
@click.option("--k", type=click.IntRange(min=0), default=ReaderDataSettings.k, show_default=True,
              help="--data reasoning-mc: demonstrations per instance.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1),
              help="--data reasoning-mc: training questions per source.")  # fmt: skip
@settings_options(ReaderTrainSettings)
def reader(demos: bool, held_out: str, k: int, limit: int | None, **kwargs: Any) -> None:
    """Fine-tune a reader on multiple-choice questions shown with k demonstrations
    retrieved from a bank of other tasks (answer: the option label). --data is a folder
    from `rarx train data reader`, or reasoning-mc (built on first use). OUT works as
    `llm:` of a generate stage (template: multiple-choice) after a demos stage."""
    from rarx.train.reader import train_reader

    opts = options_from(kwargs)
    data = ReaderDataSettings(held_out=held_out, k=k, limit=limit, seed=opts.seed)
    settings = settings_from(ReaderTrainSettings, kwargs, data=data)
    print_card(train_reader(opts, settings), opts.out)
