"""The FastAPI app: ``create_app(config)`` returns an ASGI app to run with uvicorn
(``rarx serve``) or to mount in a service of your own::

    from fastapi import FastAPI
    from rarx.serve import ServeConfig, create_app

    search = create_app(ServeConfig(indexes={"sciq": "indexes/sciq-bm25"}))
    app = FastAPI(lifespan=search.router.lifespan_context)  # loads at start-up
    app.mount("/rarx", search)

A mounted app gets no lifespan events of its own; without the line above it loads on
its first request to ``/readyz`` or ``/v1/...`` (answering 503 until loaded).
"""

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from rarx import __version__
from rarx.errors import IndexCorruptError, RarxError
from rarx.pipeline.output import explain, state_to_dict
from rarx.pipeline.resources import Resources
from rarx.serve.batching import Overloaded
from rarx.serve.config import ServeConfig
from rarx.serve.metrics import REASON_KEY, MetricsMiddleware
from rarx.serve.schemas import (
    IndexesResponse,
    RunResponse,
    SearchResponse,
    ranking_json,
    request_models,
)
from rarx.serve.service import NotFound, Service
from rarx.types import Query

log = logging.getLogger(__name__)


class Refused(Exception):
    """An answer other than 200, with the reason it is counted under in /metrics."""

    def __init__(self, status: int, reason: str, detail: Any, retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.reason, self.detail, self.retry_after = (
            status, reason, detail, retry_after,
        )  # fmt: skip


def _refusal(request: Request, exc: Refused) -> JSONResponse:
    request.scope[REASON_KEY] = exc.reason
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"detail": exc.detail}, exc.status, headers=headers)


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    """pydantic's errors without the offending input (it may be large, or a secret):
    where (``loc``), what (``msg``) and the limit (``ctx``)."""
    out = []
    for e in exc.errors():
        item: dict[str, Any] = {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
                                "type": e.get("type", "")}  # fmt: skip
        if e.get("ctx"):
            item["ctx"] = {k: _plain(v) for k, v in e["ctx"].items()}
        out.append(item)
    return out


def _too_large(limit: int) -> str:
    return f"the request body is larger than the limit of {limit} bytes; send fewer queries"


