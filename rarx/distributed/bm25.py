"""BM25 indexing on Ray: each worker indexes a contiguous share of the corpus blocks into
a Lucene shard with Anserini (as a local build does), and the driver merges the shards
with Lucene's ``IndexWriter.addIndexes`` into one segment.

BM25's statistics (document count, average length, document frequencies) are sums over
segments, document lengths are encoded per document, and Anserini breaks score ties by
docid, not by Lucene's internal order: the merged index gives the same scores and
rankings as a single build. The driver reads the blocks once more in corpus order, for
the manifest's checksum and the duplicate-id check, while the shards are built.

Shards are written inside the index's staging directory, so on a multi-node cluster
the index path must be on storage that every node sees.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rarx.distributed.cluster import MAX_RETRIES, RayEngine, rarx_errors, ray
from rarx.distributed.corpus import iter_documents, read_blocks
from rarx.errors import InputError
from rarx.index.lucene import (
    Bm25BuildParams,
    LuceneIndex,
    index_with_anserini,
    merge_lucene_indexes,
)
from rarx.types import Document

SHARDS_DIR = "_shards"


def build_shard(refs: list[Any], directory: str, threads: int, memory_buffer_mb: int) -> int:
    """A Ray task: the documents of ``refs`` as a Lucene index at ``directory``."""
    target = Path(directory)
    for leftover in (target, target.parent / f"_input-{target.name}"):
        shutil.rmtree(leftover, ignore_errors=True)  # from an attempt whose worker died
    target.parent.mkdir(parents=True, exist_ok=True)
    return index_with_anserini(iter_documents(refs), target, threads, memory_buffer_mb)


def _contiguous(items: list[Any], parts: int) -> list[list[Any]]:
    cuts = [len(items) * i // parts for i in range(parts + 1)]
    return [items[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def build_bm25(
    source: str | Path, path: str | Path, params: Bm25BuildParams, engine: RayEngine, *,
    overwrite: bool = False, quiet: bool = False,
) -> LuceneIndex:  # fmt: skip
    """A BM25 index of the corpus at ``source``, built in shards by ``engine``'s workers
    (each with Anserini on its CPUs) and merged by the driver."""
    placement = engine.connect()
    refs = read_blocks(source, placement.workers, split=True)
    task = ray().remote(build_shard).options(**placement.options(max_retries=MAX_RETRIES))

    def indexer(docs: Iterable[Document], lucene_dir: Path) -> None:
        shards = lucene_dir.parent / SHARDS_DIR
        dirs = [shards / f"{i:03d}" for i in range(placement.workers)]
        groups = _contiguous(refs, placement.workers)
        pending = [
            task.remote(group, str(d), placement.cpus, params.memory_buffer_mb)
            for group, d in zip(groups, dirs, strict=True)
        ]
        with rarx_errors("building BM25 shards"):
            try:
                seen: set[str] = set()
                for d in docs:  # the checksum and count, in corpus order, meanwhile
                    if d.docid in seen:
                        raise InputError(
                            f"duplicate document id {d.docid!r} in {source}; ids must be "
                            "unique (deduplicate the corpus, or index it with --engine "
                            "local --dedupe)"
                        )
                    seen.add(d.docid)
                counts = ray().get(pending)
            except BaseException:
                for ref in pending:
                    ray().cancel(ref, force=True)
                raise
        merge_lucene_indexes([d for d, n in zip(dirs, counts, strict=True) if n], lucene_dir,
                             params.memory_buffer_mb)  # fmt: skip
        shutil.rmtree(shards)

    return LuceneIndex.build(
        iter_documents(refs), path, overwrite=overwrite, k1=params.k1, b=params.b,
        memory_buffer_mb=params.memory_buffer_mb, quiet=quiet, indexer=indexer,
    )  # fmt: skip
