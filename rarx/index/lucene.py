"""BM25 (and BM25+RM3) over Lucene, through Anserini's classes from pyserini's jar.

Documents are written as Anserini ``JsonCollection`` shards (``id``, ``contents`` =
title + text) and indexed with ``IndexCollection`` using Lucene's default English
analyzer, the same path as ``python -m pyserini.index.lucene``. The raw JSON is stored
so hits can be shown; document vectors are stored so RM3 works. Beside the Lucene index a
score matrix (:mod:`rarx.index.matrix`) answers BM25 searches without RM3, with the same
rankings, faster.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rarx import __version__
from rarx.errors import ConfigError, RarxError
from rarx.index.adopt import CONTENTS, ID, NO_TEXT, RAW, RAW_JSON, RAW_TEXT
from rarx.index.anserini import AnseriniHits, StoredFields
from rarx.index.base import ChecksumStream, Manifest, now_iso, staged_build
from rarx.index.integrity import lucene_errors
from rarx.index.java import jclass
from rarx.index.matrix import (
    MATRIX_DIR,
    BatchAnalyzer,
    Bm25Params,
    MatrixUnavailable,
    ScoreMatrix,
    build_matrix,
    check_engine,
    open_matrix,
)  # fmt: skip
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
    # auto: the score matrix (rarx.index.matrix) where it is exact (no RM3), else Lucene
    engine: str = "auto"
    matrix_memory: str = "ram"  # or "mmap": the matrix stays on disk, paged in on use

    def __post_init__(self) -> None:
        check_engine(self.engine)
        if self.matrix_memory not in ("ram", "mmap"):
            raise ConfigError(f"matrix_memory must be 'ram' or 'mmap', got {self.matrix_memory!r}")
        if self.rm3 and self.engine == "matrix":
            raise ConfigError(
                "RM3 runs on the Lucene path only; drop engine='matrix' (--search-engine) or rm3"
            )


def _write_shards(docs: Iterable[Document], directory: Path, shards: int) -> int:
    directory.mkdir()
    count = 0
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
            count += 1
    finally:
        for f in files:
            f.close()
    return count


def _document_from_raw(raw: str) -> Document:
    obj = json.loads(raw)
    contents = obj.get("contents", "")
    kept = obj.get("rarx") or {}
    title = kept.get("title", "")
    text = contents[len(title) + 1 :] if title and contents.startswith(title + "\n") else contents
    return Document(str(obj["id"]), text, title, kept.get("meta") or {})


Indexer = Callable[[Iterable[Document], Path], None]  # documents -> a Lucene index directory


def index_with_anserini(
    docs: Iterable[Document], directory: Path, threads: int = 1, memory_buffer_mb: int = 512,
    quiet: bool = True,
) -> int:  # fmt: skip
    """Write ``docs`` as a Lucene index at ``directory`` with Anserini's IndexCollection
    (one segment); returns how many documents were read (empty ones are skipped)."""
    shards = directory.parent / f"_input-{directory.name}"
    count = _write_shards(docs, shards, threads)
    if count == 0:
        shutil.rmtree(shards)
        return 0
    args = [
        "-collection", "JsonCollection",
        "-generator", "DefaultLuceneDocumentGenerator",
        "-input", str(shards),
        "-index", str(directory),
        "-threads", str(threads),
        "-memoryBuffer", str(memory_buffer_mb),
        "-storeRaw",
        "-storeDocvectors",
        "-optimize",
        "-quiet",
    ]  # fmt: skip
    if not quiet:
        log.info("indexing %s documents with Lucene (%d threads)...", count, threads)
    try:
        jclass("io.anserini.index.IndexCollection").main(args)
    except Exception as exc:  # a JavaException from the indexer
        raise RarxError(f"Lucene indexing failed: {exc}") from exc
    shutil.rmtree(shards)
    return count


def count_documents(directory: Path) -> int:
    return int(jclass("io.anserini.search.SimpleSearcher")(str(directory)).get_total_num_docs())


def merge_lucene_indexes(
    parts: Sequence[Path], directory: Path, memory_buffer_mb: int = 512
) -> None:
    """Lucene's ``IndexWriter.addIndexes`` of ``parts`` into a new index at ``directory``,
    merged to one segment as IndexCollection's ``-optimize`` leaves it. Segments are
    copied as written (norms, stored raw documents and vectors), and BM25's collection
    statistics are sums over segments, so the merged index scores as one built whole."""

    def open_dir(p: Path) -> Any:
        fs = jclass("org.apache.lucene.store.FSDirectory")
        return fs.open(jclass("java.io.File")(str(p)).toPath())

    config = jclass("org.apache.lucene.index.IndexWriterConfig")()
    config.setOpenMode(jclass("org.apache.lucene.index.IndexWriterConfig$OpenMode").CREATE)
    config.setRAMBufferSizeMB(float(memory_buffer_mb))
    config.setUseCompoundFile(False)
    target = open_dir(directory)
    writer = jclass("org.apache.lucene.index.IndexWriter")(target, config)
    sources = [open_dir(p) for p in parts]
    try:
        writer.addIndexes(*sources)  # Java varargs: one argument each
        writer.forceMerge(1)
        writer.commit()
    except Exception as exc:  # a JavaException from Lucene
        raise RarxError(f"merging Lucene shards failed: {exc}") from exc
    finally:
        writer.close()
        for source in sources:
            source.close()
        target.close()


def lucene_subdir(manifest: Manifest) -> str:
    """Where an index's Lucene files are, relative to it: ``lucene`` when rarx built it,
    ``.`` when rarx adopted one Anserini built (:mod:`rarx.index.adopt`)."""
    return str(manifest.params.get("lucene_dir", LUCENE_DIR))


def lucene_dir(path: Path, manifest: Manifest) -> Path:
    return path / lucene_subdir(manifest)


class LuceneIndex:
    """A Lucene index searched with BM25, optionally expanded with RM3."""

    kind: ClassVar[str] = "bm25"

    def __init__(
        self, path: Path, manifest: Manifest, searcher: Any, settings: dict[str, Any],
        matrix: ScoreMatrix | None = None,
    ):  # fmt: skip
        self.path = path
        self.manifest = manifest
        self._searcher = searcher
        self.settings = settings
        self._text = manifest.params.get("text")  # how an adopted index stores text (adopt.py)
        self._hits = AnseriniHits(searcher)  # after set_bm25/set_rm3: it reads that setup
        self._stored = StoredFields(searcher.reader)
        self._matrix = matrix
        self._analyzer = BatchAnalyzer(searcher.analyzer) if matrix is not None else None

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
        indexer: Indexer | None = None,
    ) -> LuceneIndex:
        """Index ``docs`` at ``path`` (atomically). ``indexer`` writes the Lucene index
        from the document stream (default: Anserini in this process; rarx.distributed
        builds shards on Ray and merges them)."""
        threads = max(1, int(threads))
        stream = ChecksumStream(docs)
        with staged_build(path, overwrite) as tmp:
            docs_read = progress(stream, desc="reading corpus", unit="doc", quiet=quiet)
            if indexer is None:
                index_with_anserini(docs_read, tmp / LUCENE_DIR, threads, memory_buffer_mb, quiet)
            else:
                indexer(docs_read, tmp / LUCENE_DIR)
            if stream.count == 0:
                raise RarxError("no documents to index")
            indexed = count_documents(tmp / LUCENE_DIR)
            try:  # the score-matrix search path, read from the finished Lucene index
                build_matrix(tmp / LUCENE_DIR, tmp / MATRIX_DIR, "bm25", Bm25Params(k1, b), quiet)
            except MatrixUnavailable as exc:
                log.warning("no score matrix: %s; searches take the Lucene path", exc)
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
        engine: str = Bm25LoadOptions.engine,
        matrix_memory: str = Bm25LoadOptions.matrix_memory,
    ) -> LuceneIndex:
        """Open an index. ``engine``: "matrix" searches the score matrix (exactly Anserini's
        BM25 rankings, built beside the index and rebuilt when stale), "lucene" searches
        Lucene, "auto" (default) the matrix unless RM3 is on. ``matrix_memory="mmap"``
        leaves the matrix on disk."""
        Bm25LoadOptions(k1, b, rm3, fb_terms, fb_docs, original_query_weight, engine,
                        matrix_memory)  # checks the choices  # fmt: skip
        path = Path(path)
        manifest = Manifest.read(path, expect=cls.kind)
        with lucene_errors(path, manifest.files, lucene_subdir(manifest)):
            searcher = jclass("io.anserini.search.SimpleSearcher")(str(lucene_dir(path, manifest)))
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
        matrix = None
        if engine == "matrix" or (
            engine == "auto" and not rm3 and not searcher.backwardsCompatibilityLucene8
        ):
            built = Bm25Params(
                float(manifest.params.get("k1", Bm25BuildParams.k1)),
                float(manifest.params.get("b", Bm25BuildParams.b)),
            )
            params = Bm25Params(settings["k1"], settings["b"])
            try:  # a (re)build reads the Lucene index: its failures name the damaged file
                with lucene_errors(path, manifest.files, lucene_subdir(manifest)):
                    where = lucene_dir(path, manifest)
                    matrix = open_matrix(path, where, "bm25", matrix_memory, params, built)
            except MatrixUnavailable as exc:
                if engine == "matrix":
                    raise
                log.warning("%s; searching with Lucene", exc)
        settings["engine"] = "lucene" if matrix is None else "matrix"
        if matrix is not None:
            settings["matrix_memory"] = matrix.memory
        return cls(path, manifest, searcher, settings, matrix)

    def search(
        self, queries: Sequence[Query], k: int = 10, threads: int = 1, with_docs: bool = False
    ) -> list[Ranking]:
        """Anserini's BM25 (or RM3) rankings: from the score matrix (rarx.index.matrix), or
        from Lucene read back as arrays (rarx.index.anserini; ``threads`` apply there)."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if not queries:
            return []
        texts = [q.text for q in queries]
        with lucene_errors(self.path, self.manifest.files, lucene_subdir(self.manifest),
                           reading_files=False):  # fmt: skip
            if self._matrix is not None and self._analyzer is not None:
                results = self._matrix.search_many(self._analyzer.bags(texts), int(k))
            else:
                results = self._hits.search_many(texts, int(k), int(threads))
        rankings = []
        for q, (docids, scores, lucene_ids) in zip(queries, results, strict=True):
            docs = [self._doc_at(int(i)) for i in lucene_ids.tolist()] if with_docs else None
            rankings.append(Ranking.from_arrays(q.qid, docids, scores, docs))
        return rankings

    def _doc_at(self, lucene_id: int) -> Document | None:
        with lucene_errors(self.path, self.manifest.files, lucene_subdir(self.manifest)):
            if self._text is not None:
                return self._adopted_doc(lucene_id)
            raw = self._searcher.doc_raw(lucene_id)  # by Lucene id: no lookup of the docid term
            if raw is None:  # Anserini's null for any failure: read again, so damage raises
                raw = self._stored.field(lucene_id, RAW)
            return None if raw is None else _document_from_raw(raw)

    def doc(self, docid: str) -> Document | None:
        with lucene_errors(self.path, self.manifest.files, lucene_subdir(self.manifest)):
            if self._text is None and (raw := self._searcher.doc_raw(docid)) is not None:
                return _document_from_raw(raw)
            lucene_id = self._stored.lucene_id(docid)  # null above: absent, or damaged
        return None if lucene_id is None else self._doc_at(lucene_id)

    def _adopted_doc(self, lucene_id: int) -> Document | None:
        """A document of an index rarx adopted, read as its stored fields allow."""
        if self._text == NO_TEXT:
            return None
        stored = self._stored.fields(lucene_id, (ID, RAW, CONTENTS))
        docid = str(stored[ID])
        if self._text == RAW_JSON:
            obj = json.loads(stored[RAW] or "")
            return Document(docid, str(obj.get("contents", "")), str(obj.get("title") or ""))
        text = stored[RAW if self._text == RAW_TEXT else CONTENTS]
        return Document(docid, "" if text is None else str(text))

    def close(self) -> None:
        self._searcher.close()


KIND = IndexKind(
    LuceneIndex, "BM25 (and BM25+RM3) over Lucene", Bm25BuildParams,
    {"ranked_search", "documents", "threads"}, load_options=Bm25LoadOptions,
)  # fmt: skip
