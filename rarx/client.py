"""A Python client for ``rarx serve``, on httpx: :class:`Client` (sync) and
:class:`AsyncClient` (async), with the same methods::

    from rarx.client import Client

    with Client("http://127.0.0.1:8000") as rarx:
        ranking = rarx.search("What do plants need for photosynthesis?", index="sciq", k=5)
        results = rarx.run_batch("adaptive", ["Why is the sky blue?", "What is DNA?"])

Answers come back as rarx's types (a :class:`~rarx.types.Ranking` whose hits carry their
documents; a :class:`PipelineResult` per query). A refusal is a
:class:`~rarx.errors.ServerError` carrying the server's status and message. A 503 (loading,
busy, timed out) is retried after the server's ``Retry-After``, ``retries`` times. The API
key is ``api_key`` or the ``RARX_API_KEY`` environment variable, as for the server.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rarx.errors import ConfigError, ServerError, require
from rarx.types import Document, Query, Ranking

DEFAULT_URL = "http://127.0.0.1:8000"
BATCH_SIZE = 64  # queries per request: the server's default --max-queries
QueryInput = str | Query


@dataclass(frozen=True)
class PipelineResult:
    """One query through a served pipeline: its answer, ranking (hits carry their text),
    the context the stages wrote (gate decision, QA memory, ...) and, with ``explain``,
    the readable account."""

    qid: str
    query: str
    answer: Any
    error: str | None
    ranking: Ranking | None
    context: Mapping[str, Any] | None = None
    explanation: str | None = None


def as_queries(queries: QueryInput | Sequence[QueryInput]) -> list[Query]:
    """Queries from texts (qids ``q1``, ``q2``, ... by position) or :class:`Query` values."""
    items = [queries] if isinstance(queries, str | Query) else list(queries)
    out = [q if isinstance(q, Query) else Query(f"q{i}", q) for i, q in enumerate(items, 1)]
    if len({q.qid for q in out}) != len(out):
        raise ConfigError("queries must have unique qids; give Query values with distinct qids")
    return out


def _index_fields(index: str | Sequence[str], fusion: str) -> dict[str, Any]:
    if isinstance(index, str):
        return {"index": index}
    names = list(index)
    if not names:
        raise ConfigError("name at least one index the server serves (see Client.indexes())")
    return {"index": names[0]} if len(names) == 1 else {"indexes": names, "fusion": fusion}


def _chunks(queries: list[Query], size: int) -> Iterator[list[dict[str, str]]]:
    for start in range(0, len(queries), size):
        yield [{"qid": q.qid, "text": q.text} for q in queries[start : start + size]]


def _ranking(qid: str, hits: Sequence[Mapping[str, Any]]) -> Ranking:
    docs = [
        Document(h["docid"], h.get("text") or "", h.get("title") or "")
        if h.get("text") is not None else None
        for h in hits
    ]  # fmt: skip
    return Ranking.from_arrays(qid, [h["docid"] for h in hits], [h["score"] for h in hits], docs)


def _result(record: Mapping[str, Any]) -> PipelineResult:
    ranked = record.get("ranking")
    return PipelineResult(
        qid=record["qid"], query=record["query"], answer=record.get("answer"),
        error=record.get("error"),
        ranking=None if ranked is None else _ranking(record["qid"], ranked),
        context=record.get("context"), explanation=record.get("explanation"),
    )  # fmt: skip


def _detail_text(detail: Any) -> str:
    """The server's message; a 422's list of field errors as ``where: what (limit)``."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if not isinstance(item, Mapping):
                parts.append(str(item))
                continue
            where = ".".join(str(x) for x in item.get("loc", ()))
            ctx = f" ({item['ctx']})" if item.get("ctx") else ""
            parts.append(f"{where}: {item.get('msg', '')}{ctx}")
        return "; ".join(parts)
    return str(detail)


