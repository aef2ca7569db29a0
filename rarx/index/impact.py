"""Learned sparse retrieval (SPLADE) over Lucene impact postings, built and searched the
way Anserini does it.

Documents are encoded with a SPLADE model (:mod:`rarx.models.sparse`), their weights
quantised to integer impacts and written as Anserini ``JsonVectorCollection`` shards
(``{"id", "vector": {term: impact}}``), and ``IndexCollection -impact -pretokenized``
indexes each term with its impact as the term frequency. The documents themselves go to
``docstore.parquet`` as in the dense kind, not into Lucene: Anserini would store the raw
JSON pretty-printed, vector included, several times the size of the postings.

A query is encoded with the same model and quantisation, and searched as Anserini's
``SimpleImpactSearcher.search(Map)`` searches it: a bag of terms boosted by their query
impacts, scored with its ``ImpactSimilarity`` (score = sum of query impact x document
impact), ties broken by docid; the BM25 kind's batch reader (:mod:`rarx.index.anserini`)
builds those queries and fetches the hits as arrays. By default the same rankings come
from the index's score matrix (:mod:`rarx.index.matrix`) instead of a Lucene search.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from rarx import __version__
from rarx.errors import ConfigError, IndexFormatError, InputError, RarxError
from rarx.index.anserini import AnseriniHits
from rarx.index.base import ChecksumStream, Manifest, now_iso, staged_build
from rarx.index.docstore import DOCSTORE_FILE, DocStore, docstore_writer, unique_texts
from rarx.index.integrity import lucene_errors
from rarx.index.java import jclass
from rarx.index.matrix import (
    MATRIX_DIR,
    MatrixUnavailable,
    ScoreMatrix,
    build_matrix,
    check_engine,
    open_matrix,
)  # fmt: skip
from rarx.index.registry import IndexKind, param
from rarx.models.sparse import SparseEncoder, SparseEncoderConfig
from rarx.progress import progress_bar
from rarx.types import Document, Query, Ranking

log = logging.getLogger(__name__)

LUCENE_DIR = "lucene"
CHUNK_SIZE = 1024  # documents encoded and written per step (bounds build memory)


@dataclass(frozen=True)
class SpladeBuildParams:
    model: str = param("splade-tiny", "SPLADE model: a named model, a SparseEncoder name or path.")
    quantization: float = param(
        100.0, "SPLADE weights are multiplied by this and rounded to integer impacts."
    )
    batch_size: int = param(16, "Encoding batch size.")  # logits: batch x 512 x 30522 floats
    max_seq_length: int | None = param(None, "Encoder token limit (default: the model's).")
    device: str | None = param(None, "Encoding device, e.g. cuda:0 (default: automatic).")
    threads: int = param(1, "Indexing threads (and corpus shards).")
    memory_buffer_mb: int = param(512, "Lucene's indexing buffer in MB.")

    def __post_init__(self) -> None:
        if not self.quantization > 0:
            raise ConfigError(
                f"quantization must be positive (e.g. 100: a weight of 1.5 becomes impact "
                f"150), got {self.quantization}"
            )
        if self.batch_size < 1 or self.threads < 1 or self.memory_buffer_mb < 1:
            raise ConfigError(
                "need batch_size >= 1, threads >= 1 and memory_buffer_mb >= 1; got "
                f"{self.batch_size}, {self.threads}, {self.memory_buffer_mb}"
            )
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise ConfigError(f"max_seq_length must be positive, got {self.max_seq_length}")


@dataclass(frozen=True)
class SpladeLoadOptions:
    device: str | None = None  # where queries are encoded [default: automatic]
    engine: str = "auto"  # auto/matrix: the score matrix (rarx.index.matrix); lucene
    matrix_memory: str = "ram"  # or "mmap": the matrix stays on disk, paged in on use

    def __post_init__(self) -> None:
        check_engine(self.engine)
        if self.matrix_memory not in ("ram", "mmap"):
            raise ConfigError(f"matrix_memory must be 'ram' or 'mmap', got {self.matrix_memory!r}")


class ImpactIndex:
    """Documents as SPLADE term impacts in Lucene, searched with Anserini's impact scoring."""

    kind: ClassVar[str] = "splade"

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        searcher: Any,
        docstore: DocStore,
        encoder_config: SparseEncoderConfig,
        encoder: SparseEncoder | None = None,
        matrix: ScoreMatrix | None = None,
    ):
        self.path = path
        self._matrix = matrix
        self.settings = {"engine": "lucene" if matrix is None else "matrix"}
        if matrix is not None:
            self.settings["matrix_memory"] = matrix.memory
        self.manifest = manifest
        self._searcher = searcher
        self._docstore = docstore
        self._hits = AnseriniHits(searcher, weighted=True)
        self._encoder_config = encoder_config
        self._encoder = encoder
        self.quantization = float(manifest.params["quantization"])

    # -- building -----------------------------------------------------------------

    @classmethod
    def build(
        cls,
        docs: Iterable[Document],
        path: str | Path,
        *,
        model: str = SpladeBuildParams.model,
        quantization: float = SpladeBuildParams.quantization,
        batch_size: int = SpladeBuildParams.batch_size,
        max_seq_length: int | None = SpladeBuildParams.max_seq_length,
        device: str | None = SpladeBuildParams.device,
        threads: int = SpladeBuildParams.threads,
        memory_buffer_mb: int = SpladeBuildParams.memory_buffer_mb,
        overwrite: bool = False,
        quiet: bool = False,
        chunk_size: int = CHUNK_SIZE,
        encoder: DocImpactEncoder | None = None,
    ) -> ImpactIndex:
        """Encode ``docs`` and write an impact index at ``path`` (atomically). ``encoder``
        reuses a loaded encoder (or a Ray pool of them, :mod:`rarx.distributed.splade`);
        its configuration then replaces ``model`` and the rest."""
        SpladeBuildParams(model, quantization, batch_size, max_seq_length, device, threads,
                          memory_buffer_mb)  # checked before any model loads  # fmt: skip
        stream = ChecksumStream(docs)
        total = len(docs) if isinstance(docs, Sequence) else None
        with staged_build(path, overwrite) as tmp:
            if encoder is None:
                encoder = SparseEncoder(SparseEncoderConfig(model, max_seq_length, device))
            vocab_size = encoder.vocab_size  # checks the model's terms before any encoding
            shards = tmp / "_input"
            with progress_bar("encoding", unit="doc", total=total, quiet=quiet) as bar:
                terms = _encode_to_shards(
                    stream, shards, encoder, quantization, batch_size, chunk_size, threads,
                    bar.update,
                )  # fmt: skip
            if stream.count == 0:
                raise InputError("no documents to index: the corpus is empty")
            args = [
                "-collection", "JsonVectorCollection",
                "-generator", "DefaultLuceneDocumentGenerator",
                "-input", str(shards),
                "-index", str(tmp / LUCENE_DIR),
                "-threads", str(threads),
                "-memoryBuffer", str(memory_buffer_mb),
                "-impact",
                "-pretokenized",  # no -storeRaw: the documents are in the docstore
                "-optimize",
                "-quiet",
            ]  # fmt: skip
            if not quiet:
                log.info("indexing %s documents' impacts with Lucene...", stream.count)
            try:
                jclass("io.anserini.index.IndexCollection").main(args)
            except Exception as exc:  # a JavaException from the indexer
                raise RarxError(f"Lucene impact indexing failed: {exc}") from exc
            shutil.rmtree(shards)
            searcher = jclass("io.anserini.search.SimpleImpactSearcher")(str(tmp / LUCENE_DIR))
            indexed = int(searcher.get_total_num_docs())
            searcher.close()
            try:  # the score-matrix search path, read from the finished Lucene index
                build_matrix(tmp / LUCENE_DIR, tmp / MATRIX_DIR, "impact", quiet=quiet)
            except MatrixUnavailable as exc:
                log.warning("no score matrix: %s; searches take the Lucene path", exc)
            manifest = Manifest(
                kind=cls.kind,
                documents=indexed,
                corpus_checksum=stream.checksum,
                model=encoder.config.model,
                params={
                    "quantization": float(quantization),
                    "max_seq_length": encoder.max_seq_length,
                    "vocabulary": vocab_size,
                    "terms_per_document": round(terms / max(1, stream.count), 2),
                    "analyzer": "pretokenized (whitespace), impact similarity",
                    "skipped_empty": stream.count - indexed,
                },
                built_at=now_iso(),
                rarx_version=__version__,
            )
            manifest.write(tmp)
        # A local encoder goes on encoding queries; a pool's workers are not kept.
        query_encoder = encoder if isinstance(encoder, SparseEncoder) else None
        return cls.load(path, device=device, encoder=query_encoder)

    # -- loading --------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: str | None = SpladeLoadOptions.device,
        encoder: SparseEncoder | None = None,
        engine: str = SpladeLoadOptions.engine,
        matrix_memory: str = SpladeLoadOptions.matrix_memory,
    ) -> ImpactIndex:
        """Open an index. The encoder loads on the first text search, unless one is given
        (it must be the model the index was built with). ``engine``: "matrix" or "auto"
        (default) search the score matrix, "lucene" searches Lucene; same rankings."""
        SpladeLoadOptions(device, engine, matrix_memory)  # checks the choices
        path = Path(path)
        manifest = Manifest.read(path, expect=cls.kind)
        parts = (path / LUCENE_DIR).is_dir(), (path / DOCSTORE_FILE).is_file()
        if not all(parts) or "quantization" not in manifest.params:
            raise IndexFormatError(
                f"{path}: incomplete splade index (needs {LUCENE_DIR}/, {DOCSTORE_FILE} and a "
                "quantization in its manifest); rebuild it with 'rarx index --kind splade "
                "--overwrite'"
            )
        config = SparseEncoderConfig(
            str(manifest.model), manifest.params.get("max_seq_length"), device
        )
        if encoder is not None and encoder.config.model != config.model:
            raise ConfigError(
                f"{path} was built with model {config.model!r}, the given encoder is "
                f"{encoder.config.model!r}; pass no encoder to load the right one"
            )
        with lucene_errors(path, manifest.files, LUCENE_DIR):
            searcher = jclass("io.anserini.search.SimpleImpactSearcher")(str(path / LUCENE_DIR))
        docstore = DocStore(path / DOCSTORE_FILE)
        matrix = None
        if engine != "lucene":
            try:  # a (re)build reads the Lucene index: its failures name the damaged file
                with lucene_errors(path, manifest.files, LUCENE_DIR):
                    matrix = open_matrix(path, path / LUCENE_DIR, "impact", matrix_memory, None,
                                         None)  # fmt: skip
            except MatrixUnavailable as exc:
                if engine == "matrix":
                    raise
                log.warning("%s; searching with Lucene", exc)
        return cls(path, manifest, searcher, docstore, config, encoder, matrix)

    # -- encoding and searching ----------------------------------------------------------

    @property
    def encoder(self) -> SparseEncoder:
        """The query encoder (the index's model), loaded on first use."""
        if self._encoder is None:
            self._encoder = SparseEncoder(self._encoder_config)
        return self._encoder

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> list[dict[str, int]]:
        """Each query's integer impacts ``{term: impact}``, quantised as the documents were."""
        rows = self.encoder.encode_queries(texts, batch_size)
        return self.encoder.impacts(rows, self.quantization)

    def search(
        self,
        queries: Sequence[Query],
        k: int = 10,
        threads: int = 1,
        with_docs: bool = False,
        batch_size: int = 32,
    ) -> list[Ranking]:
        """Encode the queries and return each one's ``k`` highest-scoring documents."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if not queries:
            return []
        impacts = self.encode_queries([q.text for q in queries], batch_size)
        return self.search_impacts([q.qid for q in queries], impacts, k, threads, with_docs)

    def search_impacts(
        self,
        qids: Sequence[str],
        impacts: Sequence[Mapping[str, int]],
        k: int = 10,
        threads: int = 1,
        with_docs: bool = False,
    ) -> list[Ranking]:
        """Search with query impacts already computed (one ``{term: impact}`` per qid)."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if len(qids) != len(impacts):
            raise InputError(f"got {len(qids)} qids but {len(impacts)} query impact maps")
        if not qids:
            return []
        with lucene_errors(self.path, self.manifest.files, LUCENE_DIR, reading_files=False):
            if self._matrix is not None:  # each term boosted by its impact, as a Java float
                bags = [{t: float(w) for t, w in m.items()} for m in impacts]
                results = self._matrix.search_many(bags, int(k))
            else:
                texts = [json.dumps(dict(m), ensure_ascii=False) for m in impacts]  # Jackson
                results = self._hits.search_many(texts, int(k), int(threads))
        rankings = []
        for qid, (docids, scores, _) in zip(qids, results, strict=True):
            docs = self._documents(docids.tolist()) if with_docs else None
            rankings.append(Ranking.from_arrays(qid, docids, scores, docs))
        return rankings

    # -- documents ------------------------------------------------------------------

    def _documents(self, docids: list[str]) -> list[Document]:
        rows = [self._docstore.row_of(d) for d in docids]
        if None in rows:  # Lucene and the docstore were written from the same documents
            raise IndexFormatError(f"{self.path}: a hit is missing from {DOCSTORE_FILE}")
        found = self._docstore.documents(rows)  # type: ignore[arg-type]
        return [found[r] for r in rows]  # type: ignore[index]

    def doc(self, docid: str) -> Document | None:
        row = self._docstore.row_of(docid)
        return None if row is None else self._docstore.documents([row])[row]

    def close(self) -> None:
        self._searcher.close()


