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

import json
import logging
import math
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from rarx import __version__
from rarx.errors import ConfigError, IndexFormatError, InputError, require
from rarx.index.adopt import FAISS_LAYOUT
from rarx.index.base import ChecksumStream, Manifest, now_iso, staged_build
from rarx.index.integrity import Problem, damaged, reading
from rarx.index.registry import IndexKind, param
from rarx.models.encoder import Encoder, EncoderConfig
from rarx.progress import progress, progress_bar
from rarx.types import Document, Query, Ranking

EMBEDDINGS_FILE = "embeddings.f32"
DOCSTORE_FILE = "docstore.parquet"
FAISS_FILE = "faiss.index"
FaissKind = Literal["flat", "hnsw", "ivfpq"]
FAISS_KINDS: tuple[str, ...] = get_args(FaissKind)

CHUNK_SIZE = 4096  # documents encoded and written per step (bounds build memory)
ADD_CHUNK = 65536  # embedding rows handed to faiss per add() call
IVFPQ_MIN_DOCS = 256  # an 8-bit product quantizer trains 256 centroids per sub-space
IVF_POINTS_PER_LIST = 39  # faiss k-means wants >= 39 training points per centroid
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128
TRAIN_SEED = 0

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
        _check_faiss_options(self.faiss, 0, self.hnsw_m, self.ivf_nlist, self.pq_m)


@dataclass(frozen=True)
class DenseLoadOptions:
    device: str | None = None  # CUDA moves a flat or IVF-PQ index to the GPU
    nprobe: int | None = None  # IVF lists searched [default: as built]
    ef_search: int | None = None  # HNSW search breadth [default: as built]


def _faiss() -> Any:
    return require("faiss", "dense")


