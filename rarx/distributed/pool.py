"""Ray actors that each load something once (an encoder, a pipeline), fed through Ray's
``ActorPool`` with results in input order.

Each actor holds ``IN_FLIGHT`` slots in the pool (its handle is listed that often), so
its next call is already queued when one finishes; Ray runs an actor's calls one at a
time. Items are submitted as slots free up, so a long input is never all in memory.
A worker class keeps a load error to raise from ``ready()`` instead of failing in its
constructor, where Ray would report a dead actor instead of the error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rarx.distributed.cluster import Placement, rarx_errors, ray

IN_FLIGHT = 2  # calls queued per actor


class Worker:
    """Base of the actor classes: the process id (tests kill it) and the load error."""

    def __init__(self, cwd: str, load: Callable[[], Any]):
        # Relative paths (indexes in pipeline files) mean what they mean to the driver.
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.error: BaseException | None = None
        try:
            self.value = load()
        except Exception as exc:  # noqa: BLE001 - raised from ready(), with its message
            self.error = exc

    def ready(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {"pid": os.getpid(), **self.describe()}

    def describe(self) -> dict[str, Any]:
        return {}


class WorkerPool:
    """``placement.workers`` actors of ``cls(cwd, *args)``, started on first use."""

    def __init__(self, cls: type[Worker], args: tuple[Any, ...], placement: Placement,
                 what: str):  # fmt: skip
        self.cls, self.args, self.placement, self.what = cls, args, placement, what
        self.actors: list[Any] = []
        self.info: dict[str, Any] = {}

    def start(self) -> WorkerPool:
        if not self.actors:
            remote = ray().remote(self.cls).options(**self.placement.actor_options())
            self.actors = [
                remote.remote(os.getcwd(), *self.args) for _ in range(self.placement.workers)
            ]
            with rarx_errors(self.what):
                self.info = ray().get([a.ready.remote() for a in self.actors])[0]
        return self

    def pids(self) -> list[int]:
        """The actors' current process ids (a restarted actor has a new one)."""
        self.start()
        with rarx_errors(self.what):
            return [info["pid"] for info in ray().get([a.ready.remote() for a in self.actors])]

    def map(self, method: str, items: Iterable[Any], *args: Any) -> Iterator[Any]:
        """``actor.method(item, *args)`` for each item, results in input order."""
        self.start()
        from ray.util import ActorPool

        pool = ActorPool([a for a in self.actors for _ in range(IN_FLIGHT)])

        def call(actor: Any, item: Any) -> Any:
            return getattr(actor, method).remote(item, *args)

        with rarx_errors(self.what):
            for item in items:
                if not pool.has_free():
                    yield pool.get_next()
                pool.submit(call, item)
            while pool.has_next():
                yield pool.get_next()

    def close(self) -> None:
        for actor in self.actors:
            ray().kill(actor)
        self.actors = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
