"""Retrieval systems evaluated on a dataset: a built index, BM25, a dense or a SPLADE
model built over the dataset's corpus, and RRF hybrids of them.

A dense model is a flat (exact cosine) dense index over the dataset's corpus, built once
per model and corpus under the cache folder; the with- and without-instruction runs
share it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rarx.eval.datasets.beir import BeirDataset
from rarx.index.base import ChecksumStream
from rarx.types import Document, Query, Ranking


@dataclass
class SystemRun:
    """One system's rankings for a dataset's queries, with how long it took."""

    name: str
    rankings: list[Ranking]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def queries_per_second(self) -> float | None:
        t = self.seconds.get("search")
        return len(self.rankings) / t if t else None


class LocalExecution:
    """Where systems run: in this process. ``rarx.distributed``'s RayExecution has the same
    two methods and runs pipelines and document encoding on Ray workers instead."""

    @contextmanager
    def pipeline(self, path: Path) -> Iterator[Any]:
        """A loaded pipeline (anything with ``label`` and ``run_batches``)."""
        from rarx.pipeline.pipeline import Pipeline

        yield Pipeline.from_yaml(path)

    def build_dense(
        self, docs: Iterable[Document], path: Path, encoder: Any, batch_size: int, quiet: bool
    ) -> Any:
        """A flat dense index of ``docs`` with ``encoder`` at ``path`` (overwritten)."""
        from rarx.index.dense import DenseIndex

        return DenseIndex.build(docs, path, batch_size=batch_size, overwrite=True, quiet=quiet,
                                encoder=encoder)  # fmt: skip


def corpus_key(data: BeirDataset) -> str:
    """A short key of the corpus content (the start of the index manifests' checksum)."""
    stream = ChecksumStream(data.corpus)
    for _ in stream:
        pass
    return stream.checksum.removeprefix("sha256:")[:16]


class DenseModel:
    """A bi-encoder over one dataset's corpus: a flat dense index, kept in ``cache_dir``
    (a temporary folder when None) and reused while the model and corpus are the same."""

    def __init__(
        self,
        model: str,
        data: BeirDataset,
        cache_dir: Path | None = None,
        batch_size: int = 64,
        quiet: bool = True,
        device: str | None = None,
        execution: Any = None,
    ):
        from rarx.eval.mcr import rarb_max_seq_length
        from rarx.index.base import MANIFEST_NAME
        from rarx.index.dense import DenseIndex
        from rarx.models.encoder import Encoder, EncoderConfig

        self.model = model
        self.data = data
        self.batch_size = batch_size
        self.quiet = quiet
        # RAR-b's setting for every non-bge model: 512 tokens.
        self.encoder = Encoder(
            EncoderConfig(model=model, max_seq_length=rarb_max_seq_length(model), device=device)
        )
        self.seconds: dict[str, float] = {}
        if cache_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="rarx-dense-")
            cache_dir = Path(self._tmp.name)
        safe = model.replace("/", "_")
        key = f"{safe}-{corpus_key(data)}-{int(self.encoder.model.max_seq_length)}"
        path = Path(cache_dir) / key
        if (path / MANIFEST_NAME).is_file():
            self.index = DenseIndex.load(path, encoder=self.encoder)
            self.seconds["encode_docs"] = 0.0
        else:
            t = time.perf_counter()
            execution = execution or LocalExecution()
            self.index = execution.build_dense(data.corpus, path, self.encoder, batch_size, quiet)
            self.seconds["encode_docs"] = time.perf_counter() - t

    def search(self, queries: Sequence[Query], k: int, instruction: str = "") -> SystemRun:
        t0 = time.perf_counter()
        qv = self.encoder.encode_queries(
            [q.text for q in queries], instruction, self.batch_size, self.quiet
        )
        t1 = time.perf_counter()
        rankings = self.index.search_vectors([q.qid for q in queries], qv, k)
        t2 = time.perf_counter()
        name = self.model + (" +inst" if instruction else "")
        return SystemRun(
            name, rankings,
            {"kind": "dense", "model": self.model, "instruction": instruction,
             "max_seq_length": int(self.encoder.model.max_seq_length), "search": "exact cosine"},
            {"encode_docs": self.seconds["encode_docs"], "encode_queries": t1 - t0,
             "score": t2 - t1, "search": t2 - t0},
        )  # fmt: skip


