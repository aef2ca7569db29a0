"""Dense retrieval: bi-encoder embeddings searched with faiss (exact or approximate).

An index directory holds

- ``embeddings.f32``: the L2-normalised float32 document embeddings, row-major, no
  header (read with ``np.memmap``; shape from the manifest), so evaluation can reuse
  them without re-encoding;
- ``docstore.parquet``: ``docid``, ``title``, ``text`` and ``meta`` (the document's
  metadata as JSON, null when empty; older indexes lack the column) in the same row
  order;
- ``faiss.index``: the faiss index over those rows (row id = docstore row);
- ``rarx_index.json``: the manifest (model, dim, prefixes, faiss kind and parameters).

The corpus is streamed in chunks, so building never holds it (or its embeddings) in
memory; only the faiss index itself and the list of docids live in RAM.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rarx import __version__
from rarx.errors import ConfigError, IndexFormatError, InputError
from rarx.index.adopt import FAISS_LAYOUT
from rarx.index.base import ChecksumStream, Manifest, now_iso, staged_build
from rarx.index.dense_encode import EMBEDDINGS_FILE, encode_and_store
from rarx.index.docstore import DOCSTORE_FILE, DocidList, DocStore
from rarx.index.faiss_index import (
    FAISS_KINDS,
    FaissKind,
    check_options,
    faiss_module,
    fill_index,
    new_index,
    read_index,
    to_device,
)
from rarx.index.integrity import Problem, damaged, reading
from rarx.index.registry import IndexKind, param
from rarx.models.encoder import Encoder, EncoderConfig
from rarx.progress import progress_bar
from rarx.types import Document, Query, Ranking

FAISS_FILE = "faiss.index"
CHUNK_SIZE = 4096  # documents encoded and written per step (bounds build memory)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DenseBuildParams:
    model: str = param("minilm", "Encoder: a named model, sentence-transformers name or path.")
    faiss: FaissKind = param("flat", "faiss structure (flat is exact).")
    batch_size: int = param(64, "Encoding batch size.")
    query_prefix: str = param("", "Prepended to queries when encoding (e.g. 'query: ').")
    doc_prefix: str = param("", "Prepended to documents when encoding (e.g. 'passage: ').")
    max_seq_length: int | None = param(None, "Encoder token limit (default: the model's).")
    device: str | None = param(None, "Encoding device, e.g. cuda:0 (default: automatic).")
    hnsw_m: int = param(32, "HNSW neighbours per node for --faiss hnsw.")
    ivf_nlist: int | None = param(None, "IVF lists for --faiss ivfpq (default: about 4 sqrt(n)).")
    pq_m: int | None = param(None, "PQ sub-quantizers for --faiss ivfpq (default: dim/8).")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        check_options(self.faiss, 0, self.hnsw_m, self.ivf_nlist, self.pq_m)


@dataclass(frozen=True)
class DenseLoadOptions:
    device: str | None = None  # CUDA moves a flat or IVF-PQ index to the GPU
    nprobe: int | None = None  # IVF lists searched [default: as built]
    ef_search: int | None = None  # HNSW search breadth [default: as built]


# -- the index -----------------------------------------------------------------------


class DenseIndex:
    """Documents embedded with a bi-encoder, searched by inner product (cosine) in faiss."""

    kind: ClassVar[str] = "dense"

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        index: Any,
        docstore: Any,  # DocStore, or an adopted index's DocidList
        encoder_config: EncoderConfig,
        encoder: Encoder | None = None,
    ):
        self.path = path
        self.manifest = manifest
        self._index = index
        self._docstore = docstore
        self._encoder_config = encoder_config
        self._encoder = encoder
        self._embeddings: np.ndarray | None = None
        self._gpu_resources: Any = None
        self.dim = int(manifest.params["dim"])

    def __len__(self) -> int:
        return self.manifest.documents

    # -- building -----------------------------------------------------------------

    @classmethod
    def build(
        cls,
        docs: Iterable[Document],
        path: str | Path,
        *,
        model: str = DenseBuildParams.model,
        faiss: str = DenseBuildParams.faiss,
        batch_size: int = DenseBuildParams.batch_size,
        overwrite: bool = False,
        quiet: bool = False,
        query_prefix: str = DenseBuildParams.query_prefix,
        doc_prefix: str = DenseBuildParams.doc_prefix,
        max_seq_length: int | None = DenseBuildParams.max_seq_length,
        device: str | None = DenseBuildParams.device,
        hnsw_m: int = DenseBuildParams.hnsw_m,
        ivf_nlist: int | None = DenseBuildParams.ivf_nlist,
        pq_m: int | None = DenseBuildParams.pq_m,
        chunk_size: int = CHUNK_SIZE,
        encoder: Encoder | None = None,
    ) -> DenseIndex:
        """Encode ``docs`` and write a dense index at ``path`` (atomically).

        ``encoder`` reuses an already loaded encoder; its configuration (model,
        prefixes, max_seq_length) then replaces ``model`` and the prefix arguments.
        """
        if faiss not in FAISS_KINDS:  # before loading a model
            check_options(faiss, 0, hnsw_m, ivf_nlist, pq_m)
        if batch_size < 1 or chunk_size < 1:
            raise ConfigError(
                f"batch_size and chunk_size must be positive, got {batch_size}, {chunk_size}"
            )
        faiss_module()  # fail on a missing extra before any encoding work
        stream = ChecksumStream(docs)
        total = len(docs) if isinstance(docs, Sequence) else None
        with staged_build(path, overwrite) as tmp:
            if encoder is None:
                encoder = Encoder(
                    EncoderConfig(
                        model=model,
                        query_prefix=query_prefix,
                        doc_prefix=doc_prefix,
                        max_seq_length=max_seq_length,
                        device=device,
                    )
                )
            dim = encoder.dim
            check_options(faiss, dim, hnsw_m, ivf_nlist, pq_m)
            with progress_bar("encoding", unit="doc", total=total, quiet=quiet) as bar:
                encode_and_store(stream, tmp, encoder, batch_size, chunk_size, bar.update)
            n = stream.count
            if n == 0:
                raise InputError("no documents to index: the corpus is empty")
            embeddings = np.memmap(
                tmp / EMBEDDINGS_FILE, dtype=np.float32, mode="r", shape=(n, dim)
            )
            index, faiss_params = new_index(faiss, n, dim, hnsw_m, ivf_nlist, pq_m)
            fill_index(index, embeddings, faiss_params, quiet)
            del embeddings
            faiss_module().write_index(index, str(tmp / FAISS_FILE))
            config = encoder.config
            manifest = Manifest(
                kind=cls.kind,
                documents=n,
                corpus_checksum=stream.checksum,
                model=config.model,
                params={
                    "dim": dim,
                    "metric": "inner_product",
                    "normalize": config.normalize,
                    "query_prefix": config.query_prefix,
                    "doc_prefix": config.doc_prefix,
                    "max_seq_length": encoder.max_seq_length,
                    "faiss": faiss,
                    "faiss_params": {k: v for k, v in faiss_params.items() if k != "train_size"},
                },
                built_at=now_iso(),
                rarx_version=__version__,
            )
            manifest.write(tmp)
        return cls.load(path, device=device, encoder=encoder)

    # -- loading --------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: str | None = DenseLoadOptions.device,
        nprobe: int | None = DenseLoadOptions.nprobe,
        ef_search: int | None = DenseLoadOptions.ef_search,
        encoder: Encoder | None = None,
    ) -> DenseIndex:
        """Open an index. The encoder loads on the first text search, unless one is given
        (it must be the model the index was built with)."""
        path = Path(path)
        manifest = Manifest.read(path, expect=cls.kind)
        params = manifest.params
        rebuild = "rebuild it with 'rarx index --overwrite'"
        adopted = params.get("layout") == FAISS_LAYOUT  # pyserini's files, read where they are
        faiss_file = path / str(params["faiss_file"]) if adopted else path / FAISS_FILE
        files = (params["faiss_file"], params["docid_file"]) if adopted else (
            FAISS_FILE, DOCSTORE_FILE, EMBEDDINGS_FILE)  # fmt: skip
        for name in files:
            if not (path / name).is_file():
                raise IndexFormatError(f"{path}: incomplete dense index (no {name}); {rebuild}")
        config = EncoderConfig(
            model=str(manifest.model),
            query_prefix=params.get("query_prefix", ""),
            doc_prefix=params.get("doc_prefix", ""),
            max_seq_length=params.get("max_seq_length"),
            normalize=params.get("normalize", True),
            device=device,
        )
        dim = int(params["dim"])
        if encoder is not None and (encoder.config.model, encoder.dim) != (config.model, dim):
            raise ConfigError(
                f"{path} was built with model {config.model!r} ({dim}-d), the given encoder is "
                f"{encoder.config.model!r} ({encoder.dim}-d); pass no encoder to load the right one"
            )
        with reading(path, faiss_file.name):
            index = read_index(faiss_file, params, nprobe, ef_search)
        index, gpu_resources = to_device(index, params.get("faiss", "flat"), device)
        n = manifest.documents
        if adopted:
            docstore: Any = DocidList(path / str(params["docid_file"]))
            rows = {str(params["docid_file"]): len(docstore.docids), faiss_file.name: index.ntotal}
        else:
            docstore = DocStore(path / DOCSTORE_FILE)
            emb_rows = (path / EMBEDDINGS_FILE).stat().st_size // (4 * dim)
            rows = {DOCSTORE_FILE: len(docstore.docids), FAISS_FILE: index.ntotal,
                    EMBEDDINGS_FILE: emb_rows}  # fmt: skip
        wrong = [Problem(f, f"{r:,} rows, not {n:,}") for f, r in rows.items() if r != n]
        if wrong:
            raise damaged(path, wrong)
        loaded = cls(path, manifest, index, docstore, config, encoder)
        loaded._gpu_resources = gpu_resources  # must outlive the GPU index
        return loaded

    # -- accessors ------------------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        """The query encoder, loaded on first use."""
        if self._encoder is None:
            self._encoder = Encoder(self._encoder_config)
        return self._encoder

    @property
    def embeddings(self) -> np.ndarray:
        """The document embeddings (read-only memmap), one row per document in index order."""
        if self._embeddings is None and self.manifest.params.get("layout") == FAISS_LAYOUT:
            vectors = self._index.reconstruct_n(0, len(self))  # flat or HNSW-flat storage
            vectors.flags.writeable = False
            self._embeddings = vectors
        if self._embeddings is None:
            self._embeddings = np.memmap(
                self.path / EMBEDDINGS_FILE, dtype=np.float32, mode="r", shape=(len(self), self.dim)
            )
        return self._embeddings

    @property
    def docids(self) -> list[str]:
        """Docids in index order (row ``i`` of :attr:`embeddings` is ``docids[i]``)."""
        return self._docstore.docids

    def doc(self, docid: str) -> Document | None:
        row = self._docstore.row_of(docid)
        return None if row is None else self._docstore.documents([row])[row]

    # -- searching ------------------------------------------------------------------

    def search(
        self,
        queries: Sequence[Query],
        k: int = 10,
        instruction: str = "",
        batch_size: int = 64,
        with_docs: bool = False,
    ) -> list[Ranking]:
        """Encode the queries (with the index's query prefix and an optional instruction)
        and return the ``k`` nearest documents of each."""
        if not queries:
            return []
        vectors = self.encoder.encode_queries([q.text for q in queries], instruction, batch_size)
        return self.search_vectors([q.qid for q in queries], vectors, k, with_docs=with_docs)

    def search_vectors(
        self, qids: Sequence[str], vectors: np.ndarray, k: int = 10, with_docs: bool = False
    ) -> list[Ranking]:
        """Search with query embeddings already computed (one row per qid)."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(qids), self.dim):
            raise InputError(
                f"expected query vectors of shape ({len(qids)}, {self.dim}) (one row per qid), "
                f"got {vectors.shape}"
            )
        if not qids:
            return []
        scores, rows = self._index.search(np.ascontiguousarray(vectors), min(k, len(self)))
        return self._rankings(qids, scores, rows, with_docs)

    def _rankings(
        self, qids: Sequence[str], scores: np.ndarray, rows: np.ndarray, with_docs: bool
    ) -> list[Ranking]:
        """faiss's (n, k) arrays as Rankings, checked once for the whole batch; each
        Ranking holds a row of one shared read-only docid array (no Hit objects)."""
        found = rows >= 0  # faiss pads with -1 when fewer than k documents are reachable
        complete = bool(found.all())
        docs = self._docstore.documents(rows[found].tolist()) if with_docs else {}
        names = self._docstore.docid_array[rows if complete else np.where(found, rows, 0)]
        values = scores.astype(np.float64)
        if not complete:  # rare (approximate indexes): a checked copy per query
            return [
                Ranking.from_arrays(qid, names[i][keep], values[i][keep],
                                    [docs[r] for r in rows[i][keep].tolist()] if docs else None)
                for i, (qid, keep) in enumerate(zip(qids, found, strict=True))
            ]  # fmt: skip
        if values.shape[1] > 1 and bool((values[:, 1:] > values[:, :-1]).any()):
            raise IndexFormatError(
                "faiss returned hits out of score order; the index may be corrupt"
            )
        names.flags.writeable = values.flags.writeable = False  # and so each row of them
        if docs:
            return [
                Ranking.from_checked_arrays(qid, ids, row_scores, [docs[r] for r in row_ids])
                for qid, ids, row_scores, row_ids in zip(
                    qids, names, values, rows.tolist(), strict=True
                )
            ]
        checked = Ranking.from_checked_arrays
        return [checked(qid, ids, sc) for qid, ids, sc in zip(qids, names, values, strict=True)]


KIND = IndexKind(
    DenseIndex, "bi-encoder embeddings searched with faiss (exact or approximate)",
    DenseBuildParams, {"ranked_search", "documents", "instructions", "vectors"},
    load_options=DenseLoadOptions,
)  # fmt: skip
