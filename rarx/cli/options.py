"""Options shared by several commands."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from rarx.errors import ConfigError

if TYPE_CHECKING:
    from rarx.distributed.cluster import RayEngine


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


def ray_engine(engine: str, workers: int | None, ray_address: str | None) -> RayEngine | None:
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


# FIRST's and listwise's own settings: (flag, RerankParams field, its default); given
# without --rerank they are an error, not silently dropped.
_LLM_RERANK_FLAGS = (("--rerank-instruction", "instruction", ""), ("--rerank-orders", "orders", 1),
                     ("--rerank-calibrate", "calibrate", "none"))  # fmt: skip


def rerank_options(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--rerank METHOD`` and every ``--rerank-*`` setting (model, k, window, stride, and
    FIRST's instruction, candidate orders and calibration), defined once for every command
    that reranks (``rarx search``, ``rarx serve``). The command receives them as one
    ``rerank`` argument: a :class:`~rarx.stages.rerank.RerankParams`, None without
    ``--rerank``."""
    from rarx.rerank.listwise import CALIBRATIONS

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def command(*args: Any, **kw: Any) -> Any:
            from rarx.stages.rerank import RerankParams

            method = kw.pop("rerank")
            given = {name: kw.pop(name) for name in list(kw) if name.startswith("rerank_")}
            if method is None:
                stray = [flag for flag, field, default in _LLM_RERANK_FLAGS
                         if given[f"rerank_{field}"] != default]  # fmt: skip
                if stray:
                    raise click.UsageError(f"{', '.join(stray)} apply to a reranker; add "
                                           "--rerank first (or listwise)")  # fmt: skip
                return f(*args, rerank=None, **kw)
            params = RerankParams(
                method, given["rerank_llm"], given["rerank_k"], given["rerank_window"],
                given["rerank_stride"], instruction=given["rerank_instruction"],
                orders=given["rerank_orders"], calibrate=given["rerank_calibrate"],
            )  # fmt: skip
            return f(*args, rerank=params, **kw)

        options = [
            rerank_option(help),
            click.option("--rerank-llm", default="smollm2-135m", show_default=True,
                         help="LLM for first/listwise; model name or path for cross-encoder."),
            click.option("--rerank-k", type=click.IntRange(min=1), default=20, show_default=True,
                         help="How many top hits to rerank."),
            click.option("--rerank-window", type=click.IntRange(min=2), default=20,
                         show_default=True, help="Passages per LLM window."),
            click.option("--rerank-stride", type=click.IntRange(min=1), default=10,
                         show_default=True, help="Step between sliding windows."),
            click.option("--rerank-instruction", default="",
                         help="The task for first/listwise, opening their prompt (e.g. RAR-b's "
                         "'Retrieve the answer to the question.')."),
            click.option("--rerank-orders", type=click.IntRange(min=1), default=1,
                         show_default=True,
                         help="FIRST: score each window in this many candidate orders and "
                         "combine (position-bias remedy; this many times the forward passes)."),
            click.option("--rerank-calibrate", type=click.Choice(list(CALIBRATIONS)),
                         default="none", show_default=True,
                         help="FIRST: subtract the identifiers' prior, read from a content-free "
                         "window (one extra forward pass per window size; 'query': per query "
                         "and window size)."),
        ]  # fmt: skip
        for option in reversed(options):  # --help lists them in this order
            command = option(command)
        return command

    return decorate


def warn(messages: list[str]) -> None:
    """Warnings on stderr, one a line."""
    for m in messages:
        click.echo(f"rarx: warning: {m}", err=True)