class _Base:
    """Settings and the pure parts of a call (bodies, answers, errors) both clients share."""

    def __init__(self, url: str, api_key: str | None, timeout: float, retries: int,
                 max_retry_wait: float, batch_size: int) -> None:  # fmt: skip
        self.httpx = require("httpx", "serve")
        if retries < 0 or timeout <= 0 or batch_size < 1 or max_retry_wait < 0:
            raise ConfigError(
                f"need retries >= 0, timeout > 0, batch_size >= 1 and max_retry_wait >= 0; got "
                f"{retries}, {timeout}, {batch_size}, {max_retry_wait}"
            )
        self.url = url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get("RARX_API_KEY") or None
        self.headers = {"authorization": f"Bearer {key}"} if key else {}
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.batch_size = batch_size

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}({self.url!r})"

    def _search_bodies(self, queries: list[Query], index: str | Sequence[str], k: int,
                       rerank: bool, fusion: str) -> list[dict[str, Any]]:  # fmt: skip
        fields = _index_fields(index, fusion)
        return [{**fields, "queries": chunk, "k": k, "rerank": rerank}
                for chunk in _chunks(queries, self.batch_size)]  # fmt: skip

    def _run_bodies(self, queries: list[Query], hits: int, explain: bool,
                    context: bool) -> list[dict[str, Any]]:  # fmt: skip
        return [{"queries": chunk, "hits": hits, "explain": explain, "docs": True,
                 "context": context} for chunk in _chunks(queries, self.batch_size)]  # fmt: skip

    def _unreachable(self, method: str, path: str, exc: Exception) -> ServerError:
        if isinstance(exc, self.httpx.TimeoutException):
            why = f"no answer within {self.timeout:g} s ({type(exc).__name__})"
        else:
            why = f"cannot reach it ({type(exc).__name__}: {exc})"
        return ServerError(
            f"rarx server {self.url}: {method} {path}: {why}; check the URL and that "
            "'rarx serve' runs there, or raise the client's timeout"
        )

    def _refused(self, method: str, path: str, response: Any) -> ServerError:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = response.text[:500]
        retry = response.headers.get("retry-after")
        return ServerError(
            f"rarx server {self.url}: {method} {path} answered {response.status_code}: "
            f"{_detail_text(detail)}",
            response.status_code, detail, float(retry) if retry else None,
        )  # fmt: skip

    def _wait(self, response: Any, attempt: int) -> float | None:
        """Seconds to wait before retrying ``response``, or None: not to retry."""
        if response.status_code != 503 or attempt >= self.retries:
            return None
        try:
            after = float(response.headers.get("retry-after", "1"))
        except ValueError:
            after = 1.0
        return min(max(after, 0.0), self.max_retry_wait)


