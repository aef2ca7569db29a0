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
    """One multiple-choice question in RAR-b's MCR layout."""

    instruction: str
    query: str
    options: tuple[str, ...]
    label: int


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
