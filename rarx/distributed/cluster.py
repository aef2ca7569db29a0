"""Starting or joining Ray, and how many workers of what size a job gets.

``RayEngine(workers, address).connect()`` starts Ray on this machine with all its cores
(``ray.init()``; it joins ``RAY_ADDRESS`` or a cluster started here with ``ray start``
when there is one) or joins the cluster at ``address``. It returns a :class:`Placement`:
the number of workers and the CPUs and GPUs each reserves. Faults are Ray's business:
every actor is created with ``max_restarts`` and ``max_task_retries`` (a killed worker
is restarted and its calls are run again), every task with ``max_retries``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rarx.errors import ConfigError, RarxError, require

MAX_RESTARTS = 3  # a worker process may die this often before the job fails
MAX_TASK_RETRIES = 3  # calls of a restarted actor run again, up to this often
MAX_RETRIES = 3  # tasks (BM25 shards) run again after their worker died
CPUS_PER_DEFAULT_WORKER = 4  # without GPUs and --workers: one worker per 4 cores

# The JVM (Lucene, through pyjnius) raises SIGSEGV on purpose and handles it itself;
# Ray's failure signal handler, installed over the JVM's, turns each one into a crash of
# the process. Ray decides whether to install it when it is first imported, so rarx sets
# this before that import (``ray()``) and for every worker of its jobs (``init_ray``).
NO_SIGNAL_HANDLER = {"RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1"}


def ray() -> Any:
    os.environ.update(NO_SIGNAL_HANDLER)
    return require("ray", "ray")


def init_ray(**kwargs: Any) -> Any:
    """``ray.init(**kwargs)``, with Ray's failure signal handler left out of this driver
    (unless Ray was imported before rarx) and of every worker of the job."""
    r = ray()
    runtime_env = dict(kwargs.pop("runtime_env", None) or {})
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **NO_SIGNAL_HANDLER}
    return r.init(runtime_env=runtime_env, **kwargs)


@dataclass(frozen=True)
class Placement:
    """What each of ``workers`` actors (or tasks) reserves on the cluster."""

    workers: int
    cpus: int
    gpus: float

    def options(self, **extra: Any) -> dict[str, Any]:
        """Ray ``.options()`` for one worker."""
        return {"num_cpus": self.cpus, "num_gpus": self.gpus, **extra}

    def actor_options(self) -> dict[str, Any]:
        return self.options(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)


@dataclass(frozen=True)
class RayEngine:
    """``--engine ray``: how to reach Ray (``address``; None starts it here) and how many
    workers to use (None: one per GPU, else one per 4 cores)."""

    workers: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")

    def connect(self) -> Placement:
        r = ray()
        if not r.is_initialized():
            # Worker output would land on our stdout (results go there): keep it in
            # Ray's logs; errors come back as exceptions.
            init_ray(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        return plan(self.workers, r.cluster_resources())


def plan(workers: int | None, resources: dict[str, float]) -> Placement:
    """Workers and their share of the cluster: with GPUs, one each (a fraction of one
    when there are more workers than GPUs); the CPUs split evenly between workers."""
    cpus = int(resources.get("CPU", 0))
    gpus = int(resources.get("GPU", 0))
    if workers is None:
        workers = gpus or max(1, cpus // CPUS_PER_DEFAULT_WORKER)
    if cpus < workers:
        raise ConfigError(
            f"--workers {workers} needs at least {workers} CPUs; the Ray cluster has {cpus}. "
            "Pass fewer --workers or add nodes to the cluster"
        )
    share = 0.0 if gpus == 0 else (1.0 if workers <= gpus else gpus / workers)
    return Placement(workers, cpus // workers, share)


def unwrap(exc: BaseException) -> BaseException:
    """The rarx error inside a Ray task or actor error (else ``exc``), so users see the
    same one-line message as from a local run."""
    seen = 0
    inner: BaseException | None = exc
    while inner is not None and seen < 10:
        if isinstance(inner, RarxError) and not _is_ray_wrapper(inner):
            return inner
        inner = getattr(inner, "cause", None) or inner.__cause__
        seen += 1
    return exc


def _is_ray_wrapper(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("ray.")


@contextmanager
def rarx_errors(what: str) -> Iterator[None]:
    """Re-raise a rarx error from a worker as itself; a worker lost for good (more
    restarts than allowed) as a RarxError that says so."""
    try:
        yield
    except Exception as exc:
        found = unwrap(exc)
        if found is not exc:
            raise found from None
        actor_error = getattr(ray().exceptions, "RayActorError", ())
        if isinstance(exc, actor_error):
            raise RarxError(
                f"{what}: a Ray worker died and could not be restarted (at most "
                f"{MAX_RESTARTS} restarts): {str(exc).splitlines()[0]}"
            ) from exc
        raise
