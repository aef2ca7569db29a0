"""``rarx train gate``: Adapt-LLM's <RET> gate (one new special token, answer-only loss)."""

from __future__ import annotations

from typing import Any

import click

from rarx.cli.train.options import options_from, train_options


@click.command("gate")
@train_options(base="smollm2-135m", lr=5e-5, batch_size=4, lora=True)
@click.option("--limit", type=click.IntRange(min=1),
              help="When --data names sources: training questions per source.")  # fmt: skip
@click.option("--dev-limit", type=click.IntRange(min=1),
              help="When --data names sources: dev questions per source.")  # fmt: skip
@click.option("--max-length", type=click.IntRange(min=16), default=512, show_default=True,
              help="Tokens per instance (prompt + answer).")  # fmt: skip
@click.option("--lora-r", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lora-alpha", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--probe-init/--no-probe-init", default=True, show_default=True,
              help="Fit the new <RET> row as a linear probe on the frozen model before "
                   "fine-tuning (LP-FT).")  # fmt: skip
def gate(limit: int | None, dev_limit: int | None, max_length: int, lora_r: int,
         lora_alpha: int, probe_init: bool, **kwargs: Any) -> None:  # fmt: skip
    """Teach an LLM to answer, or to ask for retrieval with <RET> when it would answer
    wrong. --data is a folder from `rarx train data gate` or source names (sciq, squad,
    nq-open, triviaqa; built on first use with --base). OUT works as `llm:` anywhere."""
    from rarx.train.gate import GateTrainSettings, train_gate

    opts = options_from(kwargs)
    settings = GateTrainSettings(limit, dev_limit, max_length, lora_r, lora_alpha, probe_init)
    result = train_gate(opts, settings)
    card = result.card
    m = ", ".join(f"{k} {v}" for k, v in sorted(card.metrics.items()))
    click.echo(f"{card.steps} steps in {card.seconds:.0f} s"
               f"{' (stopped at --max-minutes)' if card.stopped_early else ''}; {m}")  # fmt: skip
    click.echo(f"wrote {result.out} (<RET> is token {result.ret_id})")
