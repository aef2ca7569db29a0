"""Prometheus metrics of one app, in a registry of its own (two apps in one process, as
in tests or a user's service that mounts two, never share or clash)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# The reason an error response is counted under, when the handler gave none.
REASONS = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
           413: "too_large", 422: "invalid", 500: "internal", 503: "unavailable"}  # fmt: skip
REASON_KEY = "rarx.error_reason"  # set in the ASGI scope by the handler that refused


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "rarx_http_requests", "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "rarx_http_errors", "Requests answered with an error status, by route and reason.",
            ["route", "reason"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "rarx_http_request_duration_seconds", "Time from request to response, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_queries = Histogram(
            "rarx_batch_queries", "Queries per call to an index or pipeline (the batch size).",
            ["target"], buckets=SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_requests = Histogram(
            "rarx_batch_requests", "Requests merged into one call to an index or pipeline.",
            ["target"], buckets=SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "rarx_batch_duration_seconds", "Time of one batched call, by target.",
            ["target"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("rarx_requests_in_flight", "Requests holding a slot.", registry=r)
        self.queued = Gauge("rarx_requests_queued", "Requests waiting for a slot.", registry=r)
        self.ready = Gauge("rarx_ready", "1 once every index and pipeline is loaded.", registry=r)

    def batch(self, target: str, requests: int, queries: int, seconds: float) -> None:
        self.batch_requests.labels(target).observe(requests)
        self.batch_queries.labels(target).observe(queries)
        self.batch_seconds.labels(target).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def route_of(scope: dict[str, Any]) -> str:
    """The route template (``/v1/pipelines/{name}/run``), so labels stay few."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "other"


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: nothing buffered)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless a response starts

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = route_of(scope)
            m = self.metrics
            m.requests.labels(route, scope.get("method", ""), str(status)).inc()
            m.latency.labels(route).observe(time.perf_counter() - start)
            if status >= 400:
                reason = scope.get(REASON_KEY) or REASONS.get(status, str(status))
                m.errors.labels(route, reason).inc()
