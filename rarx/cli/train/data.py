"""``rarx train data``: build training files; one builder per module here."""

from __future__ import annotations

import click

from rarx.cli.main import LazyGroup

DATA_COMMANDS: dict[str, tuple[str, str]] = {
    "mc": ("rarx.cli.train.data_mc:mc", "Multiple-choice reasoning pairs (not RAR-b test data)."),
    "teacher": ("rarx.cli.train.data_teacher:teacher", "A teacher's option scores on MC data."),
    "ranking": ("rarx.cli.train.data_ranking:ranking", "Ranking windows with a teacher order."),
    "gate": ("rarx.cli.train.data_gate:gate", "Adapt-LLM <RET> instances (closed-book answers)."),
    "reader": ("rarx.cli.train.data_reader:reader", "Demonstration-augmented reader instances."),
}


class DataGroup(LazyGroup):
    commands_table = DATA_COMMANDS


@click.group(cls=DataGroup)
def data() -> None:
    """Build training data. Every builder measures its overlap with the evaluation files
    rarx knows and records it, so a model trained on it is never reported on them."""
