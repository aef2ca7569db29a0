"""The Index protocol and the capabilities a kind may add, the ``rarx_index.json``
manifest, atomic builds and ``load_index``. The kinds themselves are listed in
:mod:`rarx.index.registry`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from rarx.errors import IndexExistsError, IndexFormatError
from rarx.index.integrity import MANIFEST_NAME, damaged, record_files, size_problems
from rarx.io.atomic import atomic_directory, atomic_write
from rarx.types import Document, Query, Ranking

FORMAT_VERSION = 1


class Capability(StrEnum):
    """What an index kind can do beyond :class:`Index`; callers ask for a capability,
    never for a kind name (see :func:`rarx.index.registry.kinds_with`)."""

    RANKED_SEARCH = "ranked_search"  # a document ranking the retrieve/fuse/arr stages use
    DOCUMENTS = "documents"  # doc(docid) returns the stored text
    INSTRUCTIONS = "instructions"  # search(..., instruction=...): see InstructedIndex
    THREADS = "threads"  # search(..., threads=...) runs a batch on worker threads
    VECTORS = "vectors"  # embeddings and search_vectors: see VectorIndex
    QA_PAIRS = "qa_pairs"  # question-answer pairs: see QAPairIndex


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
    # Every file the build wrote, relative path -> {"size", "checksum"} (see
    # rarx.index.integrity); empty for an index built before rarx recorded them, or adopted.
    files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def write(self, directory: Path) -> None:
        with atomic_write(directory / MANIFEST_NAME) as f:
            json.dump(asdict(self), f, indent=2, sort_keys=True, default=dict)
            f.write("\n")

    @classmethod
    def read(
        cls, directory: str | Path, expect: str | None = None, check_files: bool = True
    ) -> Manifest:
        """The manifest of an index directory; with ``expect``, one of that kind only.
        ``check_files``: the files the build recorded must be there, each of its
        recorded size (an IndexCorruptError naming the first that is not)."""
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
        if expect is not None and manifest.kind != expect:
            raise IndexFormatError(
                f"{directory} is a {manifest.kind!r} index, not {expect!r}; open it with "
                "rarx.index.base.load_index, which reads the kind from its manifest"
            )
        problems = size_problems(directory, manifest.files) if check_files else []
        if problems:
            raise damaged(directory, problems)
        return manifest


@runtime_checkable
class Index(Protocol):
    """What every kind does. ``build(source, path, *, overwrite, quiet, **build_params)``
    is a classmethod too; its parameters are the kind's typed build parameters."""

    kind: ClassVar[str]
    path: Path
    manifest: Manifest

    @classmethod
    def load(cls, path: str | Path) -> Self: ...

    def search(
        self, queries: Sequence[Query], k: int = 10, with_docs: bool = False
    ) -> list[Ranking]: ...

    def doc(self, docid: str) -> Document | None: ...


@runtime_checkable
class InstructedIndex(Index, Protocol):
    """``Capability.INSTRUCTIONS``: an instruction is prepended to each query when encoded."""

    def search(
        self, queries: Sequence[Query], k: int = 10, with_docs: bool = False, *,
        instruction: str = "",
    ) -> list[Ranking]: ...  # fmt: skip


@runtime_checkable
class VectorIndex(Index, Protocol):
    """``Capability.VECTORS``: document embeddings, searchable with query vectors."""

    dim: int

    @property
    def embeddings(self) -> Any: ...

    @property
    def docids(self) -> list[str]: ...

    def search_vectors(
        self, qids: Sequence[str], vectors: Any, k: int = 10, with_docs: bool = False
    ) -> list[Ranking]: ...


@runtime_checkable
class QAPairIndex(Index, Protocol):
    """``Capability.QA_PAIRS``: stored question-answer pairs, nearest by question."""

    pairs: Mapping[str, Any]

    def nearest(self, queries: Sequence[Query], k: int) -> list[list[tuple[Any, float]]]: ...


def load_index(path: str | Path, **options: Any) -> Index:
    """Open an index directory, dispatching on the kind in its manifest. ``options`` are
    the kind's load options (e.g. ``rm3=True`` for BM25); see :mod:`rarx.index.registry`."""
    from rarx.index.registry import index_kind  # the registry imports this module

    kind = index_kind(Manifest.read(path).kind)
    return kind.cls.load(path, **kind.load_kwargs(options, f"{path} ({kind.name} index)"))


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


@contextmanager
def staged_build(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary directory beside ``target``, swapped into place when the build
    succeeds; a failed or interrupted build leaves ``target`` untouched. The build holds
    a lock on ``target`` (a second build of it fails at once with a LockedError) and
    first removes what killed builds of it left. Once the body has written the
    manifest, every file in the directory is recorded in it (size and sha256)."""
    with atomic_directory(target, overwrite, MANIFEST_NAME, "a rarx index",
                          "choose another path", IndexExistsError) as tmp:  # fmt: skip
        yield tmp
        if (tmp / MANIFEST_NAME).is_file():
            manifest = Manifest.read(tmp, check_files=False)
            replace(manifest, files=record_files(tmp)).write(tmp)


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
