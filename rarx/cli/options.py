"""Options shared by several commands."""

from __future__ import annotations

import logging
from typing import Any

import click

from rarx.errors import ConfigError


def _quiet(ctx: click.Context, param: click.Parameter, quiet: bool) -> bool:
    # rarx's log messages (status lines from the library) follow --quiet; warnings remain.
    logging.getLogger("rarx").setLevel(logging.WARNING if quiet else logging.INFO)
    return quiet


quiet_option = click.option(
    "--quiet", "-q", is_flag=True, callback=_quiet, help="No progress bars or status lines."
)
threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Worker threads."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def engine_options(f: Any) -> Any:
    """``--engine local|ray``, ``--workers`` and ``--ray-address``; the command turns
    them into an engine with :func:`ray_engine`."""
    f = click.option(
        "--ray-address", metavar="ADDRESS", default=None,
        help="With --engine ray: join this Ray cluster (e.g. HEAD_IP:6379) instead of "
        "starting Ray on this machine.",
    )(f)  # fmt: skip
    f = click.option(
        "--workers", type=click.IntRange(min=1), default=None,
        help="With --engine ray: workers (each loads the model or pipeline once) "
        "[default: one per GPU, else one per 4 cores].",
    )(f)  # fmt: skip
    f = click.option(
        "--engine", "engine", type=click.Choice(["local", "ray"]), default="local",
        show_default=True,
        help="Run in this process, or on Ray (same results; needs 'rarx[ray]').",
    )(f)  # fmt: skip
    return f


def ray_engine(engine: str, workers: int | None, ray_address: str | None) -> Any:
    """The RayEngine for ``--engine ray`` (None for local); Ray flags without it are errors."""
    if engine == "local":
        if workers is not None or ray_address is not None:
            raise ConfigError("--workers and --ray-address apply to --engine ray; add it")
        return None
    from rarx.distributed.cluster import RayEngine

    return RayEngine(workers=workers, address=ray_address)


def rerank_option(help: str) -> Any:
    """``--rerank METHOD``: the reranker registry's names (:data:`rarx.rerank.METHODS`),
    the same for every command that reranks."""
    from rarx.rerank import METHODS

    return click.option("--rerank", type=click.Choice(list(METHODS)), help=help)


def warn(messages: list[str]) -> None:
    """Warnings on stderr, one a line."""
    for m in messages:
        click.echo(f"rarx: warning: {m}", err=True)
