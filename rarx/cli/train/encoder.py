"""``rarx train encoder``: bi-encoder with MultipleNegativesRankingLoss."""

from __future__ import annotations

import click

from rarx.cli.train.options import options_from, train_options
from rarx.cli.train.report import print_card


@click.command("encoder")
@train_options(base="minilm", lr=2e-5, batch_size=16)
@click.option(
    "--negatives",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Wrong options per row as hard negatives (repeated when fewer).",
)
@click.option(
    "--dev-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Score at most this many dev questions (spread over the split).",
)
@click.option("--max-length", type=click.IntRange(min=8), default=256, show_default=True)
@click.option(
    "--sources",
    default=None,
    help="Comma-separated data sources to keep (default: all but boolq, whose "
    "yes/no options in-batch negatives cannot use).",
)
def encoder(**kwargs: object) -> None:
    """Fine-tune a bi-encoder on multiple-choice data: the correct option is the
    positive, the wrong options hard negatives, other questions' options in-batch
    negatives. The output directory is a model name."""
    from rarx.train.encoder import EncoderSettings, train_encoder

    opts = options_from(kwargs)
    raw = kwargs.pop("sources")
    sources = None if raw is None else tuple(s for s in str(raw).split(",") if s)
    print_card(train_encoder(opts, EncoderSettings(sources=sources, **kwargs)), opts.out)  # type: ignore[arg-type]
