"""``rarx train first``: an LLM trained as a FIRST single-token reranker."""

from __future__ import annotations

from typing import Any

import click

from rarx.cli.train.options import options_from, settings_from, settings_options, train_options
from rarx.cli.train.report import print_card
from rarx.train.first import FirstSettings  # a light module: no torch at import


@click.command()
@train_options(base="smollm2-135m", lr=1e-5, batch_size=2, lora=True)
@settings_options(FirstSettings)
def first(**kwargs: Any) -> None:
    """Train an LLM as a FIRST reranker on ranking windows.

    --data is a windows file from `rarx train data ranking`, or a packaged dataset name
    (its windows are built on first use). The result in --out is a model directory:
    use it as `rerank: {method: first, llm: OUT}` in a pipeline, or
    `rarx search ... --rerank first --rerank-llm OUT`.
    """
    from rarx.train.first import train_first

    opts = options_from(kwargs)
    print_card(train_first(opts, settings_from(FirstSettings, kwargs)), opts.out)
