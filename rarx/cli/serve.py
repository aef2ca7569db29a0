"""``rarx serve``: named indexes and pipelines over HTTP, run by uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rarx.cli.options import quiet_option, rerank_options
from rarx.errors import require

if TYPE_CHECKING:
    from rarx.stages.rerank import RerankParams

log = logging.getLogger("rarx.serve")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option(
    "--index",
    "indexes",
    multiple=True,
    metavar="NAME=PATH",
    help="An index to serve under NAME (repeatable).",
)
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    metavar="NAME=FILE",
    help="A pipeline file to serve under NAME (repeatable).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind (loopback by default; 0.0.0.0: every interface).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Queries of concurrent requests merged into one call (1: no batching).",
)
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="How long a request waits for others to join its batch.",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Requests served at once.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=0),
    default=128,
    show_default=True,
    help="Requests waiting for a slot; past it the answer is 503 with Retry-After.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a request may take (queueing included).",
)
@rerank_options(
    "Reranker applied to searches that ask for it ('rerank': true): FIRST, listwise (an "
    "LLM) or a cross-encoder, loaded once at start."
)
@click.option(
    "--max-k",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Largest k (and hits) a request may ask for.",
)
@click.option(
    "--max-queries",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Queries in one request.",
)
@click.option("--max-query-chars", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Allow browser requests from ORIGIN (repeatable); no CORS without it.",
)
@click.option(
    "--keep-alive",
    type=click.IntRange(min=1),
    default=75,
    show_default=True,
    help="Seconds an idle connection stays open; above a client's (or proxy's) own, so the "
    "server never closes a connection the client is about to reuse.",
)
@click.option(
    "--search-engine",
    type=click.Choice(["auto", "matrix", "lucene"]),
    default="auto",
    show_default=True,
    help="BM25/SPLADE indexes: search the score matrix beside the index (same rankings as "
    "Lucene, faster) or Lucene itself; auto: the matrix where it is exact.",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@quiet_option
def serve(
    indexes: tuple[str, ...], pipelines: tuple[str, ...], host: str, port: int,
    max_batch_size: int, max_wait_ms: float, max_concurrency: int, max_queue: int,
    timeout: float, rerank: RerankParams | None, max_k: int, max_queries: int,
    max_query_chars: int,
    max_body_bytes: int, cors_origins: tuple[str, ...], keep_alive: int, search_engine: str,
    access_log: bool, quiet: bool,
) -> None:  # fmt: skip
    """Serve indexes and pipelines over HTTP until SIGTERM or Ctrl-C.

    Requests name what is served by NAME only, never a path. With RARX_API_KEY set,
    /v1/* and /metrics need 'Authorization: Bearer <key>'. OpenAPI docs: /docs.

    \b
    Examples:
      rarx serve --index sciq=indexes/sciq-bm25 --index sciq-dense=indexes/sciq-minilm
      rarx serve --index sciq=indexes/sciq-bm25 --pipeline first=pipelines/bm25-first.yaml
      curl -s localhost:8000/v1/search -H 'content-type: application/json' \\
        -d '{"index": "sciq", "query": "What do plants need for photosynthesis?", "k": 3}'
    """
    for module in ("fastapi", "uvicorn", "prometheus_client"):
        require(module, "serve")
    import uvicorn

    from rarx.serve.app import create_app
    from rarx.serve.config import Limits, ServeConfig, parse_named

    config = ServeConfig(
        indexes={n: Path(p) for n, p in parse_named(indexes, "index").items()},
        pipelines={n: Path(p) for n, p in parse_named(pipelines, "pipeline").items()},
        rerank=rerank,
        max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
        max_concurrency=max_concurrency, max_queue=max_queue, timeout_s=timeout,
        cors_origins=cors_origins, search_engine=search_engine,
        limits=Limits(max_query_chars=max_query_chars, max_k=max_k, max_queries=max_queries,
                      max_body_bytes=max_body_bytes),
    )  # fmt: skip
    if not _loopback(host) and config.api_key is None:
        log.warning("listening on %s without an API key: anyone who can reach it may query; "
                    "set RARX_API_KEY", host)  # fmt: skip
    app = create_app(config)  # reads manifests and pipeline files: a wrong path fails here

    # uvicorn finishes in-flight requests on SIGTERM, then re-raises the signal; with
    # this handler in place the re-raised signal ends the command normally (exit 0).
    def stopped(signum: int, frame: Any) -> None:
        log.info("rarx serve: stopped")

    signal.signal(signal.SIGTERM, stopped)
    uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, lifespan="on", access_log=access_log,
            log_level="warning" if quiet else "info", server_header=False,
            timeout_graceful_shutdown=int(timeout) + 5, timeout_keep_alive=keep_alive,
        )
    ).run()  # fmt: skip
