"""Reports: one Markdown and one HTML page, with tables and figures, from results files.

A results file is read through its ``"report"`` section only
(:mod:`rarx.eval.report_schema`; rarx's own envelopes written before sections existed
get theirs from :mod:`rarx.eval.report_kinds`), flattened into :class:`Score` values
(section, dataset, system, with or without instructions, measure, value, interval, n,
chance, p-value against a baseline), so the tables and plots never look at a file's own
layout. Sections of the same key merge across files. Per section there is one table per
measure (systems x datasets, the best value per dataset in bold where higher is better,
``*`` where a paired test says p < alpha, a chance row where there is one) and, unless the
section is a table only, one PNG drawn by :mod:`rarx.eval.report_figures` (which alone
imports matplotlib): a panel per measure, error bars from the file's intervals, the chance
level as a dashed line.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from rarx.errors import InputError, RarxError
from rarx.eval.report_schema import Reportable
from rarx.io.atomic import atomic_write

INST = " +inst"


@dataclass(frozen=True)
class Score:
    """One figure of one system on one dataset, in one section."""

    section: str  # the section's key
    task: str  # the dataset (or x value of a line plot)
    system: str  # the system without its instruction variant
    instructions: bool | None  # None: the report has no with-instruction run of the system
    metric: str
    value: float
    p_value: float | None = None  # paired test against `baseline` on this task
    baseline: str = ""
    source: str = ""
    ci: tuple[float, float] | None = None  # 95% interval the file holds, drawn as error bars
    n: int | None = None
    chance: float | None = None  # drawn as a dashed line

    @property
    def label(self) -> str:
        if self.instructions is None:
            return self.system
        return f"{self.system} ({'w/' if self.instructions else 'w/o'} inst)"


@dataclass(frozen=True)
class SectionInfo:
    key: str
    title: str
    plot: str  # bars | lines | histogram | table
    note: str
    average: bool


@dataclass(frozen=True)
class Source:
    path: str
    kind: str
    created: str
    rarx: str
    about: str  # model or system and dataset, in words
    settings: str = ""


@dataclass(frozen=True)
class Report:
    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    scores: tuple[Score, ...]


# --- reading -------------------------------------------------------------------------


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def read_file(path: str | Path) -> tuple[Reportable, Source]:
    """One results file's report section, checked, and where it came from."""
    from rarx.eval.report_kinds import reportable_of

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("results file not found", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a JSON file ({exc})", path) from None
    rep = reportable_of(data, path)
    versions = data.get("versions") or {}
    created = data.get("created") or data.get("date") or ""
    kind = str(data.get("kind") or data.get("benchmark") or rep.benchmark)
    source = Source(str(path), kind, str(created), str(versions.get("rarx") or ""), rep.about,
                    _settings_text(dict(rep.settings)))  # fmt: skip
    return rep, source


def scores_of(rep: Reportable, source: str = "") -> list[Score]:
    return [Score(sec.key, m.dataset, m.system, m.instructions, m.measure, m.value, m.p_value,
                  m.baseline, source, m.ci95, m.n, m.chance)
            for sec in rep.sections for m in sec.measurements]  # fmt: skip


def read_results(path: str | Path) -> tuple[list[Score], Source]:
    """The scores in one results file, or an error saying what the file lacks."""
    rep, source = read_file(path)
    return scores_of(rep, source.path), source


def _mark_variants(scores: list[Score]) -> list[Score]:
    """A system run only without instructions is shown plainly; one that also has a
    with-instruction run anywhere in the report keeps "w/o inst" on every task."""
    instructed = {(s.section, s.system) for s in scores if s.instructions}
    return [
        s if (s.section, s.system) in instructed else replace(s, instructions=None) for s in scores
    ]


def load_report(
    paths: Sequence[str | Path], separate: bool = False
) -> tuple[list[Score], list[Source], dict[str, SectionInfo]]:
    """Scores of several files and their sections: sections of the same key merge (the
    first file's title), unless ``separate`` keeps each file's apart (keys and titles
    then name the file). A figure found again with the same value and n (a baseline
    several files restate) is kept once; the same figure with another value in two
    files is an error naming both."""
    if not paths:
        raise RarxError("no results files given: pass one or more RESULTS.json")
    scores: list[Score] = []
    sources: list[Source] = []
    sections: dict[str, SectionInfo] = {}
    seen: dict[tuple, Score] = {}
    for p in paths:
        rep, source = read_file(p)
        if separate:
            stem = Path(p).stem
            rep = replace(rep, sections=tuple(
                replace(sec, key=f"{stem}.{sec.key}", title=f"{sec.title} ({Path(p).name})")
                for sec in rep.sections))  # fmt: skip
        for sec in rep.sections:
            sections.setdefault(sec.key, SectionInfo(sec.key, sec.title, sec.plot, sec.note,
                                                     sec.average))  # fmt: skip
        for s in scores_of(rep, source.path):
            key = (s.section, s.task, s.system, s.instructions, s.metric)
            if key in seen:
                first = seen[key]
                if (first.value, first.n) == (s.value, s.n) or first.source == s.source:
                    continue
                what = s.system + (INST if s.instructions else "")
                raise RarxError(
                    f"{first.source} and {s.source} both hold {s.metric} of {what} on "
                    f"{s.task} ({first.value:.4g} and {s.value:.4g}); report one of them, or "
                    "pass --separate-files to keep each file's sections apart"
                )
            seen[key] = s
            scores.append(s)
        sources.append(source)
    return _mark_variants(scores), sources, sections


def load_scores(paths: Sequence[str | Path]) -> tuple[list[Score], list[Source]]:
    scores, sources, _ = load_report(paths)
    return scores, sources


# --- tables ----------------------------------------------------------------------------

# Measures where less is better (times, sizes, losses, errors): no "best" in bold.
LOWER_IS_BETTER = re.compile(
    r"(?i)(second|latency|_ms\b|\bms\b|\bms/|\bs/|_s\b|\bs\)|\bmb\b|_mb\b|bytes|loss|error|"
    r"lost|p50|p95|p99|abs_.*diff|passes|rss|cost)"
)


H = TypeVar("H", bound=Hashable)


def ordered(values: Iterable[H]) -> list[H]:
    """The distinct values, in the order they first come."""
    return list(dict.fromkeys(values))


def higher_is_better(metric: str) -> bool:
    return not LOWER_IS_BETTER.search(metric)


@dataclass(frozen=True)
class Table:
    section: str
    metric: str
    tasks: list[str]
    rows: list[tuple[str, list[Score | None]]]  # label, one score (or None) per task
    baselines: list[str]
    average: bool = False

    def best(self, col: int) -> float | None:
        """The column's highest value, where there are at least two to compare and more
        is better."""
        values = [c.value for _, cells in self.rows if (c := cells[col]) is not None]
        return max(values) if len(values) > 1 and higher_is_better(self.metric) else None

    def mean(self, cells: list[Score | None]) -> float | None:
        if not self.average or len(cells) < 2 or any(c is None for c in cells):
            return None
        return sum(c.value for c in cells if c is not None) / len(cells)

    def column(self, col: int, field: str) -> str:
        """The column's chance level or n: one value, a range where cells differ, "–"."""
        values = sorted({v for _, cells in self.rows
                         if (c := cells[col]) is not None and (v := getattr(c, field)) is not None})  # fmt: skip  # noqa: E501
        if not values:
            return "–"
        show = (lambda v: str(v)) if field == "n" else (lambda v: f"{v:.4f}")  # noqa: E731
        return show(values[0]) if len(values) == 1 else f"{show(values[0])}–{show(values[-1])}"

    def has(self, field: str) -> bool:
        return any(c is not None and getattr(c, field) is not None
                   for _, cells in self.rows for c in cells)  # fmt: skip


def tables(scores: Sequence[Score], sections: dict[str, SectionInfo] | None = None) -> list[Table]:
    """One table per section and metric: rows are systems (and their instruction
    variants) in the order first seen, columns are tasks."""
    out = []
    for section in ordered(s.section for s in scores):
        mine = [s for s in scores if s.section == section]
        average = sections[section].average if sections else True
        for metric in ordered(s.metric for s in mine):
            cell = {(s.label, s.task): s for s in mine if s.metric == metric}
            tasks = ordered(t for _, t in cell)
            labels = ordered(lbl for lbl, _ in cell)
            rows = [(lbl, [cell.get((lbl, t)) for t in tasks]) for lbl in labels]
            baselines = ordered(c.baseline for c in cell.values() if c.baseline)
            out.append(Table(section, metric, tasks, rows, baselines, average))
    return out


def significant(s: Score | None, alpha: float) -> bool:
    return s is not None and s.p_value is not None and s.p_value < alpha


def _fmt(v: float, counts: bool = False) -> str:
    """Four decimals for scores; fewer significant digits lost for large figures; whole
    numbers for ``counts``."""
    return f"{v:.4f}" if abs(v) < 1000 and not counts else f"{v:,.0f}"


def _counts(t: Table) -> bool:
    """A table of counts (top picks per position, windows): every value whole, some
    above 1 (a table of 0/1 scores stays a table of scores)."""
    values = [c.value for _, cells in t.rows for c in cells if c is not None]
    return bool(values) and max(values) > 1 and all(float(v).is_integer() for v in values)


def _cells(t: Table, alpha: float, star: str = "*") -> list[tuple[str, list[tuple[str, bool]]]]:
    """Each row's formatted cells, with whether the cell is the best in its column; then
    the chance and n rows where the table has them."""
    best = [t.best(i) for i in range(len(t.tasks))]
    show_mean = any(t.mean(cells) is not None for _, cells in t.rows)
    whole = _counts(t)
    rows = []
    for label, cells in t.rows:
        out = []
        for i, c in enumerate(cells):
            mark = star if significant(c, alpha) else ""
            text = "–" if c is None else _fmt(c.value, whole) + mark
            out.append((text, c is not None and c.value == best[i]))
        if show_mean:
            m = t.mean(cells)
            out.append(("–" if m is None else _fmt(m), False))
        rows.append((label, out))
    for field, label in (("chance", "chance"), ("n", "n")):
        if t.has(field):
            extra = [(t.column(i, field), False) for i in range(len(t.tasks))]
            rows.append((f"({label})", extra + ([("", False)] if show_mean else [])))
    return rows


def _header(t: Table) -> list[str]:
    show_mean = any(t.mean(cells) is not None for _, cells in t.rows)
    return ["system", *t.tasks, *(["mean"] if show_mean else [])]


def _note(t: Table, alpha: float) -> str:
    parts = []
    if t.baselines:
        against = t.baselines[0] if len(t.baselines) == 1 else "each task's first system"
        parts.append(f"\\* p < {alpha:g}, paired test against {against}.")
    if len(t.rows) > 1 and higher_is_better(t.metric):
        parts.append("Bold: best per column.")
    if t.has("chance"):
        parts.append("(chance): the score of guessing, the figure's dashed line.")
    if any(c is not None and c.ci is not None for _, cells in t.rows for c in cells):
        parts.append("The figure's error bars are the files' 95% intervals.")
    return " ".join(parts)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _markdown(title: str, sources: list[Source], ts: list[Table], figs: dict[str, Path],
              sections: dict[str, SectionInfo], alpha: float) -> str:  # fmt: skip
    lines = [
        f"# {title}",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `rarx eval report`.",
        "",
    ]
    for key, info in sections.items():
        mine = [t for t in ts if t.section == key]
        if not mine:
            continue
        lines += [f"## {info.title}", ""]
        if key in figs:
            lines += [f"![{info.title}]({figs[key].name})", ""]
        if info.note:
            lines += [info.note, ""]
        for t in mine:
            head = _header(t)
            lines += [
                f"**{t.metric}**",
                "",
                _md_row(head),
                "|---" + "|---:" * (len(head) - 1) + "|",
            ]
            for label, cells in _cells(t, alpha, star="\\*"):
                shown = [f"**{c}**" if best else c for c, best in cells]
                lines.append(_md_row([label, *shown]))
            note = _note(t, alpha)
            lines += ["", note, ""] if note else [""]
    lines += ["## Sources", "", "| file | kind | created | rarx | what | settings |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [_md_row([s.path, s.kind, s.created, s.rarx, s.about, s.settings]) for s in sources]
    return "\n".join(lines) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{padding:.25em .7em;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{border-bottom:2px solid #333}
tbody tr:nth-child(even){background:#f4f4f4}img{max-width:100%}caption{text-align:left;
font-weight:bold;padding:.3em 0}.note{color:#555;font-size:.9em}"""


def _html(title: str, sources: list[Source], ts: list[Table], figs: dict[str, Path],
          sections: dict[str, SectionInfo], alpha: float) -> str:  # fmt: skip
    e = html.escape
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{e(title)}</h1>",
        f"<p class='note'>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by "
        "<code>rarx eval report</code>.</p>",
    ]
    for key, info in sections.items():
        mine = [t for t in ts if t.section == key]
        if not mine:
            continue
        out.append(f"<h2>{e(info.title)}</h2>")
        if key in figs:
            out.append(f"<img src='{e(figs[key].name)}' alt='{e(info.title)}'>")
        if info.note:
            out.append(f"<p class='note'>{e(info.note)}</p>")
        for t in mine:
            out.append(
                f"<table><caption>{e(t.metric)}</caption><thead><tr>"
                + "".join(f"<th>{e(h)}</th>" for h in _header(t))
                + "</tr></thead><tbody>"
            )
            for label, cells in _cells(t, alpha):
                tds = "".join(
                    f"<td>{'<b>' + e(c) + '</b>' if best else e(c)}</td>" for c, best in cells
                )
                out.append(f"<tr><td>{e(label)}</td>{tds}</tr>")
            out.append("</tbody></table>")
            note = _note(t, alpha).replace("\\*", "*")
            if note:
                out.append(f"<p class='note'>{e(note)}</p>")
    out.append(
        "<h2>Sources</h2><table><thead><tr><th>file</th><th>kind</th><th>created</th>"
        "<th>rarx</th><th>what</th><th>settings</th></tr></thead><tbody>"
    )
    for s in sources:
        out.append(
            "<tr>"
            + "".join(f"<td>{e(v)}</td>"
                      for v in (s.path, s.kind, s.created, s.rarx, s.about, s.settings))
            + "</tr>"
        )  # fmt: skip
    out.append("</tbody></table></body></html>")
    return "\n".join(out) + "\n"


def build_report(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    title: str = "rarx evaluation report",
    alpha: float = 0.05,
    separate: bool = False,
) -> Report:
    """Read every results file (all are checked before anything is written), then write
    ``report.md``, ``report.html`` and one ``<section key>.png`` per plotted section into
    ``out_dir`` (``separate``: see :func:`load_report`)."""
    from rarx.errors import require

    scores, sources, sections = load_report(paths, separate)
    require("matplotlib", "eval")
    from rarx.eval.report_figures import draw_section

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ts = tables(scores, sections)
    figs = {
        key: draw_section(info, scores, out / f"{key}.png", alpha)
        for key, info in sections.items()
        if info.plot != "table" and any(s.section == key for s in scores)
    }
    md, page = out / "report.md", out / "report.html"
    with atomic_write(md) as f:
        f.write(_markdown(title, sources, ts, figs, sections, alpha))
    with atomic_write(page) as f:
        f.write(_html(title, sources, ts, figs, sections, alpha))
    return Report(md, page, tuple(figs.values()), tuple(scores))
