"""``rarx eval report``: results files as one report."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for report.md, report.html and the figures (PNG).")  # fmt: skip
@click.option("--title", default="rarx evaluation report", show_default=True)
@click.option("--alpha", default=0.05, show_default=True, help="Significance level for marks.")
def report_cmd(results: tuple[Path, ...], out_dir: Path, title: str, alpha: float) -> None:
    """Tables and figures of results files (`rarx eval retrieval|mcr|qa --results`) as one
    Markdown and one HTML page: per task, systems side by side, with and without
    instructions, significance marks where the results carry paired tests."""
    from rarx.eval.report import build_report

    report = build_report(results, out_dir, title, alpha)
    figures = ", ".join(p.name for p in report.figures)
    click.echo(f"wrote {report.markdown} and {report.html} ({figures})")
