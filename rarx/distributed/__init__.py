"""``--engine ray``: indexing, pipelines and evaluation on Ray, with results identical
to a local run.

- :mod:`~rarx.distributed.cluster`: start Ray here or join a cluster; workers and their
  CPUs/GPUs; Ray's restarts and retries for faults.
- :mod:`~rarx.distributed.dense`, :mod:`~rarx.distributed.splade` and
  :mod:`~rarx.distributed.bm25`: index builds (Ray Data reads the corpus,
  :mod:`~rarx.distributed.corpus`).
- :mod:`~rarx.distributed.pipeline`: a pipeline whose batches run on Ray workers;
  :mod:`~rarx.distributed.execution`: the same for ``rarx eval retrieval``.

Nothing here imports Ray until it is used; install it with ``pip install 'rarx[ray]'``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rarx.distributed.cluster import RayEngine
from rarx.errors import ConfigError

KINDS = ("bm25", "dense", "splade")  # index kinds with a Ray build


def build_index(
    kind: str, source: Any, path: Any, params: Any, engine: RayEngine, *,
    overwrite: bool = False, quiet: bool = False,
) -> Any:  # fmt: skip
    """``rarx index --engine ray``: an index of ``kind`` built by ``engine``'s workers."""
    if kind == "dense":
        from rarx.distributed.dense import build_dense

        return build_dense(source, path, params, engine, overwrite=overwrite, quiet=quiet)
    if kind == "bm25":
        from rarx.distributed.bm25 import build_bm25

        return build_bm25(source, path, params, engine, overwrite=overwrite, quiet=quiet)
    if kind == "splade":
        from rarx.distributed.splade import build_splade

        return build_splade(source, path, params, engine, overwrite=overwrite, quiet=quiet)
    raise ConfigError(
        f"--engine ray builds {', '.join(KINDS)} indexes, not {kind!r}; use --engine local"
    )


def execution_for(engine: RayEngine | None) -> Any:
    """Where ``rarx eval retrieval`` runs its systems: None (this process) without an
    engine, else the engine's workers. (Not named ``execution``: importing the submodule
    :mod:`rarx.distributed.execution` rebinds that package attribute to the module.)"""
    if engine is None:
        return None
    from rarx.distributed.execution import RayExecution

    return RayExecution(engine)


def pipeline_opener(engine: RayEngine | None) -> Any:
    """``open_pipeline(spec, strict)`` for :func:`rarx.eval.qa_run.run_qa`: None (a
    pipeline in this process) without an engine, else one on the engine's workers."""
    if engine is None:
        return None

    @contextmanager
    def open_pipeline(spec: Any, strict: bool) -> Iterator[Any]:
        from rarx.distributed.pipeline import RayPipeline

        with RayPipeline(spec, engine, strict=strict) as pipe:
            yield pipe

    return open_pipeline


__all__ = ["KINDS", "RayEngine", "build_index", "execution_for", "pipeline_opener"]