class Client(_Base):
    """A synchronous client, safe to share between threads (httpx's connection pool)."""

    def __init__(
        self, url: str = DEFAULT_URL, *, api_key: str | None = None, timeout: float = 60.0,
        retries: int = 3, max_retry_wait: float = 30.0, batch_size: int = BATCH_SIZE,
        transport: Any = None,
    ) -> None:  # fmt: skip
        super().__init__(url, api_key, timeout, retries, max_retry_wait, batch_size)
        self._http = self.httpx.Client(base_url=self.url, headers=self.headers,
                                       timeout=timeout, transport=transport)  # fmt: skip

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, json=body)
            except self.httpx.TransportError as exc:
                raise self._unreachable(method, path, exc) from None
            if response.status_code == 200:
                return response.json()
            wait = self._wait(response, attempt)
            if wait is None:
                raise self._refused(method, path, response)
            time.sleep(wait)
            attempt += 1

    def search(self, query: QueryInput, *, index: str | Sequence[str], k: int = 10,
               rerank: bool = False, fusion: str = "rrf") -> Ranking:  # fmt: skip
        """One query: a ranking of ``k`` hits from ``index`` (a served name), or several
        fused; ``rerank`` applies the reranker the server was started with."""
        return self.search_batch([query], index=index, k=k, rerank=rerank, fusion=fusion)[0]

    def search_batch(self, queries: Sequence[QueryInput], *, index: str | Sequence[str],
                     k: int = 10, rerank: bool = False,
                     fusion: str = "rrf") -> list[Ranking]:  # fmt: skip
        """One ranking per query, in order (sent ``batch_size`` queries a request)."""
        out: list[Ranking] = []
        for body in self._search_bodies(as_queries(queries), index, k, rerank, fusion):
            answer = self._call("POST", "/v1/search", body)
            out.extend(_ranking(r["qid"], r["hits"]) for r in answer["rankings"])
        return out

    def run(self, pipeline: str, query: QueryInput, *, hits: int = 10, explain: bool = False,
            context: bool = True) -> PipelineResult:  # fmt: skip
        """One query through the served pipeline named ``pipeline``."""
        return self.run_batch(pipeline, [query], hits=hits, explain=explain, context=context)[0]

    def run_batch(self, pipeline: str, queries: Sequence[QueryInput], *, hits: int = 10,
                  explain: bool = False, context: bool = True) -> list[PipelineResult]:  # fmt: skip
        out: list[PipelineResult] = []
        path = f"/v1/pipelines/{pipeline}/run"
        for body in self._run_bodies(as_queries(queries), hits, explain, context):
            out.extend(_result(r) for r in self._call("POST", path, body)["results"])
        return out

    def indexes(self) -> dict[str, Any]:
        """What the server serves: ``indexes``, ``pipelines`` and ``rerank``, by name."""
        return dict(self._call("GET", "/v1/indexes"))

    def ready(self) -> bool:
        """Whether the server has loaded everything it serves (False while loading)."""
        try:
            return self._http.get("/readyz").status_code == 200
        except self.httpx.TransportError as exc:
            raise self._unreachable("GET", "/readyz", exc) from None

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.2) -> None:
        """Return once the server is ready; a ServerError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.ready():
                    return
            except ServerError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise ServerError(f"rarx server {self.url}: not ready after {timeout:g} s")
            time.sleep(interval)


class AsyncClient(_Base):
    """The same methods as :class:`Client`, awaited (``async with AsyncClient(...) as c``)."""

    def __init__(
        self, url: str = DEFAULT_URL, *, api_key: str | None = None, timeout: float = 60.0,
        retries: int = 3, max_retry_wait: float = 30.0, batch_size: int = BATCH_SIZE,
        transport: Any = None,
    ) -> None:  # fmt: skip
        super().__init__(url, api_key, timeout, retries, max_retry_wait, batch_size)
        self._http = self.httpx.AsyncClient(base_url=self.url, headers=self.headers,
                                            timeout=timeout, transport=transport)  # fmt: skip

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, json=body)
            except self.httpx.TransportError as exc:
                raise self._unreachable(method, path, exc) from None
            if response.status_code == 200:
                return response.json()
            wait = self._wait(response, attempt)
            if wait is None:
                raise self._refused(method, path, response)
            await asyncio.sleep(wait)
            attempt += 1

    async def search(self, query: QueryInput, *, index: str | Sequence[str], k: int = 10,
                     rerank: bool = False, fusion: str = "rrf") -> Ranking:  # fmt: skip
        found = await self.search_batch([query], index=index, k=k, rerank=rerank, fusion=fusion)
        return found[0]

    async def search_batch(self, queries: Sequence[QueryInput], *, index: str | Sequence[str],
                           k: int = 10, rerank: bool = False,
                           fusion: str = "rrf") -> list[Ranking]:  # fmt: skip
        bodies = self._search_bodies(as_queries(queries), index, k, rerank, fusion)
        answers = await asyncio.gather(*(self._call("POST", "/v1/search", b) for b in bodies))
        return [_ranking(r["qid"], r["hits"]) for a in answers for r in a["rankings"]]

    async def run(self, pipeline: str, query: QueryInput, *, hits: int = 10,
                  explain: bool = False, context: bool = True) -> PipelineResult:  # fmt: skip
        found = await self.run_batch(pipeline, [query], hits=hits, explain=explain,
                                     context=context)  # fmt: skip
        return found[0]

    async def run_batch(self, pipeline: str, queries: Sequence[QueryInput], *, hits: int = 10,
                        explain: bool = False,
                        context: bool = True) -> list[PipelineResult]:  # fmt: skip
        path = f"/v1/pipelines/{pipeline}/run"
        bodies = self._run_bodies(as_queries(queries), hits, explain, context)
        answers = await asyncio.gather(*(self._call("POST", path, b) for b in bodies))
        return [_result(r) for a in answers for r in a["results"]]

    async def indexes(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/v1/indexes"))

    async def ready(self) -> bool:
        try:
            return (await self._http.get("/readyz")).status_code == 200
        except self.httpx.TransportError as exc:
            raise self._unreachable("GET", "/readyz", exc) from None

    async def wait_ready(self, timeout: float = 60.0, interval: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if await self.ready():
                    return
            except ServerError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"rarx server {self.url}: not ready after {timeout:g} s")
            await asyncio.sleep(interval)
