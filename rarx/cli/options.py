"""Options shared by several commands."""

from __future__ import annotations

import logging

import click


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
