"""``rarx train lm``: continued pre-training of a causal LM on a corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rarx.cli.train.options import options_from, train_options


@click.command()
@click.option(
    "--corpus",
    required=True,
    type=click.Path(path_type=Path),
    help="In-domain text: any corpus rarx indexes (JSONL, BEIR folder, Parquet).",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=2),
    default=256,
    show_default=True,
    help="Tokens per packed training sequence.",
)
@click.option(
    "--dev-fraction",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.05,
    show_default=True,
    help="Share of blocks held out for the loss on the card.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="First N documents only.")
@train_options(lr=5e-5, batch_size=8, lora=True, data=False)
def lm(corpus: Path, block_size: int, dev_fraction: float, limit: int | None, **kw: Any) -> None:
    """Continue pre-training --base on --corpus (causal LM loss over packed sequences);
    the result in --out works as llm: or draft_llm: of any stage."""
    from rarx.train.lm import train_lm

    kw["data"] = str(corpus)
    opts = options_from(kw)
    card = train_lm(opts, block_size=block_size, dev_fraction=dev_fraction, limit=limit)
    m = card.metrics
    loss = ""
    if "dev_loss" in m:
        loss = f"; held-out loss {m['dev_loss_before']:.3f} -> {m['dev_loss']:.3f}"
    click.echo(f"trained {card.steps} steps in {card.seconds:.0f} s{loss}; model in {opts.out}")
