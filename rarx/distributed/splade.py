"""SPLADE indexing on Ray: a pool of actors, each with the SPLADE encoder loaded once (a
GPU each when the cluster has them), turns the corpus chunk by chunk into integer term
impacts; the driver writes them in corpus order and indexes them with Anserini.

Encoding is the whole cost of a SPLADE build (Lucene indexes the impacts in seconds), so
only it is spread: the driver runs :meth:`rarx.index.impact.ImpactIndex.build` itself,
with :class:`RaySparseEncoder` in place of the local encoder. Chunks, batch size and
quantisation are the local build's, so the impacts, the docstore and the manifest are
those of a local build on the same device, and so are every query's scores and ranking.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rarx.distributed.cluster import Placement, RayEngine
from rarx.distributed.corpus import iter_documents, read_blocks
from rarx.distributed.pool import Worker, WorkerPool
from rarx.index.impact import CHUNK_SIZE, ImpactIndex, SpladeBuildParams
from rarx.models.sparse import SparseEncoder, SparseEncoderConfig
from rarx.types import Document


class SparseWorker(Worker):
    """A Ray actor holding one SPLADE encoder."""

    def __init__(self, cwd: str, config: SparseEncoderConfig):
        super().__init__(cwd, lambda: SparseEncoder(config))

    def describe(self) -> dict[str, Any]:
        encoder = self.value
        return {"vocab_size": encoder.vocab_size, "max_seq_length": encoder.max_seq_length,
                "device": str(encoder.model.device)}  # fmt: skip

    def impacts(self, texts: list[str], batch_size: int, factor: float) -> list[dict[str, int]]:
        return self.value.doc_impacts(texts, batch_size, factor)


class RaySparseEncoder:
    """What ImpactIndex.build uses of an encoder (``config``, ``vocab_size``,
    ``max_seq_length``, ``doc_impact_chunks``), with the encoding done by Ray actors."""

    def __init__(self, config: SparseEncoderConfig, placement: Placement):
        self.config = config
        self.pool = WorkerPool(SparseWorker, (config,), placement, f"encoding with {config.model}")

    @property
    def vocab_size(self) -> int:
        return int(self.pool.start().info["vocab_size"])

    @property
    def max_seq_length(self) -> int:
        return int(self.pool.start().info["max_seq_length"])

    def doc_impact_chunks(
        self, chunks: Iterable[Sequence[str]], batch_size: int, factor: float
    ) -> Iterator[list[dict[str, int]]]:
        return self.pool.map("impacts", chunks, batch_size, factor)

    def close(self) -> None:
        self.pool.close()


def build_splade(
    source: str | Path | Iterable[Document], path: str | Path, params: SpladeBuildParams,
    engine: RayEngine, *, overwrite: bool = False, quiet: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> ImpactIndex:  # fmt: skip
    """A SPLADE index of ``source`` (a corpus path, read by Ray Data, or documents) with
    the encoding done by ``engine``'s workers."""
    placement = engine.connect()
    if isinstance(source, str | Path):
        docs: Iterable[Document] = iter_documents(read_blocks(source), release=True)
    else:
        docs = source
    config = SparseEncoderConfig(params.model, params.max_seq_length, params.device)
    encoder = RaySparseEncoder(config, placement)
    try:
        ImpactIndex.build(
            docs, path, model=params.model, quantization=params.quantization,
            batch_size=params.batch_size, max_seq_length=params.max_seq_length,
            device=params.device, threads=params.threads,
            memory_buffer_mb=params.memory_buffer_mb, overwrite=overwrite, quiet=quiet,
            chunk_size=chunk_size, encoder=encoder,
        ).close()  # fmt: skip
    finally:
        encoder.close()
    return ImpactIndex.load(path, device=params.device)
