"""Reading a corpus with Ray Data: the files of a corpus path (JSONL, gzipped JSONL,
Parquet; see :func:`rarx.io.corpus.corpus_files`) are read and checked by Ray tasks,
record by record as :class:`rarx.io.corpus.Corpus` checks them, into Arrow blocks of
``docid``, ``title``, ``text`` and ``meta`` (JSON) kept in Ray's object store, in
corpus order.

The blocks are read to the end before any rarx worker starts: Ray Data's own tasks need
CPUs, and workers that hold every CPU would leave them none.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rarx.distributed.cluster import rarx_errors, ray
from rarx.errors import InputError
from rarx.index.docstore import COLUMNS, docstore_table
from rarx.io.corpus import corpus_files, record_to_document
from rarx.types import Document

BLOCK_BYTES = 64 * 2**20  # target block size when blocks are split between workers


def _parse_lines(batch: Any) -> Any:
    """JSON lines (Ray Data's ``text`` and ``path`` columns) to documents."""
    docs = []
    for line, path in zip(batch.column("text").to_pylist(), batch.column("path").to_pylist(),
                          strict=True):  # fmt: skip
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg}) in line {line[:80]!r}", path) from None
        docs.append(record_to_document(obj, path))
    return docstore_table(docs)


def _parse_rows(batch: Any, where: str) -> Any:
    return docstore_table([record_to_document(row, where) for row in batch.to_pylist()])


@contextmanager
def _ordered() -> Iterator[None]:
    """Datasets made and run in here keep blocks in input order (a dataset copies the
    settings when it is made) and print nothing: rarx shows its own progress, and Ray
    Data's errors reach the caller as exceptions."""
    context = ray().data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = (context.execution_options.preserve_order, context.enable_progress_bars, logger.level)
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved[:2]
        logger.setLevel(saved[2])


def read_blocks(path: str | Path, workers: int = 1, split: bool = False) -> list[Any]:
    """The corpus at ``path`` as ordered Arrow block references. With ``split``, the
    blocks are cut to about equal sizes, at least ``workers`` of them, so contiguous runs
    of blocks give each worker an equal share."""
    files = corpus_files(path)
    with _ordered(), rarx_errors(f"reading {path}"):
        data = ray().data
        refs = []
        # One dataset per run of files of a format, their blocks concatenated in order:
        # Ray Data's union would interleave them.
        for parquet, group in _runs(files):
            names = [str(f) for f in group]
            if parquet:
                ds = data.read_parquet(names).map_batches(
                    _parse_rows, batch_format="pyarrow", fn_kwargs={"where": str(path)}
                )
            else:
                ds = data.read_text(names, include_paths=True, drop_empty_lines=True)
                ds = ds.map_batches(_parse_lines, batch_format="pyarrow")
            refs += ds.to_arrow_refs()
        if split:
            ds = data.from_arrow_refs(refs)
            per_worker = max(1, math.ceil(ds.size_bytes() / workers / BLOCK_BYTES))
            refs = ds.repartition(workers * per_worker).to_arrow_refs()
        return refs


def _runs(files: list[Path]) -> list[tuple[bool, list[Path]]]:
    """Consecutive files of one format (Parquet or JSON lines), in order."""
    runs: list[tuple[bool, list[Path]]] = []
    for f in files:
        parquet = f.suffix == ".parquet"
        if runs and runs[-1][0] == parquet:
            runs[-1][1].append(f)
        else:
            runs.append((parquet, [f]))
    return runs


def block_documents(table: Any) -> Iterator[Document]:
    columns = [table.column(c).to_pylist() for c in COLUMNS]
    for docid, title, text, meta in zip(*columns, strict=True):
        if meta:
            yield Document(docid, text, title, json.loads(meta))
        else:  # no metadata: the shared empty mapping
            yield Document(docid, text, title)


def iter_documents(refs: list[Any], release: bool = False) -> Iterator[Document]:
    """The documents of the blocks, in order; ``release`` drops each block from
    ``refs`` once read, so the object store can free it."""
    r = ray()
    i = 0
    while i < len(refs):
        table = r.get(refs[i])
        if release:
            refs[i] = None
        i += 1
        yield from block_documents(table)
