"""Plain-text tables: the one table printer of the CLI and the benchmarks (JSON output is
the machine-readable form)."""

from __future__ import annotations

from collections.abc import Sequence


def fmt(value: object, places: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{places}f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[object]], places: int = 4) -> str:
    """Columns of figures (numbers or "-") are right-aligned, the rest left-aligned."""
    numeric = [
        all(isinstance(row[i], int | float) or row[i] == "-" for row in rows) and bool(rows)
        for i in range(len(header))
    ]
    cells = [list(header)] + [[fmt(c, places) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, r in enumerate(cells):
        parts = [
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
