"""Corpus readers: JSONL (``id``+``contents`` or BEIR ``_id``/``title``/``text``), BEIR
folders and Parquet, all yielding validated :class:`Document` values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rarx.errors import InputError
from rarx.io.hashing import file_checksum
from rarx.io.jsonl import read_jsonl
from rarx.types import Document

ID_FIELDS = ("id", "_id", "docid")
TEXT_FIELDS = ("contents", "text")
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz")


def corpus_files(path: str | Path) -> list[Path]:
    """The files a corpus path stands for: one file, a BEIR folder, or a folder of shards."""
    path = Path(path)
    if not path.exists():
        raise InputError("corpus not found", path)
    if path.is_file():
        return [path]
    if (path / "corpus.jsonl").is_file():
        return [path / "corpus.jsonl"]
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and (p.name.endswith(JSONL_SUFFIXES) or p.suffix == ".parquet")
    )
    if not files:
        raise InputError(
            "no corpus files found; expected corpus.jsonl (BEIR), *.jsonl shards or *.parquet", path
        )
    return files


def corpus_checksum(path: str | Path) -> str:
    """sha256 over the bytes of the corpus files, in order."""
    return file_checksum(corpus_files(path))


def _pick(obj: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in obj:
            return obj[name]
    return None


def _document(obj: dict[str, Any], path: Path, where: int | None, unit: str = "line") -> Document:
    docid = _pick(obj, ID_FIELDS)
    if docid is None:
        raise InputError(f"missing id field (expected one of {', '.join(ID_FIELDS)})", path, where)
    text = _pick(obj, TEXT_FIELDS)
    if text is None:
        raise InputError(
            f"document {docid!r}: missing text field (expected one of {', '.join(TEXT_FIELDS)})",
            path,
            where,
        )
    if not isinstance(text, str):
        raise InputError(f"document {docid!r}: text must be a string", path, where)
    title = obj.get("title") or ""
    if not isinstance(title, str):
        raise InputError(f"document {docid!r}: title must be a string", path, where)
    meta = {k: v for k, v in obj.items() if k not in (*ID_FIELDS, *TEXT_FIELDS, "title")}
    return Document(str(docid), text, title, meta)


def record_to_document(obj: Any, path: str | Path, where: int | None = None) -> Document:
    """One corpus record (a parsed JSON line or a Parquet row) as a checked Document."""
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, found {type(obj).__name__}", path, where)
    return _document(obj, Path(path), where)


def _read_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise InputError(f"not a readable Parquet file ({exc})", path) from None
    row = 0
    for batch in pf.iter_batches(batch_size=8192):
        for obj in batch.to_pylist():
            row += 1
            yield row, obj


class Corpus:
    """An iterable over a corpus path's documents, checked as they are read.

    Duplicate ids are an error unless ``dedupe`` is set, which keeps the first and
    counts the rest in :attr:`duplicates`.
    """

    def __init__(self, path: str | Path, dedupe: bool = False):
        self.path = Path(path)
        self.files = corpus_files(self.path)
        self.dedupe = dedupe
        self.duplicates = 0
        self.count = 0

    def __iter__(self) -> Iterator[Document]:
        seen: dict[str, tuple[Path, int]] = {}
        self.duplicates = self.count = 0
        for file in self.files:
            parquet = file.suffix == ".parquet"
            rows = _read_parquet(file) if parquet else read_jsonl(file)
            for where, obj in rows:
                doc = _document(obj, file, where)
                first = seen.get(doc.docid)
                if first is not None:
                    if self.dedupe:
                        self.duplicates += 1
                        continue
                    unit = "row" if parquet else "line"
                    raise InputError(
                        f"duplicate document id {doc.docid!r} (first at {first[0]} {unit} "
                        f"{first[1]}); pass --dedupe to keep the first",
                        file,
                        where,
                    )
                seen[doc.docid] = (file, where)
                self.count += 1
                yield doc
        if self.count == 0:
            raise InputError("corpus is empty: no documents found", self.path)


def read_corpus(path: str | Path, dedupe: bool = False) -> Iterator[Document]:
    return iter(Corpus(path, dedupe))
