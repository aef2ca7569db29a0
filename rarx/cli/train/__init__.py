"""``rarx train``: one subcommand per registered objective (generated from its class,
:mod:`rarx.cli.train.objective`), and ``rarx train data``."""

from __future__ import annotations

import click

from rarx.cli.main import LazyGroup
from rarx.train.objective import OBJECTIVES

TRAIN_COMMANDS: dict[str, tuple[str, str]] = {
    name: ("rarx.cli.train.objective:objective_command", help_)
    for name, (_, _, help_) in OBJECTIVES.items()
} | {"data": ("rarx.cli.train.data:data", "Build training data (mc, ranking, gate, ...).")}


class TrainGroup(LazyGroup):
    commands_table = TRAIN_COMMANDS

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in OBJECTIVES:
            from rarx.cli.train.objective import objective_command

            return objective_command(cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=TrainGroup)
def train() -> None:
    """Train models on data rarx builds; each result is a model directory with a card
    (rarx_model.json) that works as a model name anywhere rarx takes one."""
