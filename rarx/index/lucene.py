"""BM25 (and BM25+RM3) over Lucene, through Anserini's classes from pyserini's jar.

Documents are written as Anserini ``JsonCollection`` shards (``id``, ``contents`` =
title + text) and indexed with ``IndexCollection`` using Lucene's default English
analyzer, the same path as ``python -m pyserini.index.lucene``. The raw JSON is stored
so hits can be shown; document vectors are stored so RM3 works.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from rarx import __version__
from rarx.errors import ConfigError, RarxError
from rarx.index.anserini import AnseriniHits
from rarx.index.base import ChecksumStream, Manifest, now_iso, staged_build
from rarx.index.java import jclass
from rarx.progress import progress
from rarx.types import Document, Query, Ranking

LUCENE_DIR = "lucene"
BM25_DEFAULTS = {"k1": 0.9, "b": 0.4}
RM3_TERMS, RM3_DOCS, RM3_WEIGHT = 10, 10, 0.5  # Anserini's defaults


def _write_shards(docs: Iterable[Document], directory: Path, shards: int) -> None:
    directory.mkdir()
    files = [open(directory / f"part-{i:03d}.jsonl", "w", encoding="utf-8") for i in range(shards)]
    try:
        for i, d in enumerate(docs):
            row: dict[str, Any] = {"id": d.docid, "contents": d.contents}
            if d.title:
                # Nested, so Anserini stores it in the raw JSON but does not index it.
                row["rarx"] = {"title": d.title}
            files[i % shards].write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        for f in files:
            f.close()


def _document_from_raw(raw: str) -> Document:
    obj = json.loads(raw)
    contents = obj.get("contents", "")
    title = (obj.get("rarx") or {}).get("title", "")
    text = contents[len(title) + 1 :] if title and contents.startswith(title + "\n") else contents
    return Document(str(obj["id"]), text, title)


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
        threads: int = 1,
        k1: float = BM25_DEFAULTS["k1"],
        b: float = BM25_DEFAULTS["b"],
        memory_buffer_mb: int = 512,
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
                print(
                    f"indexing {stream.count:,} documents with Lucene ({threads} threads)...",
                    flush=True,
                )
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
        k1: float | None = None,
        b: float | None = None,
        rm3: bool = False,
        fb_terms: int = RM3_TERMS,
        fb_docs: int = RM3_DOCS,
        original_query_weight: float = RM3_WEIGHT,
    ) -> LuceneIndex:
        path = Path(path)
        manifest = Manifest.read(path)
        if manifest.kind != cls.kind:
            raise RarxError(f"{path} is a {manifest.kind!r} index, not {cls.kind!r}")
        searcher = jclass("io.anserini.search.SimpleSearcher")(str(path / LUCENE_DIR))
        settings: dict[str, Any] = {
            "k1": float(manifest.params.get("k1", BM25_DEFAULTS["k1"]) if k1 is None else k1),
            "b": float(manifest.params.get("b", BM25_DEFAULTS["b"]) if b is None else b),
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
