"""What a ``rarx train`` command prints when it is done: the card, briefly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def print_card(card: Any, out: Path) -> None:
    stop = " (stopped by --max-minutes)" if card.stopped_early else ""
    click.echo(f"{out}: {card.objective} from {card.base}, {card.steps} steps, "
               f"{card.epochs:g} epochs, {card.seconds:g} s{stop}")  # fmt: skip
    for k, v in sorted(card.metrics.items()):
        shown = f"{v:.4f}" if isinstance(v, float) and not float(v).is_integer() else f"{v:g}"
        click.echo(f"  {k}: {shown}")
    leaks = {k: v for k, v in card.overlap.items() if v > 0 and "+" not in k}
    if leaks:
        said = ", ".join(f"{k} {v:.0%}" for k, v in sorted(leaks.items()))
        click.echo(f"  overlaps (do not report it on these): {said}")