class BodyLimit:
    """413 past ``max_bytes``: at once from Content-Length, else while the body is read
    (a chunked body is never read past the limit)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_bytes:
            scope[REASON_KEY] = "too_large"
            response = JSONResponse({"detail": _too_large(self.max_bytes)}, 413)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # handled by the app's handler below: a JSON 413
                raise HTTPException(413, _too_large(self.max_bytes))
            return message

        await self.app(scope, counted, send)


def create_app(config: ServeConfig, resources: Resources | None = None) -> FastAPI:
    """An app serving ``config``'s indexes and pipelines. ``resources`` sets the
    concurrency policy and LLM options (default: :class:`~rarx.pipeline.Serial`)."""
    service = Service(config, resources)
    models = request_models(config.limits)
    SearchRequest, RunRequest = models.search, models.run  # noqa: N806 - classes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.begin()  # in the background: /healthz answers while models load
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="rarx", version=__version__, lifespan=lifespan,
        description="Search named indexes and run named pipelines (see the README, 'Serving').",
    )  # fmt: skip
    app.state.rarx = service
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
        )  # fmt: skip
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)

    # -- errors ----------------------------------------------------------------------

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return _refusal(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        request.scope[REASON_KEY] = "invalid"
        return JSONResponse({"detail": _validation_detail(exc)}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("rarx serve: %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error; see the server log"}, 500)

    # -- security --------------------------------------------------------------------

    bearer = HTTPBearer(auto_error=False, description="The server's RARX_API_KEY.")
    expected = config.api_key.encode() if config.api_key else None

    async def authorized(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> None:
        if expected is None:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):  # constant time: no timing oracle
            raise Refused(401, "unauthorized", "missing or wrong API key; send "
                          "'Authorization: Bearer <RARX_API_KEY>'")  # fmt: skip

    guarded = [Depends(authorized)]

    # -- serving helpers -----------------------------------------------------------------

    async def serve(check: Any, call: Any) -> Any:
        """Check the names, wait for loading, then take a slot and answer within the
        timeout."""
        try:
            check()
        except NotFound as exc:
            raise Refused(404, "not_found", str(exc)) from None
        except RarxError as exc:
            raise Refused(400, "bad_request", str(exc)) from None
        if not service.ready:
            service.begin()
            status = service.error or "loading indexes and models"
            raise Refused(503, "not_ready", f"not ready: {status}", config.retry_after_s)
        try:
            async with asyncio.timeout(config.timeout_s):
                async with service.admission.slot():
                    return await call()
        except Overloaded as exc:
            raise Refused(503, "overloaded", f"server busy: {exc}; retry later",
                          config.retry_after_s) from None  # fmt: skip
        except TimeoutError:
            message = f"no answer within {config.timeout_s:g} s; retry later or send fewer queries"
            raise Refused(503, "timeout", message, config.retry_after_s) from None
        except IndexCorruptError as exc:  # the server's fault, not the request's
            log.error("rarx serve: %s", exc)
            raise Refused(500, "index_damaged", str(exc)) from None
        except RarxError as exc:
            raise Refused(400, "bad_request", str(exc)) from None

    # -- endpoints -----------------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process answers (it may still be loading; see /readyz)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Still loading"}})
    async def readyz() -> JSONResponse:
        """200 once every named index and pipeline is loaded, else 503."""
        if service.ready:
            return JSONResponse({"ready": True})
        service.begin()
        return JSONResponse({"ready": False, "error": service.error}, 503)

    @app.get("/v1/indexes", dependencies=guarded, response_model=IndexesResponse)
    async def list_indexes() -> dict[str, Any]:
        """What this server serves: its indexes, pipelines and reranker, by name."""
        return service.describe()

    @app.post("/v1/search", dependencies=guarded, response_model=SearchResponse)
    async def search(body: SearchRequest) -> JSONResponse:  # type: ignore[valid-type]
        """Search one index, or fuse several (``indexes`` + ``fusion``), for one query or
        a batch; ``rerank`` applies the reranker the server was started with."""
        pairs = body.pairs()  # type: ignore[attr-defined]
        queries = [Query(qid, text) for qid, text in pairs]
        names, k, rerank = body.names(), body.k, body.rerank  # type: ignore[attr-defined]
        rankings = await serve(
            lambda: service.check_search(names, rerank),
            lambda: service.search(names, queries, k, rerank),
        )
        return JSONResponse(
            {"rankings": [ranking_json(q.qid, r) for q, r in zip(queries, rankings, strict=True)]}
        )

    @app.post("/v1/pipelines/{name}/run", dependencies=guarded, response_model=RunResponse)
    async def run(name: str, body: RunRequest) -> JSONResponse:  # type: ignore[valid-type]
        """Run a named pipeline over one query or a batch: answers, rankings (with ``docs``,
        each hit's title and text), with ``context`` each query's context, and with
        ``explain`` its context, trace and a readable account."""
        queries = [Query(qid, text) for qid, text in body.pairs()]  # type: ignore[attr-defined]
        states = await serve(
            lambda: service.check_pipeline(name), lambda: service.run_pipeline(name, queries)
        )
        results = []
        for state in states:
            record = state_to_dict(state, body.hits)  # type: ignore[attr-defined]
            if body.docs and state.ranking is not None:  # type: ignore[attr-defined]
                for entry, doc in zip(record["ranking"], state.ranking.docs, strict=False):
                    if doc is not None:
                        entry.update(title=doc.title, text=doc.text)
            if body.explain:  # type: ignore[attr-defined]
                record["explanation"] = explain(state)
            else:
                if not body.context:  # type: ignore[attr-defined]
                    record.pop("context")
                record.pop("trace")
            results.append(record)
        return JSONResponse({"pipeline": name, "results": results})

    @app.get("/metrics", dependencies=guarded, response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format: requests, errors, latency and batch sizes."""
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)

    return app