class DocImpactEncoder(Protocol):
    """What a build needs of its encoder: :class:`SparseEncoder`, or a Ray pool of them."""

    config: SparseEncoderConfig

    @property
    def vocab_size(self) -> int: ...

    @property
    def max_seq_length(self) -> int: ...

    def doc_impact_chunks(
        self, chunks: Iterable[Sequence[str]], batch_size: int, factor: float
    ) -> Iterator[list[dict[str, int]]]: ...


def _encode_to_shards(
    docs: Iterable[Document],
    directory: Path,
    encoder: DocImpactEncoder,
    quantization: float,
    batch_size: int,
    chunk_size: int,
    shards: int,
    done: Any,
) -> int:
    """Encode each chunk, append its impacts to the shards and its documents to the
    docstore (beside ``directory``), in corpus order; returns the number of terms written."""
    directory.mkdir()
    pending: deque[list[Document]] = deque()  # chunks handed to the encoder, not yet written
    texts = unique_texts(docs, chunk_size, pending)

    files = [open(directory / f"part-{i:03d}.jsonl", "w", encoding="utf-8") for i in range(shards)]
    written = terms = 0
    try:
        with docstore_writer(directory.parent / DOCSTORE_FILE) as store:
            for vectors in encoder.doc_impact_chunks(texts, batch_size, quantization):
                chunk = pending.popleft()
                for d, vector in zip(chunk, vectors, strict=True):
                    line = json.dumps({"id": d.docid, "vector": vector}, ensure_ascii=False)
                    files[written % shards].write(line + "\n")
                    written += 1
                    terms += len(vector)
                store(chunk)
                done(len(chunk))
    finally:
        for f in files:
            f.close()
    return terms


KIND = IndexKind(
    ImpactIndex, "learned sparse (SPLADE) term impacts over Lucene", SpladeBuildParams,
    {"ranked_search", "documents", "threads"}, load_options=SpladeLoadOptions,
)  # fmt: skip
