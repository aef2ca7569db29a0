"""``rarx train lm``: continued pre-training of a causal LM on a corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rarx.cli.train.options import options_from, settings_from, settings_options, train_options
from rarx.train.lm import LmSettings


@click.command()
@click.option(
    "--corpus",
    required=True,
    type=click.Path(path_type=Path),
    help="In-domain text: any corpus rarx indexes (JSONL, BEIR folder, Parquet).",
)
@settings_options(LmSettings)
@train_options(lr=5e-5, batch_size=8, lora=True, data=False)
def lm(corpus: Path, **kw: Any) -> None:
    """Continue pre-training --base on --corpus (causal LM loss over packed sequences);
    the result in --out works as llm: or draft_llm: of any stage."""
    from rarx.train.lm import train_lm

    kw["data"] = str(corpus)
    opts = options_from(kw)
    card = train_lm(opts, settings_from(LmSettings, kw))
    m = card.metrics
    loss = ""
    if "dev_loss" in m:
        loss = f"; held-out loss {m['dev_loss_before']:.3f} -> {m['dev_loss']:.3f}"
    click.echo(f"trained {card.steps} steps in {card.seconds:.0f} s{loss}; model in {opts.out}")
