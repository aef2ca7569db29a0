"""The flags every ``rarx train`` objective takes, and their conversion to TrainOptions."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rarx.cli.options import quiet_option

COMMON = ("data", "base", "out", "epochs", "max_steps", "lr", "batch_size", "seed", "device",
          "max_minutes", "resume", "lora", "save_steps", "quiet")  # fmt: skip


def train_options(spec: Any) -> Callable:
    """Decorate a command with the shared flags, with an objective's defaults
    (:class:`rarx.train.objective.CliSpec`: base, lr, batch size, --lora, the input flag)."""
    base, lr, batch_size = spec.base, spec.lr, spec.batch_size

    def decorate(f: Callable) -> Callable:
        opts = [
            click.option(
                f"--{spec.data_flag}", spec.data_flag, required=True, help=spec.data_help
            ),  # fmt: skip
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
                help="Stop cleanly after this long, keeping a checkpoint. The learning-rate "
                "schedule is fitted to this budget, unless --max-steps fixes the plan (a run "
                "in pieces: --max-steps N --max-minutes M, then the same with --resume).",
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
        if spec.lora:
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


def options_from(kwargs: dict[str, Any], data_flag: str = "data") -> Any:
    """Pop the shared flags (the input under its own flag's name) from a command's keyword
    arguments into TrainOptions; what remains is the objective's own."""
    from rarx.train.common import TrainOptions

    if data_flag != "data" and data_flag in kwargs:
        kwargs["data"] = str(kwargs.pop(data_flag))
    return TrainOptions(**{k: kwargs.pop(k) for k in COMMON if k in kwargs})


def _setting_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def _base_type(hint: Any) -> Any:
    """``X | None`` → X; ``tuple[str, ...]`` → tuple."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, type(int | None)) and len(args) == 1:
        return _base_type(args[0])
    return typing.get_origin(hint) or hint


def _option(f: dataclasses.Field, hint: Any) -> Callable:
    meta, base = f.metadata, _base_type(hint)
    flag = meta.get("flag", "--" + f.name.replace("_", "-"))
    kw: dict[str, Any] = {"help": meta.get("help", ""), "default": f.default}
    if base is bool and meta.get("required"):  # a flag that must be given: --demos
        return click.option(flag, f.name, is_flag=True, required=True, help=kw["help"])
    if base is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", f.name, show_default=True, **kw)
    if base is tuple:  # comma-separated on the command line
        kw["default"] = ",".join(f.default) if isinstance(f.default, tuple) and f.default else None
        return click.option(flag, f.name, type=str, **kw)
    if "choices" in meta:
        kw["type"] = click.Choice(list(meta["choices"]))
    elif base is Path:
        kw["type"] = click.Path(exists=meta.get("exists", False), path_type=Path)
    elif base in (int, float) and "min" in meta:
        kw["type"] = (click.IntRange if base is int else click.FloatRange)(min=meta["min"])
    elif base in (int, float, str):
        kw["type"] = base
    return click.option(flag, f.name, show_default=f.default is not None, **kw)


def settings_options(cls: type) -> Callable:
    """One flag per field of an objective's settings dataclass (see
    :func:`rarx.train.common.setting`): defaults and help are the dataclass's."""

    def decorate(fn: Callable) -> Callable:
        for f, hint in reversed(_setting_fields(cls)):
            fn = _option(f, hint)(fn)
        return fn

    return decorate


def settings_from(cls: type, kwargs: dict[str, Any], **given: Any) -> Any:
    """Pop the settings' flags from a command's keyword arguments into ``cls``."""
    values = dict(given)
    for f, hint in _setting_fields(cls):
        if f.name not in kwargs:
            continue
        value = kwargs.pop(f.name)
        if _base_type(hint) is tuple:  # not given: the field's own default (None or ())
            value = f.default if value is None else tuple(s for s in value.split(",") if s)
        values[f.name] = value
    return cls(**values)
