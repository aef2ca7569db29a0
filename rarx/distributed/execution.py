"""``rarx eval retrieval --engine ray``: pipeline systems run on Ray workers and dense
models encode the dataset's corpus on them; searching built indexes stays local (it
takes seconds). The same two methods as :class:`rarx.eval.systems.LocalExecution`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rarx.distributed.cluster import RayEngine
from rarx.distributed.dense import RayEncoder
from rarx.distributed.pipeline import RayPipeline
from rarx.index.dense import DenseIndex
from rarx.pipeline.spec import load_spec
from rarx.types import Document


class RayExecution:
    def __init__(self, engine: RayEngine):
        self.engine = engine

    @contextmanager
    def pipeline(self, path: Path) -> Iterator[RayPipeline]:
        with RayPipeline(load_spec(path), self.engine) as pipeline:
            yield pipeline

    def build_dense(
        self, docs: Iterable[Document], path: Path, encoder: Any, batch_size: int, quiet: bool
    ) -> DenseIndex:
        """As the local build with ``encoder``'s settings; the driver's ``encoder`` is
        kept for the queries."""
        pool = RayEncoder(encoder.config, self.engine.connect())
        try:
            DenseIndex.build(docs, path, batch_size=batch_size, overwrite=True, quiet=quiet,
                             encoder=pool)  # type: ignore[arg-type]  # fmt: skip
        finally:
            pool.close()
        return DenseIndex.load(path, encoder=encoder)
