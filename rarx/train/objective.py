"""What a training objective is, and the registry of them.

An objective is one module holding one class that implements :class:`Objective`: its
settings dataclass (whose fields are its ``rarx train NAME`` flags), its command's
defaults and help (:class:`CliSpec`), and :meth:`Objective.train`, which reads its data,
loads its base, fits it through :mod:`rarx.train.driver` (the time budget, resuming, the
frozen-state cache, the one save path) and evaluates it. The driver's :func:`rarx.train.
driver.run` seeds before it and writes the card (with the leakage record) after it.

A new objective is its module (listed in :data:`OBJECTIVES`), its test, and one line in
the README's training section; ``rarx train NAME`` is generated from the class.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rarx.errors import ConfigError

if TYPE_CHECKING:
    from rarx.models.card import DataRef
    from rarx.train.common import FitResult, TrainOptions

# name -> (module under rarx.train, class, the command's one-line help); imported on use,
# so `rarx train --help` lists them without importing any.
OBJECTIVES: dict[str, tuple[str, str, str]] = {
    "encoder": ("encoder", "Encoder", "Fine-tune a bi-encoder (MNRL, hard negatives)."),
    "cross-encoder": ("cross_encoder", "CrossEncoderObjective",
                      "Fine-tune a cross-encoder over options or candidates."),
    "first": ("first", "First", "Train an LLM as a FIRST single-token reranker."),
    "choice": ("choice", "Choice", "Teach an LLM to answer multiple choice as llm-choice "
               "reads it."),
    "gate": ("gate", "Gate", "Teach an LLM to ask for retrieval with <RET>."),
    "reader": ("reader", "Reader", "Meta-train a reader on retrieved demonstrations."),
    "lm": ("lm", "Lm", "Continue pre-training an LLM on a corpus (domain adaptation)."),
}  # fmt: skip


@dataclass(frozen=True)
class CliSpec:
    """The shared flags' defaults of an objective's command, and its help."""

    help: str  # the command's help text
    base: str | None = None  # None: --base is required
    lr: float = 2e-5
    batch_size: int = 16
    lora: bool = False  # offer --lora
    data_flag: str = "data"  # the input's flag (lm: corpus)
    data_help: str = "Training data: a file, or a data name."


@dataclass
class Outcome:
    """What an objective's training gives the driver to write into the card."""

    data: list[DataRef]
    result: FitResult
    metrics: dict[str, float] = field(default_factory=dict)
    overlap: dict[str, float] = field(default_factory=dict)  # the leakage record
    options: dict[str, Any] = field(default_factory=dict)  # the objective's own settings
    # where the dev figures before training came from (rarx.train.driver.before_training)
    before: dict[str, Any] | None = None


class Objective(Protocol):
    name: ClassVar[str]
    Settings: ClassVar[type]  # a frozen dataclass of :func:`rarx.train.common.setting` fields
    cli: ClassVar[CliSpec]

    def train(self, opts: TrainOptions, settings: Any) -> Outcome:
        """Fit ``opts.base`` on ``opts.data``, save it into ``opts.out`` and evaluate it
        (seeded before, the card written after, by the driver)."""
        ...


def objective_class(name: str) -> type[Objective]:
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown training objective {name!r}; expected one of "
                          f"{', '.join(OBJECTIVES)}")  # fmt: skip
    module, cls, _ = OBJECTIVES[name]
    return getattr(importlib.import_module(f"rarx.train.{module}"), cls)
