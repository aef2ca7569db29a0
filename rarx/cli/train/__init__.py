"""``rarx train``: one subcommand per objective, each in its own module here."""

from __future__ import annotations

import click

from rarx.cli.main import LazyGroup

TRAIN_COMMANDS: dict[str, tuple[str, str]] = {
    "encoder": ("rarx.cli.train.encoder:encoder", "Fine-tune a bi-encoder (MNRL, hard negatives)."),
    "cross-encoder": (
        "rarx.cli.train.cross_encoder:cross_encoder",
        "Fine-tune a cross-encoder over options or candidates.",
    ),
    "first": ("rarx.cli.train.first:first", "Train an LLM as a FIRST single-token reranker."),
    "choice": (
        "rarx.cli.train.choice:choice",
        "Teach an LLM to answer multiple choice as llm-choice reads it.",
    ),
    "gate": ("rarx.cli.train.gate:gate", "Teach an LLM to ask for retrieval with <RET>."),
    "reader": ("rarx.cli.train.reader:reader", "Meta-train a reader on retrieved demonstrations."),
    "lm": ("rarx.cli.train.lm:lm", "Continue pre-training an LLM on a corpus (domain adaptation)."),
    "data": ("rarx.cli.train.data:data", "Build training data (mc, ranking, gate, ...)."),
}


class TrainGroup(LazyGroup):
    commands_table = TRAIN_COMMANDS


@click.group(cls=TrainGroup)
def train() -> None:
    """Train models on data rarx builds; each result is a model directory with a card
    (rarx_model.json) that works as a model name anywhere rarx takes one."""