def bm25_run(
    data: BeirDataset, queries: Sequence[Query], k: int, work_dir: Path, quiet: bool = True
) -> SystemRun:
    """BM25 (Lucene, k1=0.9, b=0.4) over the dataset's corpus, indexed into ``work_dir``."""
    from rarx.index.lucene import LuceneIndex

    path = work_dir / f"bm25-{corpus_key(data)}"
    t = time.perf_counter()
    if path.is_dir():
        index = LuceneIndex.load(path)
    else:
        index = LuceneIndex.build(data.corpus, path, overwrite=True, quiet=quiet)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    rankings = index.search(list(queries), k)
    t_search = time.perf_counter() - t
    return SystemRun(
        "bm25",
        _complete(rankings, queries),
        {"kind": "bm25", **index.settings},
        {"build": t_build, "search": t_search},
    )


def splade_run(
    data: BeirDataset, queries: Sequence[Query], k: int, work_dir: Path, model: str,
    quiet: bool = True,
) -> SystemRun:  # fmt: skip
    """A SPLADE model's impact index over the dataset's corpus (default quantisation),
    built into ``work_dir`` once per model and corpus."""
    from rarx.index.impact import ImpactIndex

    path = work_dir / f"splade-{model.replace('/', '_')}-{corpus_key(data)}"
    t = time.perf_counter()
    if path.is_dir():
        index = ImpactIndex.load(path)
    else:
        index = ImpactIndex.build(data.corpus, path, model=model, overwrite=True, quiet=quiet)
    t_build = time.perf_counter() - t
    t0 = time.perf_counter()
    impacts = index.encode_queries([q.text for q in queries])
    t1 = time.perf_counter()
    rankings = index.search_impacts([q.qid for q in queries], impacts, k)
    t2 = time.perf_counter()
    return SystemRun(
        model, _complete(rankings, queries),
        {"kind": "splade", "model": model, **index.manifest.params},
        {"build": t_build, "encode_queries": t1 - t0, "score": t2 - t1, "search": t2 - t0},
    )  # fmt: skip


def index_run(path: Path, queries: Sequence[Query], k: int) -> SystemRun:
    """A built rarx index (any kind), searched as it is."""
    from rarx.index.base import load_index

    index = load_index(path)
    t = time.perf_counter()
    rankings = index.search(list(queries), k)
    return SystemRun(str(path), _complete(rankings, queries),
                     {"kind": index.manifest.kind, "index": str(path),
                      "model": index.manifest.model},
                     {"search": time.perf_counter() - t})  # fmt: skip


def pipeline_run(
    path: Path, queries: Sequence[Query], k: int, batch_size: int = 16, execution: Any = None
) -> SystemRun:
    """A pipeline YAML run over the queries; its final ranking is the system's run (a
    query the pipeline answered without retrieving gets an empty ranking)."""
    with (execution or LocalExecution()).pipeline(path) as pipeline:
        t = time.perf_counter()
        rankings = []
        batches = [list(queries[i : i + batch_size]) for i in range(0, len(queries), batch_size)]
        for states in pipeline.run_batches(batches):
            for state in states:
                ranking = state.ranking or Ranking(state.query.qid)
                rankings.append(ranking.top(k))
        seconds = time.perf_counter() - t
    return SystemRun(str(path), _complete(rankings, queries),
                     {"kind": "pipeline", "pipeline": str(path), "name": pipeline.label},
                     {"search": seconds})  # fmt: skip


def hybrid_run(runs: Sequence[SystemRun], k: int) -> SystemRun:
    from rarx.index.fusion import rrf

    t = time.perf_counter()
    fused = rrf([r.rankings for r in runs], k=k)
    names = " + ".join(r.name for r in runs)
    seconds = {"fuse": time.perf_counter() - t}
    seconds["search"] = sum(r.seconds.get("search", 0.0) for r in runs) + seconds["fuse"]
    return SystemRun(f"rrf({names})", fused, {"kind": "rrf", "of": [r.name for r in runs]}, seconds)


def _complete(rankings: Sequence[Ranking], queries: Sequence[Query]) -> list[Ranking]:
    """One ranking per query, in query order (an index may omit queries with no hits)."""
    by_qid = {r.qid: r for r in rankings}
    return [by_qid.get(q.qid, Ranking(q.qid)) for q in queries]
