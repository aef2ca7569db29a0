"""``rarx train reader --demos``: meta-train a reader on retrieved demonstrations."""

from __future__ import annotations

from typing import Any

import click

from rarx.cli.train.options import options_from, train_options
from rarx.cli.train.report import print_card


@click.command("reader")
@train_options(base="smollm2-135m", lr=2e-5, batch_size=4, lora=True)
@click.option("--demos", is_flag=True, required=True,
              help="Meta-train with retrieved demonstrations (Mueller et al.); the only "
              "reader objective so far.")  # fmt: skip
@click.option("--held-out", default="arc-easy", show_default=True,
              help="--data reasoning-mc: the evaluated task, left out of the training "
              "tasks and the bank (with its family: ARC-Easy takes ARC-Challenge "
              "along).")  # fmt: skip
@click.option("--k", type=click.IntRange(min=0), default=2, show_default=True,
              help="--data reasoning-mc: demonstrations per instance.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1),
              help="--data reasoning-mc: training questions per source.")  # fmt: skip
@click.option("--dev-limit", type=click.IntRange(min=0), default=32, show_default=True,
              help="Dev instances the loss is measured on before and after (0: none).")  # fmt: skip
@click.option("--max-length", type=click.IntRange(min=16), default=1024, show_default=True,
              help="Tokens per instance (prompt + answer).")  # fmt: skip
@click.option("--lora-r", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--train-layers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Train only the top N decoder layers (0: all); cheaper steps on a "
              "CPU.")  # fmt: skip
def reader(demos: bool, held_out: str, k: int, limit: int | None, dev_limit: int,
           max_length: int, lora_r: int, train_layers: int, **kwargs: Any) -> None:  # fmt: skip
    """Fine-tune a reader on multiple-choice questions shown with k demonstrations
    retrieved from a bank of other tasks (answer: the option label). --data is a folder
    from `rarx train data reader`, or reasoning-mc (built on first use). OUT works as
    `llm:` of a generate stage (template: multiple-choice) after a demos stage."""
    from rarx.train.reader import ReaderTrainSettings, train_reader
    from rarx.train.reader_data import ReaderDataSettings

    opts = options_from(kwargs)
    data = ReaderDataSettings(held_out=held_out, k=k, limit=limit, seed=opts.seed)
    settings = ReaderTrainSettings(data, max_length, lora_r, train_layers, dev_limit)
    print_card(train_reader(opts, settings), opts.out)
