"""``rarx train first``: an LLM trained as a FIRST single-token reranker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from rarx.cli.train.options import options_from, train_options
from rarx.cli.train.report import print_card
from rarx.train.first import DEFAULTS as _DEFAULTS  # a light module: no torch at import


def first_loss_options(f: Callable) -> Callable:
    """FIRST's loss weights and what trains (shared with ``rarx train choice``)."""
    for option in reversed([
        click.option("--lm-weight", type=float, default=_DEFAULTS["lm_weight"],
                     show_default=True,
                     help="Weight of the language-modelling loss on the teacher's reply."),
        click.option("--rank-weight", type=float, default=_DEFAULTS["rank_weight"],
                     show_default=True,
                     help="Weight of the weighted RankNet loss on the first token's logits."),
        click.option("--lora-r", type=click.IntRange(min=1), default=_DEFAULTS["lora_r"],
                     show_default=True, help="LoRA rank (with --lora)."),
        click.option("--train-layers", type=click.IntRange(min=0),
                     default=_DEFAULTS["train_layers"], show_default=True,
                     help="Train only the top N decoder layers (0: all); much cheaper per "
                     "step on a CPU."),
    ]):  # fmt: skip
        f = option(f)
    return f


@click.command()
@train_options(base="smollm2-135m", lr=1e-5, batch_size=2, lora=True)
@click.option(
    "--passage-tokens",
    type=click.IntRange(min=1),
    default=_DEFAULTS["passage_tokens"],
    show_default=True,
    help="Cut each passage to this many tokens, as the reranker will.",
)
@first_loss_options
@click.option(
    "--dev",
    type=click.IntRange(min=0),
    default=_DEFAULTS["dev"],
    show_default=True,
    help="Windows held out and scored before and after training (0: none).",
)
def first(**kwargs: Any) -> None:
    """Train an LLM as a FIRST reranker on ranking windows.

    --data is a windows file from `rarx train data ranking`, or a packaged dataset name
    (its windows are built on first use). The result in --out is a model directory:
    use it as `rerank: {method: first, llm: OUT}` in a pipeline, or
    `rarx search ... --rerank first --rerank-llm OUT`.
    """
    from rarx.train.first import train_first

    opts = options_from(kwargs)
    print_card(train_first(opts, **kwargs), opts.out)
