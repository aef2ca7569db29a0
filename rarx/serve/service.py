"""What the HTTP layer calls: the named indexes and pipelines, loaded once under the
concurrency policy of a :class:`~rarx.pipeline.resources.Resources`, reached through
admission and per-target batchers. Searches go through ``search_pipeline``, the same
path as ``rarx search``; pipelines through :class:`~rarx.pipeline.Pipeline`."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from rarx.errors import ConfigError, RarxError
from rarx.index.base import Capability, Index, Manifest
from rarx.index.registry import index_kind
from rarx.llm import llm_name
from rarx.pipeline.pipeline import Pipeline
from rarx.pipeline.resources import Resources
from rarx.pipeline.search import SearchOptions, search_pipeline
from rarx.pipeline.spec import PipelineSpec, check_indexes, load_spec
from rarx.serve.batching import Admission, Batcher
from rarx.serve.config import ServeConfig
from rarx.serve.metrics import Metrics
from rarx.types import Query, QueryState, Ranking

log = logging.getLogger(__name__)

SearchKey = tuple[tuple[str, ...], int, bool]  # index names, k, rerank
CACHED_SEARCHES = 64  # search pipelines kept (cheap to build: the loaded objects are shared)


class NotFound(ConfigError):
    """A request named an index or pipeline this server does not have."""


class Service:
    def __init__(self, config: ServeConfig, resources: Resources | None = None):
        self.config = config
        self.resources = resources if resources is not None else Resources()
        self.metrics = Metrics()
        # Checks that read only small files, so a wrong path fails at start-up.
        self.manifests: dict[str, Manifest] = {}
        for name, path in config.indexes.items():
            manifest = Manifest.read(path)
            if not index_kind(manifest.kind).has(Capability.RANKED_SEARCH):
                raise ConfigError(
                    f"index {name!r} ({path}) is a {manifest.kind!r} index, which gives no "
                    "ranking; serve indexes built with --kind bm25, dense, ..."
                )
            self.manifests[name] = manifest
        self.specs: dict[str, PipelineSpec] = {}
        for name, path in config.pipelines.items():
            spec = load_spec(path)
            check_indexes(spec)
            self.specs[name] = spec
        self.indexes: dict[str, Index] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.error: str | None = None  # why loading failed
        self.executor = ThreadPoolExecutor(
            max_workers=max(4, min(32, config.max_concurrency)), thread_name_prefix="rarx-serve"
        )
        self.admission = Admission(config.max_concurrency, config.max_queue, self._gauges)
        self._loading: asyncio.Task[None] | None = None
        self._ready = False
        self._searches: OrderedDict[SearchKey, Pipeline] = OrderedDict()
        self._searches_lock = threading.Lock()
        self._batchers: dict[Any, Batcher[Any, Any]] = {}

    # -- loading ---------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    def begin(self) -> None:
        """Start loading in the background (idempotent; needs a running event loop)."""
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(self._load())

    async def start(self) -> None:
        """Load everything and wait for it (idempotent); raises what loading raised."""
        self.begin()
        assert self._loading is not None
        await asyncio.shield(self._loading)
        if self.error is not None:
            raise ConfigError(self.error)

    async def _load(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._load_all)
        except RarxError as exc:  # says what is wrong and the fix: one line, no traceback
            self.error = f"loading failed: {exc}"
            log.error("rarx serve: loading failed: %s", exc)
            return
        except Exception as exc:  # noqa: BLE001 - reported by /readyz and every request
            self.error = f"loading failed: {type(exc).__name__}: {exc}"
            log.exception("rarx serve: loading failed")
            return
        self._ready = True
        self.metrics.ready.set(1)
        log.info("rarx serve: ready (%s)", ", ".join([*self.indexes, *self.pipelines]))

    def _load_all(self) -> None:
        from rarx.index.java import leave_signals_to_python

        if not leave_signals_to_python():
            log.warning(
                "rarx serve: Java started before the server, with its own signal handlers: "
                "SIGTERM will end the process without finishing requests in flight"
            )
        for name, path in self.config.indexes.items():
            index = self.resources.index(path, **self._load_options(name))
            index.search([Query("warm-up", "warm up")], 1)  # lazy parts (encoder, JVM) load now
            self.indexes[name] = index
        for name, spec in self.specs.items():
            self.pipelines[name] = Pipeline.from_spec(spec, self.resources)
        rerank = self.config.rerank
        if rerank is not None and rerank.method == "cross-encoder":
            self.resources.cross_encoder(llm_name(rerank.llm))
        elif rerank is not None:
            self.resources.llm(rerank.llm)

    def _load_options(self, name: str) -> dict[str, Any]:
        """The search engine setting, for the kinds that take one (BM25, SPLADE)."""
        engine = self.config.search_engine
        if engine == "auto" or not index_kind(self.manifests[name].kind).takes("engine"):
            return {}  # auto: each kind's own default
        return {"engine": engine}

    async def close(self) -> None:
        for batcher in list(self._batchers.values()):
            batcher.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- what the endpoints call ---------------------------------------------------------

    def check_search(self, names: tuple[str, ...], rerank: bool) -> None:
        unknown = [n for n in names if n not in self.config.indexes]
        if unknown:
            raise NotFound(
                f"no index named {unknown[0]!r}; this server has: "
                f"{', '.join(self.config.indexes) or '(none)'}"
            )
        if rerank and self.config.rerank is None:
            raise ConfigError(
                "this server has no reranker; start it with --rerank METHOD to allow 'rerank': true"
            )

    def check_pipeline(self, name: str) -> None:
        if name not in self.config.pipelines:
            raise NotFound(
                f"no pipeline named {name!r}; this server has: "
                f"{', '.join(self.config.pipelines) or '(none)'}"
            )

    async def search(
        self, names: tuple[str, ...], queries: list[Query], k: int, rerank: bool = False
    ) -> list[Ranking]:
        self.check_search(names, rerank)
        key: SearchKey = (names, k, rerank)
        return await self._batcher(key, "search:" + "+".join(names)).submit(queries)

    async def run_pipeline(self, name: str, queries: list[Query]) -> list[QueryState]:
        self.check_pipeline(name)
        return await self._batcher(name, "pipeline:" + name).submit(queries)

    # -- batching ------------------------------------------------------------------------

    def _batcher(self, key: Any, target: str) -> Batcher[Any, Any]:
        batcher = self._batchers.get(key)
        if batcher is None:
            if isinstance(key, tuple):
                run: Any = lambda queries: self._search_batch(key, queries)  # noqa: E731
            else:
                run = self.pipelines[key].run

            def forget(idle: Batcher[Any, Any]) -> None:  # idle: dropped, not a newer one
                if self._batchers.get(key) is idle:
                    del self._batchers[key]

            batcher = Batcher(
                run, self.executor, self.config.max_batch_size, self.config.max_wait_ms / 1000,
                on_batch=lambda n, q, s: self.metrics.batch(target, n, q, s), on_idle=forget,
            )  # fmt: skip
            self._batchers[key] = batcher
        return batcher

    def _search_batch(self, key: SearchKey, queries: list[Query]) -> list[Ranking]:
        k = key[1]
        states = self._search_pipeline(key).run(queries)
        return [s.ranking.top(k) if s.ranking is not None else Ranking(s.query.qid) for s in states]

    def _search_pipeline(self, key: SearchKey) -> Pipeline:
        with self._searches_lock:
            pipe = self._searches.get(key)
            if pipe is not None:
                self._searches.move_to_end(key)
                return pipe
        names, k, rerank = key
        options = SearchOptions(
            k=k, fusion_depth=self.config.fusion_depth, docs=True,
            rerank=self.config.rerank if rerank else None,
        )  # fmt: skip
        pipe = search_pipeline([self.indexes[n] for n in names], options, self.resources)
        with self._searches_lock:
            self._searches[key] = pipe
            while len(self._searches) > CACHED_SEARCHES:
                self._searches.popitem(last=False)
        return pipe

    def _gauges(self, active: int, waiting: int) -> None:
        self.metrics.in_flight.set(active)
        self.metrics.queued.set(waiting)

    # -- descriptions ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        indexes = [
            {"name": n, "kind": m.kind, "documents": m.documents, "model": m.model}
            for n, m in self.manifests.items()
        ]
        pipelines = [
            {"name": n, "stages": [s.kind for s in spec.stages]} for n, spec in self.specs.items()
        ]
        rerank = asdict(self.config.rerank) if self.config.rerank is not None else None
        return {"indexes": indexes, "pipelines": pipelines, "rerank": rerank}
