"""The Index protocol, the ``rarx_index.json`` manifest, atomic builds and ``load_index``."""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from rarx.errors import IndexExistsError, IndexFormatError
from rarx.io.atomic import atomic_directory, atomic_write
from rarx.types import Document, Query, Ranking

MANIFEST_NAME = "rarx_index.json"
FORMAT_VERSION = 1

# kind -> "module:Class"; imported only when an index of that kind is built or loaded.
INDEX_KINDS: dict[str, str] = {
    "bm25": "rarx.index.lucene:LuceneIndex",
    "dense": "rarx.index.dense:DenseIndex",
    "qa-memory": "rarx.index.qa_memory:QAMemoryIndex",  # question-answer pairs (RePAQ)
}


@dataclass(frozen=True)
class Manifest:
    kind: str
    documents: int
    corpus_checksum: str
    params: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    format_version: int = FORMAT_VERSION
    built_at: str = ""
    rarx_version: str = ""

    def write(self, directory: Path) -> None:
        with atomic_write(directory / MANIFEST_NAME) as f:
            json.dump(asdict(self), f, indent=2, sort_keys=True, default=dict)
            f.write("\n")

    @classmethod
    def read(cls, directory: str | Path) -> Manifest:
        directory = Path(directory)
        path = directory / MANIFEST_NAME
        if not directory.is_dir():
            raise IndexFormatError(f"{directory}: no such index directory")
        if not path.is_file():
            raise IndexFormatError(
                f"{directory}: not a rarx index (no {MANIFEST_NAME}); build one with 'rarx index'"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            manifest = cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise IndexFormatError(f"{path}: unreadable index manifest ({exc})") from None
        if manifest.format_version != FORMAT_VERSION:
            raise IndexFormatError(
                f"{directory}: index format version {manifest.format_version}, this rarx reads "
                f"version {FORMAT_VERSION}; rebuild it with 'rarx index --overwrite'"
            )
        if manifest.kind not in INDEX_KINDS:
            raise IndexFormatError(
                f"{directory}: unknown index kind {manifest.kind!r} "
                f"(known: {', '.join(sorted(INDEX_KINDS))})"
            )
        return manifest


@runtime_checkable
class Index(Protocol):
    kind: ClassVar[str]
    path: Path
    manifest: Manifest

    @classmethod
    def load(cls, path: str | Path) -> Self: ...

    def search(self, queries: Sequence[Query], k: int = 10) -> list[Ranking]: ...

    def doc(self, docid: str) -> Document | None: ...


def index_class(kind: str) -> Any:
    if kind not in INDEX_KINDS:
        raise IndexFormatError(
            f"unknown index kind {kind!r} (known: {', '.join(sorted(INDEX_KINDS))})"
        )
    module, name = INDEX_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def load_index(path: str | Path) -> Index:
    """Open an index directory, dispatching on the kind in its manifest."""
    manifest = Manifest.read(path)
    return index_class(manifest.kind).load(path)


class ChecksumStream:
    """Passes documents through while hashing their content, so a build reads its corpus once."""

    def __init__(self, docs: Iterable[Document]):
        self._docs = docs
        self._hash = hashlib.sha256()
        self.count = 0

    def __iter__(self) -> Iterator[Document]:
        for d in self._docs:
            self._hash.update(f"{d.docid}\t{d.title}\t{d.text}\n".encode())
            self.count += 1
            yield d

    @property
    def checksum(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def staged_build(target: str | Path, overwrite: bool = False) -> AbstractContextManager[Path]:
    """A temporary directory beside ``target``, swapped into place when the build
    succeeds; a failed or interrupted build leaves ``target`` untouched."""
    return atomic_directory(target, overwrite, MANIFEST_NAME, "a rarx index",
                            "choose another path", IndexExistsError)  # fmt: skip


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
