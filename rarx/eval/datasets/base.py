"""What a dataset builder returns, the dataset registry entry, and the manifest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rarx.types import Document, Query

DatasetKind = Literal["full", "qa", "mcr"]
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class McrItem:
    """One multiple-choice question in RAR-b's MCR layout: what the evaluator scores and
    what training reads. Training data also says where an item comes from (``id``,
    ``source``), its ``split`` (train | dev), and the source's own question text
    (``question``; ``query`` is what a retriever sees)."""

    instruction: str
    query: str
    options: tuple[str, ...]
    label: int
    id: str = ""
    source: str = ""
    split: str = ""
    question: str = ""

    @property
    def positive(self) -> str:
        return self.options[self.label]

    @property
    def negatives(self) -> list[str]:
        return [o for i, o in enumerate(self.options) if i != self.label]


@dataclass(frozen=True)
class Built:
    """A dataset built in memory, ready to be written as a BEIR folder."""

    corpus: Sequence[Document]
    queries: Sequence[Query]
    qrels: dict[str, dict[str, int]]
    sources: Sequence[str]  # files inside the source package that it was read from
    instruction: str = ""
    mcr: Sequence[McrItem] = ()
    notes: str = ""
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: DatasetKind
    description: str
    build: Callable[[], Built]
