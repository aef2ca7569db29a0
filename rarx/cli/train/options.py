"""The flags every ``rarx train`` objective takes, and their conversion to TrainOptions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rarx.cli.options import quiet_option

COMMON = ("data", "base", "out", "epochs", "max_steps", "lr", "batch_size", "seed", "device",
          "max_minutes", "resume", "lora", "save_steps", "quiet")  # fmt: skip


def train_options(
    base: str | None = None, lr: float = 2e-5, batch_size: int = 16, lora: bool = False,
    data: bool = True,
) -> Callable:  # fmt: skip
    """Decorate a command with the shared flags; defaults differ per objective. With
    ``data=False`` the command names its own input flag (e.g. ``--corpus``)."""

    def decorate(f: Callable) -> Callable:
        opts = [
            click.option("--data", required=True, help="Training data: a file, or a data name."),
            click.option(
                "--base",
                default=base,
                required=base is None,
                show_default=True,
                help="Model to start from: a rarx model name, a path or a hub name.",
            ),
            click.option(
                "--out",
                type=click.Path(path_type=Path),
                required=True,
                help="Output model directory (it becomes a model name).",
            ),
            click.option("--epochs", type=float, default=1.0, show_default=True),
            click.option(
                "--max-steps",
                type=int,
                default=-1,
                show_default=True,
                help="Stop after this many optimiser steps (overrides --epochs).",
            ),
            click.option("--lr", type=float, default=lr, show_default=True),
            click.option(
                "--batch-size", type=click.IntRange(min=1), default=batch_size, show_default=True
            ),
            click.option("--seed", type=int, default=42, show_default=True),
            click.option(
                "--device",
                default="cpu",
                show_default=True,
                help="cpu, cuda, or auto (a GPU when there is one).",
            ),
            click.option(
                "--max-minutes",
                type=float,
                default=None,
                help="Stop cleanly after this long, keeping a checkpoint.",
            ),
            click.option(
                "--resume",
                is_flag=True,
                help="Continue from the newest checkpoint under OUT/checkpoints.",
            ),
            click.option(
                "--save-steps",
                type=click.IntRange(min=1),
                default=500,
                show_default=True,
                help="Checkpoint every this many steps.",
            ),
            quiet_option,
        ]
        if not data:
            opts.pop(0)
        if lora:
            opts.append(
                click.option(
                    "--lora",
                    is_flag=True,
                    help="Train LoRA adapters (peft) instead of all weights.",
                )
            )
        for opt in reversed(opts):
            f = opt(f)
        return f

    return decorate


def options_from(kwargs: dict[str, Any]) -> Any:
    """Pop the shared flags from a command's keyword arguments into TrainOptions; what
    remains is the objective's own."""
    from rarx.train.common import TrainOptions

    return TrainOptions(**{k: kwargs.pop(k) for k in COMMON if k in kwargs})
