"""Dense indexing on Ray: a pool of actors, each with the encoder loaded once (a GPU
each when the cluster has them), encodes the corpus chunk by chunk; the driver writes
the chunks' embeddings and documents in corpus order and assembles the faiss index.

The driver runs :meth:`rarx.index.dense.DenseIndex.build` itself, with a
:class:`RayEncoder` in place of the local encoder: the same chunks (``chunk_size``
documents, in corpus order) are encoded with the same batch size, so the embeddings,
the docstore, the manifest and a flat index are identical to a local build on the same
device, and IVF-PQ is trained on the same sample and filled the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rarx.distributed.cluster import Placement, RayEngine
from rarx.distributed.corpus import iter_documents, read_blocks
from rarx.distributed.pool import Worker, WorkerPool
from rarx.index.dense import CHUNK_SIZE, DenseBuildParams, DenseIndex
from rarx.models.encoder import Encoder, EncoderConfig
from rarx.types import Document


class EncoderWorker(Worker):
    """A Ray actor holding one encoder."""

    def __init__(self, cwd: str, config: EncoderConfig):
        super().__init__(cwd, lambda: Encoder(config))

    def describe(self) -> dict[str, Any]:
        encoder = self.value
        return {"dim": encoder.dim, "max_seq_length": encoder.max_seq_length,
                "device": str(encoder.model.device)}  # fmt: skip

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.value.encode_docs(texts, batch_size=batch_size)


class RayEncoder:
    """What DenseIndex.build uses of an encoder (``config``, ``dim``, ``max_seq_length``,
    ``encode_doc_chunks``), with the encoding done by a pool of Ray actors."""

    def __init__(self, config: EncoderConfig, placement: Placement):
        self.config = config
        self.pool = WorkerPool(EncoderWorker, (config,), placement, f"encoding with {config.model}")

    @property
    def dim(self) -> int:
        return int(self.pool.start().info["dim"])

    @property
    def max_seq_length(self) -> int:
        return int(self.pool.start().info["max_seq_length"])

    def encode_doc_chunks(
        self, chunks: Iterable[list[str]], batch_size: int
    ) -> Iterator[np.ndarray]:
        return self.pool.map("encode", chunks, batch_size)

    def close(self) -> None:
        self.pool.close()


def build_dense(
    source: str | Path | Iterable[Document], path: str | Path, params: DenseBuildParams,
    engine: RayEngine, *, overwrite: bool = False, quiet: bool = False,
    chunk_size: int = CHUNK_SIZE, encoder: RayEncoder | None = None,
) -> DenseIndex:  # fmt: skip
    """A dense index of ``source`` (a corpus path, read by Ray Data, or documents) built
    by ``engine``'s workers; ``encoder`` reuses a started pool (it is then not closed)."""
    placement = engine.connect()
    if isinstance(source, str | Path):
        docs: Iterable[Document] = iter_documents(read_blocks(source), release=True)
    else:
        docs = source
    config = EncoderConfig(
        model=params.model, query_prefix=params.query_prefix, doc_prefix=params.doc_prefix,
        max_seq_length=params.max_seq_length, device=params.device,
    )  # fmt: skip
    pool = encoder if encoder is not None else RayEncoder(config, placement)
    try:
        DenseIndex.build(
            docs, path, faiss=params.faiss, batch_size=params.batch_size, overwrite=overwrite,
            quiet=quiet, device=params.device, hnsw_m=params.hnsw_m, ivf_nlist=params.ivf_nlist,
            pq_m=params.pq_m, chunk_size=chunk_size, encoder=pool,  # type: ignore[arg-type]
        )  # fmt: skip
    finally:
        if encoder is None:
            pool.close()
    return DenseIndex.load(path, device=params.device)
