"""Pipelines on Ray: each worker loads the pipeline once (its models and indexes) and
runs whole batches; batches go to the workers as they free up and come back in input
order. A batch is the same batch a local run makes, so LLMs see the same inputs
together and the results equal a local run's; a query that fails is recorded on its
state by the pipeline, exactly as in a local run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from rarx.distributed.cluster import RayEngine
from rarx.distributed.pool import Worker, WorkerPool
from rarx.pipeline.pipeline import Pipeline, QueryInput
from rarx.pipeline.spec import PipelineSpec, check_indexes
from rarx.types import QueryState


class PipelineWorker(Worker):
    """A Ray actor holding one loaded pipeline."""

    def __init__(self, cwd: str, spec: PipelineSpec, strict: bool):
        super().__init__(cwd, lambda: Pipeline.from_spec(spec, strict=strict))

    def run(self, batch: list[QueryInput]) -> list[QueryState]:
        return self.value.run(batch)


class RayPipeline:
    """A pipeline whose batches run on Ray workers (see :meth:`run_batches`)."""

    def __init__(self, spec: PipelineSpec, engine: RayEngine, strict: bool = False):
        check_indexes(spec)  # a missing index fails here, not in every worker
        self.spec = spec
        self.label = spec.name
        self.strict = strict
        placement = engine.connect()
        self.pool = WorkerPool(PipelineWorker, (spec, strict), placement, f"pipeline {spec.name}")

    @property
    def workers(self) -> int:
        return self.pool.placement.workers

    def start(self) -> RayPipeline:
        """Start the workers and load the pipeline in each (else the first batch does)."""
        self.pool.start()
        return self

    def run_batches(self, batches: Iterable[Sequence[QueryInput]]) -> Iterator[list[QueryState]]:
        """One list of states per batch, in input order, as ``Pipeline.run_batches``."""
        return self.pool.map("run", (list(b) for b in batches))

    def run(self, batch: Sequence[QueryInput]) -> list[QueryState]:
        return next(iter(self.run_batches([batch])))

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> RayPipeline:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
