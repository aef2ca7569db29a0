"""Admission (bounded concurrency with a bounded queue) and dynamic batching.

A :class:`Batcher` merges the queries of concurrent requests for the same target (an
index with its search options, or a pipeline) into one call: the first request waits
at most ``max_wait`` for others to join, a full batch goes at once, and one call per
target runs at a time, so requests that arrive during a call form the next batch. The
models and indexes behind a target run batches much faster than the same queries one
by one (one encoder pass, one LLM forward over padded prompts, one JVM call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """Every slot is taken and the queue is full."""


class Admission:
    """At most ``limit`` requests served at once and ``queue`` more waiting; a request
    past both is refused at once (never an unbounded backlog)."""

    def __init__(self, limit: int, queue: int, on_change: Callable[[int, int], None] | None = None):
        self.limit = limit
        self.queue = queue
        self.active = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(limit)
        self._on_change = on_change or (lambda active, waiting: None)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._free.locked() and self.waiting >= self.queue:
            raise Overloaded(
                f"{self.active} requests in progress and {self.waiting} waiting (the limits)"
            )
        self.waiting += 1
        self._on_change(self.active, self.waiting)
        try:
            await self._free.acquire()
        except BaseException:  # cancelled while waiting (the request timed out)
            self.waiting -= 1
            self._on_change(self.active, self.waiting)
            raise
        self.waiting -= 1
        self.active += 1
        self._on_change(self.active, self.waiting)
        try:
            yield
        finally:
            self.active -= 1
            self._free.release()
            self._on_change(self.active, self.waiting)


@dataclass
class _Request(Generic[T, R]):
    items: Sequence[T]
    future: asyncio.Future[list[R]]
    arrived: float = field(default_factory=time.monotonic)


class Batcher(Generic[T, R]):
    """Runs ``run(items) -> results`` (blocking, one result per item, in order) on
    ``executor`` for the merged items of concurrent :meth:`submit` calls.

    A request is never split: a batch takes whole requests up to ``max_batch_size``
    items (a larger request goes alone). When a merged call fails, each of its requests
    runs alone, so one bad request fails nobody else.
    """

    def __init__(
        self,
        run: Callable[[list[T]], list[R]],
        executor: Executor,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int, int, float], None] | None = None,
        on_idle: Callable[[Batcher[T, R]], None] | None = None,
    ):
        self._run = run
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._on_idle = on_idle
        self._pending: deque[_Request[T, R]] = deque()
        self._queued = 0  # items in _pending
        self._full = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        """Stop (at shutdown): the waiting requests are cancelled."""
        if self._worker is not None:
            self._worker.cancel()

    async def submit(self, items: Sequence[T]) -> list[R]:
        if not items:
            return []
        request: _Request[T, R] = _Request(items, asyncio.get_running_loop().create_future())
        self._pending.append(request)
        self._queued += len(items)
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain())
        elif self._queued >= self.max_batch_size:
            self._full.set()
        return await request.future

    def _take(self) -> list[_Request[T, R]]:
        batch: list[_Request[T, R]] = []
        size = 0
        while self._pending:
            head = self._pending[0]
            if head.future.done():  # its caller gave up (timeout): drop it unrun
                self._pending.popleft()
                self._queued -= len(head.items)
                continue
            if batch and size + len(head.items) > self.max_batch_size:
                break
            self._pending.popleft()
            self._queued -= len(head.items)
            batch.append(head)
            size += len(head.items)
        return batch

    async def _drain(self) -> None:
        try:
            while self._pending:
                wait = self._pending[0].arrived + self.max_wait_s - time.monotonic()
                if self._queued < self.max_batch_size and wait > 0:
                    self._full.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._full.wait()
                batch = self._take()
                if batch:
                    await self._call(batch)
        finally:
            self._worker = None
            for request in self._pending:  # only when cancelled (shutdown)
                request.future.cancel()
            if not self._pending and self._on_idle is not None:
                self._on_idle(self)

    async def _call(self, batch: list[_Request[T, R]]) -> None:
        items = [x for r in batch for x in r.items]
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self._run, items)
            if len(results) != len(items):
                raise RuntimeError(f"a batch of {len(items)} gave {len(results)} results")
        except asyncio.CancelledError:
            for r in batch:
                r.future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the callers below
            if len(batch) > 1:
                log.debug("a merged batch failed (%s); running its requests alone", exc)
                for r in batch:
                    await self._call([r])
                return
            _settle(batch[0], exception=exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch), len(items), time.perf_counter() - start)
        at = 0
        for r in batch:
            _settle(r, results[at : at + len(r.items)])
            at += len(r.items)


def _settle(
    request: _Request[T, R], result: list[R] | None = None, exception: Exception | None = None
) -> None:
    if request.future.done():  # timed out meanwhile: nobody is waiting
        return
    if exception is not None:
        request.future.set_exception(exception)
    else:
        request.future.set_result(result or [])
