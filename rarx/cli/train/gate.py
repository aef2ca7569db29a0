"""``rarx train gate``: Adapt-LLM's <RET> gate (one new special token, answer-only loss)."""

from __future__ import annotations

from typing import Any

import click

from rarx.cli.train.options import options_from, settings_from, settings_options, train_options
from rarx.train.gate import GateTrainSettings


@click.command("gate")
@train_options(base="smollm2-135m", lr=5e-5, batch_size=4, lora=True)
@settings_options(GateTrainSettings)
def gate(**kwargs: Any) -> None:
    """Teach an LLM to answer, or to ask for retrieval with <RET> when it would answer
    wrong. --data is a folder from `rarx train data gate` or source names (sciq, squad,
    nq-open, triviaqa; built on first use with --base). OUT works as `llm:` anywhere."""
    from rarx.train.gate import train_gate

    opts = options_from(kwargs)
    result = train_gate(opts, settings_from(GateTrainSettings, kwargs))
    card = result.card
    m = ", ".join(f"{k} {v}" for k, v in sorted(card.metrics.items()))
    click.echo(f"{card.steps} steps in {card.seconds:.0f} s"
               f"{' (stopped at --max-minutes)' if card.stopped_early else ''}; {m}")  # fmt: skip
    click.echo(f"wrote {result.out} (<RET> is token {result.ret_id})")