def _chunks(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


# -- faiss index construction ------------------------------------------------------


def _default_pq_m(dim: int) -> int:
    """About 8 dimensions per sub-quantizer (48 bytes a vector for 384-d), dividing dim."""
    for m in range(max(1, dim // 8), 0, -1):
        if dim % m == 0:
            return m
    return 1


def _check_faiss_options(
    kind: str, dim: int, hnsw_m: int, ivf_nlist: int | None, pq_m: int | None
) -> None:
    """What can be checked before any encoding, so a typo does not cost a corpus pass."""
    if kind not in FAISS_KINDS:
        raise ConfigError(
            f"unknown faiss index kind {kind!r}; expected one of {', '.join(FAISS_KINDS)}"
        )
    if kind == "hnsw" and hnsw_m < 2:
        raise ConfigError(f"hnsw_m must be at least 2, got {hnsw_m}")
    if kind == "ivfpq":
        if pq_m is not None and (pq_m < 1 or dim % pq_m):
            raise ConfigError(f"pq_m must divide the embedding dimension {dim}, got {pq_m}")
        if ivf_nlist is not None and ivf_nlist < 1:
            raise ConfigError(f"ivf_nlist must be at least 1, got {ivf_nlist}")


def _ivfpq_params(n: int, dim: int, ivf_nlist: int | None, pq_m: int | None) -> dict[str, int]:
    if n < IVFPQ_MIN_DOCS:
        raise InputError(
            f"faiss='ivfpq' needs at least {IVFPQ_MIN_DOCS} documents to train its product "
            f"quantizer, got {n}; use faiss='flat' (exact) or 'hnsw' for a corpus this small"
        )
    if ivf_nlist is None:
        # ~4 sqrt(n) lists, but never fewer training points per list than k-means wants
        nlist = max(1, min(int(4 * math.sqrt(n)), n // IVF_POINTS_PER_LIST))
    elif ivf_nlist > n:
        raise ConfigError(f"ivf_nlist ({ivf_nlist}) exceeds the number of documents ({n})")
    else:
        nlist = ivf_nlist
    return {
        "nlist": nlist,
        "pq_m": pq_m if pq_m is not None else _default_pq_m(dim),
        "pq_nbits": 8,
        "nprobe": min(nlist, 16),
        # k-means uses at most 256 points a centroid; a sample bounds training memory
        "train_size": min(n, max(256 * nlist, 65536)),
    }


def _new_faiss_index(
    kind: str, n: int, dim: int, hnsw_m: int, ivf_nlist: int | None, pq_m: int | None
) -> tuple[Any, dict[str, Any]]:
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim), {}
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        params = {"m": int(hnsw_m), "ef_construction": HNSW_EF_CONSTRUCTION}
        return index, {**params, "ef_search": HNSW_EF_SEARCH}
    params = _ivfpq_params(n, dim, ivf_nlist, pq_m)
    quantizer = faiss.IndexFlatIP(dim)  # faiss's constructor keeps it alive with the index
    index = faiss.IndexIVFPQ(
        quantizer,
        dim,
        params["nlist"],
        params["pq_m"],
        params["pq_nbits"],
        faiss.METRIC_INNER_PRODUCT,
    )
    # Under ~10k documents the 256 PQ centroids of a sub-space see few points each; faiss
    # then prints one warning per sub-space. Expected here (and the codes nearly lossless).
    index.pq.cp.min_points_per_centroid = min(39, params["train_size"] // 256)
    return index, params


def _fill_faiss_index(index: Any, emb: np.ndarray, params: dict[str, Any], quiet: bool) -> None:
    n = emb.shape[0]
    if not index.is_trained:
        size = params["train_size"]
        rows = np.sort(np.random.default_rng(TRAIN_SEED).choice(n, size, replace=False))
        if not quiet:
            log.info("training faiss ivfpq on %d of %d embeddings...", size, n)
        index.train(np.ascontiguousarray(emb[rows]))
    starts = range(0, n, ADD_CHUNK)
    quiet = quiet or n <= ADD_CHUNK
    for start in progress(starts, desc="adding to faiss", unit="chunk", quiet=quiet):
        index.add(np.ascontiguousarray(emb[start : start + ADD_CHUNK]))


def _read_faiss(
    file: Path, params: Mapping[str, Any], nprobe: int | None, ef_search: int | None
) -> Any:
    """Read the index and apply its search-time settings (the manifest's, or the caller's)."""
    index = _faiss().read_index(str(file))
    kind, saved = params.get("faiss", "flat"), params.get("faiss_params", {})
    if kind == "ivfpq":
        index.nprobe = max(1, int(nprobe if nprobe is not None else saved.get("nprobe", 1)))
    elif kind == "hnsw":
        ef = ef_search if ef_search is not None else saved.get("ef_search", HNSW_EF_SEARCH)
        index.hnsw.efSearch = max(1, int(ef))
    return index


def _to_device(index: Any, kind: str, device: str | None) -> tuple[Any, Any]:
    """Move the index to a GPU when asked for CUDA and faiss has GPU support; else keep it.
    Returns the index and the GPU resources it needs kept alive (None on CPU)."""
    if not device or not device.startswith("cuda") or kind == "hnsw":
        return index, None  # faiss has no GPU HNSW
    faiss = _faiss()
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        return index, None
    gpu = int(device.split(":", 1)[1]) if ":" in device else 0
    try:
        resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(resources, gpu, index), resources
    except RuntimeError as exc:
        warnings.warn(
            f"could not move the faiss index to {device} ({exc}); searching on CPU", stacklevel=3
        )
        return index, None


def _encode_chunks(
    encoder: Encoder, chunks: Iterable[list[str]], batch_size: int
) -> Iterator[np.ndarray]:
    """Each chunk's embeddings, in order. An encoder with ``encode_doc_chunks`` (the Ray
    pool of rarx.distributed) encodes several chunks at once; a local one, one by one."""
    many = getattr(encoder, "encode_doc_chunks", None)
    if many is not None:
        return iter(many(chunks, batch_size))
    return (encoder.encode_docs(texts, batch_size=batch_size) for texts in chunks)


def _encode_and_store(
    docs: Iterable[Document],
    directory: Path,
    encoder: Encoder,
    batch_size: int,
    chunk_size: int,
    done: Callable[[int], object],
) -> None:
    """Append each chunk's embeddings to the raw file and its rows to the Parquet docstore."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("docid", pa.string()), ("title", pa.string()), ("text", pa.string()),
                        ("meta", pa.string())])  # fmt: skip
    seen: set[str] = set()  # ids only: a duplicate would make doc() ambiguous
    pending: deque[list[Document]] = deque()  # chunks handed to the encoder, not yet stored

    def texts() -> Iterator[list[str]]:
        for chunk in _chunks(docs, chunk_size):
            for d in chunk:
                if d.docid in seen:
                    raise InputError(f"duplicate document id {d.docid!r}; ids must be unique")
                seen.add(d.docid)
            pending.append(chunk)
            yield [d.contents for d in chunk]

    with (
        open(directory / EMBEDDINGS_FILE, "wb") as emb_file,
        pq.ParquetWriter(directory / DOCSTORE_FILE, schema) as writer,
    ):
        for emb in _encode_chunks(encoder, texts(), batch_size):
            chunk = pending.popleft()
            if emb.shape[0] != len(chunk):
                raise RuntimeError(f"encoder returned {emb.shape[0]} rows for {len(chunk)} texts")
            emb_file.write(np.ascontiguousarray(emb, dtype=np.float32).tobytes())
            columns = [[d.docid for d in chunk], [d.title for d in chunk], [d.text for d in chunk],
                       [_meta_json(d) for d in chunk]]  # fmt: skip
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            done(len(chunk))  # progress counts documents encoded, not merely read


def _meta_json(doc: Document) -> str | None:
    if not doc.meta:
        return None
    try:
        return json.dumps(dict(doc.meta), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"document {doc.docid!r}: its meta cannot be stored as JSON ({exc}); keep meta "
            "to strings, numbers, booleans, lists and mappings"
        ) from None


# -- the docstore --------------------------------------------------------------------


class _Docids:
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


class _DocStore(_Docids):
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


class _DocidList(_Docids):
    """The docstore of an adopted pyserini faiss folder: ids only (its ``docid`` file)."""

    def __init__(self, path: Path):
        self.docids = path.read_text(encoding="utf-8").splitlines()

    def documents(self, rows: Iterable[int]) -> dict[int, Document | None]:
        return dict.fromkeys(rows)  # no text stored: hits carry none


# -- the index -----------------------------------------------------------------------


class DenseIndex:
    """Documents embedded with a bi-encoder, searched by inner product (cosine) in faiss."""

    kind: ClassVar[str] = "dense"

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        index: Any,
        docstore: Any,  # _DocStore, or an adopted index's _DocidList
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
            _check_faiss_options(faiss, 0, hnsw_m, ivf_nlist, pq_m)
        if batch_size < 1 or chunk_size < 1:
            raise ConfigError(
                f"batch_size and chunk_size must be positive, got {batch_size}, {chunk_size}"
            )
        _faiss()  # fail on a missing extra before any encoding work
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
            _check_faiss_options(faiss, dim, hnsw_m, ivf_nlist, pq_m)
            with progress_bar("encoding", unit="doc", total=total, quiet=quiet) as bar:
                _encode_and_store(stream, tmp, encoder, batch_size, chunk_size, bar.update)
            n = stream.count
            if n == 0:
                raise InputError("no documents to index: the corpus is empty")
            embeddings = np.memmap(
                tmp / EMBEDDINGS_FILE, dtype=np.float32, mode="r", shape=(n, dim)
            )
            index, faiss_params = _new_faiss_index(faiss, n, dim, hnsw_m, ivf_nlist, pq_m)
            _fill_faiss_index(index, embeddings, faiss_params, quiet)
            del embeddings
            _faiss().write_index(index, str(tmp / FAISS_FILE))
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
            index = _read_faiss(faiss_file, params, nprobe, ef_search)
        index, gpu_resources = _to_device(index, params.get("faiss", "flat"), device)
        n = manifest.documents
        if adopted:
            docstore: Any = _DocidList(path / str(params["docid_file"]))
            rows = {str(params["docid_file"]): len(docstore.docids), faiss_file.name: index.ntotal}
        else:
            docstore = _DocStore(path / DOCSTORE_FILE)
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
