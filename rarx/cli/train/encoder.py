"""``rarx train encoder``: bi-encoder with MultipleNegativesRankingLoss."""

from __future__ import annotations

from typing import Any

import click

from rarx.cli.train.options import options_from, settings_from, settings_options, train_options
from rarx.cli.train.report import print_card
from rarx.train.encoder import EncoderSettings


@click.command("encoder")
@train_options(base="minilm", lr=2e-5, batch_size=16)
@settings_options(EncoderSettings)
def encoder(**kwargs: Any) -> None:
    """Fine-tune a bi-encoder on multiple-choice data: the correct option is the
    positive, the wrong options hard negatives, other questions' options in-batch
    negatives. The output directory is a model name."""
    from rarx.train.encoder import train_encoder

    opts = options_from(kwargs)
    print_card(train_encoder(opts, settings_from(EncoderSettings, kwargs)), opts.out)
