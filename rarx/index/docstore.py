"""The Parquet docstore of the dense and impact (SPLADE) indexes.

``docstore.parquet`` holds ``docid``, ``title``, ``text`` and ``meta`` (the document's
metadata as JSON, null when empty; older indexes lack the column) in index row order. It
is written a chunk at a time while the chunk's documents are encoded (the corpus is never
held whole), and read a row group at a time, only when a document is asked for.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from rarx.errors import InputError
from rarx.index.integrity import reading
from rarx.types import Document

DOCSTORE_FILE = "docstore.parquet"
COLUMNS = ("docid", "title", "text", "meta")


def document_chunks(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def unique_texts(
    docs: Iterable[Document], size: int, pending: deque[list[Document]]
) -> Iterator[list[str]]:
    """The texts to encode of each chunk of ``docs``; each chunk is appended to ``pending``
    (to be stored when its encoding comes back). A repeated id is an error: it would make
    a lookup by id ambiguous."""
    seen: set[str] = set()
    for chunk in document_chunks(docs, size):
        for d in chunk:
            if d.docid in seen:
                raise InputError(f"duplicate document id {d.docid!r}; ids must be unique "
                                 "(rarx index --dedupe keeps the first)")  # fmt: skip
            seen.add(d.docid)
        pending.append(chunk)
        yield [d.contents for d in chunk]


def meta_json(doc: Document) -> str | None:
    """The document's metadata as the docstore's JSON (None when it has none)."""
    if not doc.meta:
        return None
    try:
        return json.dumps(dict(doc.meta), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"document {doc.docid!r}: its meta cannot be stored as JSON ({exc}); keep meta "
            "to strings, numbers, booleans, lists and mappings"
        ) from None


def docstore_table(docs: list[Document]) -> Any:
    """The docstore's Arrow rows of ``docs`` (typed even when empty)."""
    import pyarrow as pa

    columns = [[d.docid for d in docs], [d.title for d in docs], [d.text for d in docs],
               [meta_json(d) for d in docs]]  # fmt: skip
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    return pa.Table.from_arrays([pa.array(c, pa.string()) for c in columns], schema=schema)


@contextmanager
def docstore_writer(path: Path) -> Iterator[Any]:
    """A function that appends a chunk of documents to the docstore file ``path``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    with pq.ParquetWriter(path, schema) as writer:
        yield lambda chunk: writer.write_table(docstore_table(chunk))


class Docids:
    """Row <-> docid lookups over ``self.docids`` (set by the subclass), built on first use."""

    docids: list[str]
    _rows: dict[str, int] | None = None
    _docid_array: np.ndarray | None = None

    @property
    def docid_array(self) -> np.ndarray:
        """The docids as a read-only object array: rankings index it with faiss's rows."""
        if self._docid_array is None:
            table = np.empty(len(self.docids), dtype=object)
            table[:] = self.docids
            table.flags.writeable = False
            self._docid_array = table
        return self._docid_array

    def row_of(self, docid: str) -> int | None:
        if self._rows is None:
            self._rows = {d: i for i, d in enumerate(self.docids)}
        return self._rows.get(docid)


class DocStore(Docids):
    """Parquet rows read one row group at a time, only when a document is asked for."""

    CACHED_GROUPS = 8

    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        self._path = path
        with reading(path.parent, path.name):  # a damaged file: one line naming it
            self._file = pq.ParquetFile(path, memory_map=True)
            meta = self._file.metadata
            sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            self.docids: list[str] = self._file.read(columns=["docid"]).column("docid").to_pylist()
        self._starts = np.cumsum([0, *sizes])
        self._groups: OrderedDict[int, tuple[list[str], list[str], list[Any]]] = OrderedDict()
        self._columns = [c for c in ("title", "text", "meta") if c in self._file.schema_arrow.names]

    def _group(self, g: int) -> tuple[list[str], list[str], list[Any]]:
        if g in self._groups:
            self._groups.move_to_end(g)
            return self._groups[g]
        with reading(self._path.parent, self._path.name):
            table = self._file.read_row_group(g, columns=self._columns)
        metas = table.column("meta").to_pylist() if "meta" in self._columns else []
        value = (table.column("title").to_pylist(), table.column("text").to_pylist(), metas)
        self._groups[g] = value
        if len(self._groups) > self.CACHED_GROUPS:
            self._groups.popitem(last=False)
        return value

    def documents(self, rows: Iterable[int]) -> dict[int, Document]:
        found: dict[int, Document] = {}
        for row in sorted(set(rows)):  # sorted: each row group is decoded once
            g = int(np.searchsorted(self._starts, row, side="right")) - 1
            titles, texts, metas = self._group(g)
            i = row - int(self._starts[g])
            if metas and metas[i]:
                found[row] = Document(self.docids[row], texts[i], titles[i], json.loads(metas[i]))
            else:
                found[row] = Document(self.docids[row], texts[i], titles[i])
        return found


class DocidList(Docids):
    """The docstore of an adopted pyserini faiss folder: ids only (its ``docid`` file)."""

    def __init__(self, path: Path):
        self.docids = path.read_text(encoding="utf-8").splitlines()

    def documents(self, rows: Iterable[int]) -> dict[int, Document | None]:
        return dict.fromkeys(rows)  # no text stored: hits carry none
