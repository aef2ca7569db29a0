"""BM25 (and BM25+RM3) over Lucene, through Anserini's classes from pyserini's jar.

Documents are written as Anserini ``JsonCollection`` shards (``id``, ``contents`` =
title + text) and indexed with ``IndexCollection`` using Lucene's default English
analyzer, the same path as ``python -m pyserini.index.lucene``. The raw JSON is stored
so hits can be shown; document vectors are stored so RM3 works.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rarx import __version__
from rarx.errors import ConfigError, RarxError
from rarx.index.anserini import AnseriniHits
from rarx.index.base import ChecksumStream, Manifest, now_iso, staged_build
from rarx.index.java import jclass
from rarx.index.registry import IndexKind, param
from rarx.progress import progress
from rarx.types import Document, Query, Ranking

log = logging.getLogger(__name__)

LUCENE_DIR = "lucene"


@dataclass(frozen=True)
class Bm25BuildParams:
    k1: float = param(0.9, "BM25 k1, the default at search.")
    b: float = param(0.4, "BM25 b, the default at search.")
    threads: int = param(1, "Indexing threads (and corpus shards).")
    memory_buffer_mb: int = param(512, "Lucene's indexing buffer in MB.")

    def __post_init__(self) -> None:
        if self.k1 < 0 or not 0 <= self.b <= 1 or self.threads < 1 or self.memory_buffer_mb < 1:
            raise ConfigError(
                f"need k1 >= 0, 0 <= b <= 1, threads >= 1 and memory_buffer_mb >= 1; got {self}"
            )


@dataclass(frozen=True)
class Bm25LoadOptions:
    """Search settings fixed when the index is opened (k1/b default to the built ones)."""

    k1: float | None = None
    b: float | None = None
    rm3: bool = False  # RM3 query expansion with Anserini's defaults below
    fb_terms: int = 10
    fb_docs: int = 10
    original_query_weight: float = 0.5


def _write_shards(docs: Iterable[Document], directory: Path, shards: int) -> None:
    directory.mkdir()
    files = [open(directory / f"part-{i:03d}.jsonl", "w", encoding="utf-8") for i in range(shards)]
    try:
        for i, d in enumerate(docs):
            row: dict[str, Any] = {"id": d.docid, "contents": d.contents}
            # Title and meta nested, so Anserini stores them in the raw JSON but does not
            # index them.
            kept = {"title": d.title, "meta": dict(d.meta)}
            if d.title or d.meta:
                row["rarx"] = {key: value for key, value in kept.items() if value}
            try:
                line = json.dumps(row, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                raise RarxError(
                    f"document {d.docid!r}: its meta cannot be stored as JSON ({exc}); keep "
                    "meta to strings, numbers, booleans, lists and mappings"
                ) from None
            files[i % shards].write(line + "\n")
    finally:
        for f in files:
            f.close()


def _document_from_raw(raw: str) -> Document:
    obj = json.loads(raw)
    contents = obj.get("contents", "")
    kept = obj.get("rarx") or {}
    title = kept.get("title", "")
    text = contents[len(title) + 1 :] if title and contents.startswith(title + "\n") else contents
    return Document(str(obj["id"]), text, title, kept.get("meta") or {})


class LuceneIndex:
    """A Lucene index searched with BM25, optionally expanded with RM3."""

    kind: ClassVar[str] = "bm25"

    def __init__(self, path: Path, manifest: Manifest, searcher: Any, settings: dict[str, Any]):
        self.path = path
        self.manifest = manifest
        self._searcher = searcher
        self.settings = settings
        self._hits = AnseriniHits(searcher)  # after set_bm25/set_rm3: it reads that setup

    # -- building -----------------------------------------------------------------

    @classmethod
    def build(
        cls,
        docs: Iterable[Document],
        path: str | Path,
        *,
        overwrite: bool = False,
        threads: int = Bm25BuildParams.threads,
        k1: float = Bm25BuildParams.k1,
        b: float = Bm25BuildParams.b,
        memory_buffer_mb: int = Bm25BuildParams.memory_buffer_mb,
        quiet: bool = False,
    ) -> LuceneIndex:
        threads = max(1, int(threads))
        stream = ChecksumStream(docs)
        with staged_build(path, overwrite) as tmp:
            shards = tmp / "_input"
            _write_shards(
                progress(stream, desc="reading corpus", unit="doc", quiet=quiet), shards, threads
            )
            if stream.count == 0:
                raise RarxError("no documents to index")
            args = [
                "-collection", "JsonCollection",
                "-generator", "DefaultLuceneDocumentGenerator",
                "-input", str(shards),
                "-index", str(tmp / LUCENE_DIR),
                "-threads", str(threads),
                "-memoryBuffer", str(memory_buffer_mb),
                "-storeRaw",
                "-storeDocvectors",
                "-optimize",
                "-quiet",
            ]  # fmt: skip
            if not quiet:
                log.info("indexing %s documents with Lucene (%d threads)...", stream.count, threads)
            try:
                jclass("io.anserini.index.IndexCollection").main(args)
            except Exception as exc:  # a JavaException from the indexer
                raise RarxError(f"Lucene indexing failed: {exc}") from exc
            shutil.rmtree(shards)
            indexed = int(
                jclass("io.anserini.search.SimpleSearcher")(
                    str(tmp / LUCENE_DIR)
                ).get_total_num_docs()
            )
            manifest = Manifest(
                kind=cls.kind,
                documents=indexed,
                corpus_checksum=stream.checksum,
                params={
                    "k1": k1,
                    "b": b,
                    "analyzer": "lucene-default-english",
                    "skipped_empty": stream.count - indexed,
                },
                built_at=now_iso(),
                rarx_version=__version__,
            )
            manifest.write(tmp)
        return cls.load(path)

    # -- loading and searching ----------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        k1: float | None = Bm25LoadOptions.k1,
        b: float | None = Bm25LoadOptions.b,
        rm3: bool = Bm25LoadOptions.rm3,
        fb_terms: int = Bm25LoadOptions.fb_terms,
        fb_docs: int = Bm25LoadOptions.fb_docs,
        original_query_weight: float = Bm25LoadOptions.original_query_weight,
    ) -> LuceneIndex:
        path = Path(path)
        manifest = Manifest.read(path, expect=cls.kind)
        searcher = jclass("io.anserini.search.SimpleSearcher")(str(path / LUCENE_DIR))
        settings: dict[str, Any] = {
            "k1": float(manifest.params.get("k1", Bm25BuildParams.k1) if k1 is None else k1),
            "b": float(manifest.params.get("b", Bm25BuildParams.b) if b is None else b),
            "rm3": rm3,
        }
        searcher.set_bm25(settings["k1"], settings["b"])
        if rm3:
            settings.update(
                fb_terms=fb_terms, fb_docs=fb_docs, original_query_weight=original_query_weight
            )
            searcher.set_rm3(
                None, int(fb_terms), int(fb_docs), float(original_query_weight), False, True
            )
        return cls(path, manifest, searcher, settings)

    def search(
        self, queries: Sequence[Query], k: int = 10, threads: int = 1, with_docs: bool = False
    ) -> list[Ranking]:
        """Anserini's BM25 (or RM3) rankings, read back as arrays (see rarx.index.anserini)."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if not queries:
            return []
        results = self._hits.search_many([q.text for q in queries], int(k), int(threads))
        rankings = []
        for q, (docids, scores, lucene_ids) in zip(queries, results, strict=True):
            docs = [self._doc_at(int(i)) for i in lucene_ids.tolist()] if with_docs else None
            rankings.append(Ranking.from_arrays(q.qid, docids, scores, docs))
        return rankings

    def _doc_at(self, lucene_id: int) -> Document | None:
        raw = self._searcher.doc_raw(lucene_id)  # by Lucene id: no lookup of the docid term
        return None if raw is None else _document_from_raw(raw)

    def doc(self, docid: str) -> Document | None:
        raw = self._searcher.doc_raw(docid)
        return None if raw is None else _document_from_raw(raw)

    def close(self) -> None:
        self._searcher.close()


KIND = IndexKind(
    LuceneIndex, "BM25 (and BM25+RM3) over Lucene", Bm25BuildParams,
    {"ranked_search", "documents", "threads"}, load_options=Bm25LoadOptions,
)  # fmt: skip
