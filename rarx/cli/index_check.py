"""``rarx index check PATH``: verify an index's files against its build's record."""

from __future__ import annotations

from pathlib import Path

import click

from rarx.index.integrity import damaged


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--no-lucene", is_flag=True, help="Skip Lucene's CheckIndex (checksums only).")
def check(path: Path, no_lucene: bool) -> None:
    """Verify the index at PATH: every file its build wrote, by size and sha256; Lucene's
    own CheckIndex on its Lucene parts; that it opens. Prints a report; exits 1 naming
    the damaged files, 0 when none is (an index built before rarx recorded checksums
    is reported as one that cannot be verified).

    \b
    Example:
      rarx index check indexes/sciq-bm25
    """
    from rarx.index.check import check_index

    report = check_index(path, lucene=not no_lucene)
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        raise damaged(path, report.problems)
