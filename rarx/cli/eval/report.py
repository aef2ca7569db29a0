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
@click.option("--separate-files", is_flag=True,
              help="Keep each file's sections apart instead of merging sections of the same "
              "key (for files that measure the same systems differently).")  # fmt: skip
def report_cmd(results: tuple[Path, ...], out_dir: Path, title: str, alpha: float,
               separate_files: bool) -> None:  # fmt: skip
    """Tables and figures of results files as one Markdown and one HTML page, read from
    each file's "report" section (written by `rarx eval retrieval|mcr|qa|adaptive
    --results` and by every benchmark): per dataset, systems side by side, the file's 95%
    intervals, the chance level, significance marks where the file has paired tests."""
    from rarx.eval.report import build_report

    report = build_report(results, out_dir, title, alpha, separate_files)
    figures = ", ".join(p.name for p in report.figures)
    click.echo(f"wrote {report.markdown} and {report.html} ({figures})")
