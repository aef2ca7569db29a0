"""faiss indexes of a dense index: their kinds and parameters, construction and training,
reading with search-time settings, and placement on a GPU."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from rarx.errors import ConfigError, InputError, require
from rarx.progress import progress

FaissKind = Literal["flat", "hnsw", "ivfpq"]
FAISS_KINDS: tuple[str, ...] = get_args(FaissKind)

ADD_CHUNK = 65536  # embedding rows handed to faiss per add() call
IVFPQ_MIN_DOCS = 256  # an 8-bit product quantizer trains 256 centroids per sub-space
IVF_POINTS_PER_LIST = 39  # faiss k-means wants >= 39 training points per centroid
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128
TRAIN_SEED = 0

log = logging.getLogger(__name__)


def faiss_module() -> Any:
    return require("faiss", "dense")


def default_pq_m(dim: int) -> int:
    """About 8 dimensions per sub-quantizer (48 bytes a vector for 384-d), dividing dim."""
    for m in range(max(1, dim // 8), 0, -1):
        if dim % m == 0:
            return m
    return 1


def check_options(
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


def ivfpq_params(n: int, dim: int, ivf_nlist: int | None, pq_m: int | None) -> dict[str, int]:
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
        "pq_m": pq_m if pq_m is not None else default_pq_m(dim),
        "pq_nbits": 8,
        "nprobe": min(nlist, 16),
        # k-means uses at most 256 points a centroid; a sample bounds training memory
        "train_size": min(n, max(256 * nlist, 65536)),
    }


def new_index(
    kind: str, n: int, dim: int, hnsw_m: int, ivf_nlist: int | None, pq_m: int | None
) -> tuple[Any, dict[str, Any]]:
    faiss = faiss_module()
    if kind == "flat":
        return faiss.IndexFlatIP(dim), {}
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        params = {"m": int(hnsw_m), "ef_construction": HNSW_EF_CONSTRUCTION}
        return index, {**params, "ef_search": HNSW_EF_SEARCH}
    params = ivfpq_params(n, dim, ivf_nlist, pq_m)
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


def fill_index(index: Any, emb: np.ndarray, params: dict[str, Any], quiet: bool) -> None:
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


def read_index(
    file: Path, params: Mapping[str, Any], nprobe: int | None, ef_search: int | None
) -> Any:
    """Read the index and apply its search-time settings (the manifest's, or the caller's)."""
    index = faiss_module().read_index(str(file))
    kind, saved = params.get("faiss", "flat"), params.get("faiss_params", {})
    if kind == "ivfpq":
        index.nprobe = max(1, int(nprobe if nprobe is not None else saved.get("nprobe", 1)))
    elif kind == "hnsw":
        ef = ef_search if ef_search is not None else saved.get("ef_search", HNSW_EF_SEARCH)
        index.hnsw.efSearch = max(1, int(ef))
    return index


def to_device(index: Any, kind: str, device: str | None) -> tuple[Any, Any]:
    """Move the index to a GPU when asked for CUDA and faiss has GPU support; else keep it.
    Returns the index and the GPU resources it needs kept alive (None on CPU)."""
    if not device or not device.startswith("cuda") or kind == "hnsw":
        return index, None  # faiss has no GPU HNSW
    faiss = faiss_module()
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
