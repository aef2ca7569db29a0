"""Options shared by several commands."""

from __future__ import annotations

import click

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars or status lines.")
threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Worker threads."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
