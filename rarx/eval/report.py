"""Reports: one Markdown and one HTML page, with tables and figures, from the results
files that ``rarx eval retrieval|mcr|qa --results`` write (and the benchmark files of
the same shapes, ``baselines`` and ``mcr``).

Every figure is read into a flat list of :class:`Score` values (section, task, system,
with or without instructions, metric, value, p-value against the file's first system),
so the tables and plots never look at a file's layout. Per section there is one table
per metric (systems × tasks, the best value per task in bold, ``*`` where a paired test
says p < alpha) and one PNG (a panel per metric, tasks along x, systems side by side,
with-instruction bars hatched, ``*`` over significant bars; drawn by
:mod:`rarx.eval.report_figures`, which alone imports matplotlib).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from rarx.errors import InputError, RarxError
from rarx.io.atomic import atomic_write

SECTIONS = {
    "retrieval": "Retrieval",
    "mcr": "Multiple-choice retrieval (MCR)",
    "qa": "Question answering",
}
KINDS = ("retrieval", "mcr", "qa", "baselines")
QA_METRICS = ("EM", "F1")
INST = " +inst"  # how `rarx eval retrieval` names a system's with-instruction run


@dataclass(frozen=True)
class Score:
    """One figure of one system on one task."""

    section: str  # "retrieval", "mcr" or "qa"
    task: str
    system: str  # the system without its instruction variant
    instructions: bool | None  # None: the report has no with-instruction run of the system
    metric: str
    value: float
    p_value: float | None = None  # paired test against `baseline` on this task
    baseline: str = ""
    source: str = ""
    ci: tuple[float, float] | None = None  # 95% interval the file holds, drawn as error bars

    @property
    def label(self) -> str:
        if self.instructions is None:
            return self.system
        return f"{self.system} ({'w/' if self.instructions else 'w/o'} inst)"


@dataclass(frozen=True)
class Source:
    path: str
    kind: str
    created: str
    rarx: str
    about: str  # model or system and dataset, in words


@dataclass(frozen=True)
class Report:
    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    scores: tuple[Score, ...]


# --- reading -------------------------------------------------------------------------


def _number(value: Any, path: Path, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InputError(f"{where}: expected a number, found {value!r:.60}", path)
    return float(value)


def _need(obj: Any, key: str, path: Path, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise InputError(f"{where}: missing {key!r}; is this file from a rarx eval command?", path)
    return obj[key]


def _task_name(name: str) -> str:
    """A dataset's short name: a folder path or download spec gives its last part."""
    return Path(name.rstrip("/")).name or name


def _retrieval(task: str, systems: list, path: Path, where: str) -> list[Score]:
    """Systems of one dataset as ``rarx eval retrieval`` writes them; p-values are paired
    t-tests against the first system."""
    if not isinstance(systems, list) or not systems:
        raise InputError(f"{where}: 'systems' must be a non-empty list", path)
    baseline = str(_need(systems[0], "system", path, where))
    score = partial(Score, "retrieval", task, source=str(path))
    rows = []
    for i, s in enumerate(systems):
        at = f"{where}.systems[{i}]" if where else f"systems[{i}]"
        name = str(_need(s, "system", path, at))
        measures = _need(s, "measures", path, at)
        if not isinstance(measures, dict) or not measures:
            raise InputError(f"{at}: 'measures' must map measure names to numbers", path)
        p_values = s.get("p_value_vs_first") or {}
        intervals = s.get("ci95") or {}
        inst = INST in name or bool((s.get("settings") or {}).get("instruction"))  # else False
        system = name.replace(INST, "")
        for m, v in measures.items():
            value = _number(v, path, f"{at}.measures.{m}")
            p = p_values.get(m)
            ci = _interval(intervals.get(m), path, f"{at}.ci95.{m}")
            rows.append(score(system, inst, str(m), value, p, baseline if i else "", ci=ci))
    return rows


def _interval(value: Any, path: Path, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InputError(f"{where}: an interval must be [low, high], got {value!r}", path)
    low, high = (_number(v, path, where) for v in value)
    return low, high


def _mcr_accuracy(entry: dict, variant: str) -> Any:
    """Accuracy with/without instructions in the CLI's layout (``accuracy_with_instructions``)
    or the benchmark's (``with_instructions: {accuracy}``); None when not run."""
    flat = entry.get(f"accuracy_{variant}_instructions")
    if flat is not None:
        return flat
    nested = entry.get(f"{variant}_instructions")
    return nested.get("accuracy") if isinstance(nested, dict) else None


def _mcr_system(data: dict) -> str:
    settings = data.get("settings") or {}
    model = str(data.get("model") or settings.get("model") or "?")
    scorer = data.get("scorer") or settings.get("scorer")
    normalize = data.get("normalize") or settings.get("normalize")
    name = model if scorer in (None, "bi-encoder") else f"{model} {scorer}"
    return f"{name} ({normalize})" if normalize else name


def _mcr(data: dict, path: Path) -> list[Score]:
    files = _need(data, "files", path, "top level")
    if not isinstance(files, list) or not files:
        raise InputError("'files' must be a non-empty list", path)
    system = _mcr_system(data)
    rows = []
    for i, entry in enumerate(files):
        at = f"files[{i}]"
        task = Path(str(_need(entry, "file", path, at))).stem
        found = {v: _mcr_accuracy(entry, v) for v in ("without", "with")}
        if found["without"] is None and found["with"] is None:
            raise InputError(f"{at}: no accuracy (expected accuracy_without_instructions)", path)
        for variant, acc in found.items():
            if acc is not None:
                value = _number(acc, path, f"{at}.accuracy")
                rows.append(Score("mcr", task, system, variant == "with", "accuracy", value,
                                  source=str(path)))  # fmt: skip
    return rows


def _qa(data: dict, path: Path) -> list[Score]:
    dataset = _need(data, "dataset", path, "top level")
    task = _task_name(str(_need(dataset, "name", path, "dataset")))
    info = _need(data, "system", path, "top level")
    system = str(info.get("name") or info.get("pipeline") or "?")
    figures = _need(data, "figures", path, "top level")
    values = [_number(_need(figures, m, path, "figures"), path, f"figures.{m}") for m in QA_METRICS]
    return [Score("qa", task, system, None, m, v, source=str(path))
            for m, v in zip(QA_METRICS, values, strict=True)]  # fmt: skip


def _about(data: dict) -> str:
    kind = data.get("kind")
    if kind == "retrieval":
        d = data.get("dataset") or {}
        return f"{d.get('name')}: {d.get('queries')} queries, {d.get('documents')} documents"
    if kind == "baselines":
        return ", ".join(str(d.get("dataset")) for d in data.get("datasets") or [])
    if kind == "mcr":
        n = sum(int(f.get("questions") or 0) for f in data.get("files") or [])
        return f"{_mcr_system(data)}: {len(data.get('files') or [])} files, {n} questions"
    d, s = data.get("dataset") or {}, data.get("system") or {}
    return f"{s.get('name')} on {d.get('name')}: {d.get('queries')} queries"


def read_results(path: str | Path) -> tuple[list[Score], Source]:
    """The scores in one results file, or an error saying what the file lacks."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("results file not found", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a JSON file ({exc})", path) from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in KINDS:
        raise InputError(
            f"not a results file rarx can report (kind {kind!r}); expected the JSON that "
            "`rarx eval retrieval|mcr|qa --results FILE` writes (kind retrieval, mcr or qa) "
            "or benchmarks/results/baselines.json",
            path,
        )
    if kind == "retrieval":
        d = _need(data, "dataset", path, "top level")
        task = _task_name(str(_need(d, "name", path, "dataset")))
        scores = _retrieval(task, _need(data, "systems", path, "top level"), path, "")
    elif kind == "baselines":
        scores = []
        for i, d in enumerate(_need(data, "datasets", path, "top level")):
            task = str(_need(d, "dataset", path, f"datasets[{i}]"))
            scores += _retrieval(
                task, _need(d, "systems", path, f"datasets[{i}]"), path, f"datasets[{i}]"
            )
    elif kind == "mcr":
        scores = _mcr(data, path)
    else:
        scores = _qa(data, path)
    versions = data.get("versions") or {}
    source = Source(
        str(path), kind, str(data.get("created", "")), str(versions.get("rarx", "")), _about(data)
    )
    return scores, source


def _mark_variants(scores: list[Score]) -> list[Score]:
    """A system run only without instructions is shown plainly; one that also has a
    with-instruction run anywhere in the report keeps "w/o inst" on every task."""
    instructed = {(s.section, s.system) for s in scores if s.instructions}
    return [
        s if (s.section, s.system) in instructed else replace(s, instructions=None) for s in scores
    ]


def load_scores(paths: Sequence[str | Path]) -> tuple[list[Score], list[Source]]:
    """Scores of several files; the same figure twice is an error naming both files."""
    if not paths:
        raise RarxError("no results files given: pass one or more RESULTS.json")
    scores: list[Score] = []
    sources: list[Source] = []
    seen: dict[tuple, str] = {}
    for p in paths:
        rows, source = read_results(p)
        for s in rows:
            key = (s.section, s.task, s.system, s.instructions, s.metric)
            if key in seen and seen[key] != s.source:
                what = s.system + (INST if s.instructions else "")
                raise RarxError(
                    f"{seen[key]} and {s.source} both hold {s.metric} of {what} on "
                    f"{s.task}; report one of them"
                )
            seen[key] = s.source
        scores += rows
        sources.append(source)
    return _mark_variants(scores), sources


# --- tables ----------------------------------------------------------------------------


def ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class Table:
    section: str
    metric: str
    tasks: list[str]
    rows: list[tuple[str, list[Score | None]]]  # label, one score (or None) per task
    baselines: list[str]

    def best(self, col: int) -> float | None:
        """The column's highest value, where there are at least two to compare."""
        values = [cells[col].value for _, cells in self.rows if cells[col] is not None]
        return max(values) if len(values) > 1 else None

    def mean(self, cells: list[Score | None]) -> float | None:
        if len(cells) < 2 or any(c is None for c in cells):
            return None
        return sum(c.value for c in cells if c is not None) / len(cells)


def tables(scores: Sequence[Score]) -> list[Table]:
    """One table per section and metric: rows are systems (and their instruction
    variants) in the order first seen, columns are tasks."""
    out = []
    for section in SECTIONS:
        mine = [s for s in scores if s.section == section]
        for metric in ordered(s.metric for s in mine):
            cell = {(s.label, s.task): s for s in mine if s.metric == metric}
            tasks = ordered(t for _, t in cell)
            labels = ordered(lbl for lbl, _ in cell)
            rows = [(lbl, [cell.get((lbl, t)) for t in tasks]) for lbl in labels]
            baselines = ordered(c.baseline for c in cell.values() if c.baseline)
            out.append(Table(section, metric, tasks, rows, baselines))
    return out


def significant(s: Score | None, alpha: float) -> bool:
    return s is not None and s.p_value is not None and s.p_value < alpha


def _cells(t: Table, alpha: float, star: str = "*") -> list[tuple[str, list[tuple[str, bool]]]]:
    """Each row's formatted cells, with whether the cell is the best in its column."""
    best = [t.best(i) for i in range(len(t.tasks))]
    show_mean = any(t.mean(cells) is not None for _, cells in t.rows)
    rows = []
    for label, cells in t.rows:
        out = []
        for i, c in enumerate(cells):
            text = "–" if c is None else f"{c.value:.4f}" + (star if significant(c, alpha) else "")
            out.append((text, c is not None and c.value == best[i]))
        if show_mean:
            m = t.mean(cells)
            out.append(("–" if m is None else f"{m:.4f}", False))
        rows.append((label, out))
    return rows


def _header(t: Table) -> list[str]:
    show_mean = any(t.mean(cells) is not None for _, cells in t.rows)
    return ["system", *t.tasks, *(["mean"] if show_mean else [])]


def _note(t: Table, alpha: float) -> str:
    parts = []
    if t.baselines:
        against = t.baselines[0] if len(t.baselines) == 1 else "each task's first system"
        parts.append(f"\\* p < {alpha:g}, paired t-test against {against}.")
    elif t.section != "qa":
        parts.append("No paired tests in these results.")
    if len(t.rows) > 1:
        parts.append("Bold: best per task.")
    if any(c is not None and c.ci is not None for _, cells in t.rows for c in cells):
        parts.append("The figure's error bars are the files' 95% bootstrap intervals.")
    return " ".join(parts)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _markdown(
    title: str, sources: list[Source], ts: list[Table], figs: dict[str, Path], alpha: float
) -> str:
    lines = [
        f"# {title}",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `rarx eval report`.",
        "",
    ]
    for section, heading in SECTIONS.items():
        mine = [t for t in ts if t.section == section]
        if not mine:
            continue
        lines += [f"## {heading}", "", f"![{heading}]({figs[section].name})", ""]
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
    lines += ["## Sources", "", "| file | kind | created | rarx | what |", "|---|---|---|---|---|"]
    lines += [_md_row([s.path, s.kind, s.created, s.rarx, s.about]) for s in sources]
    return "\n".join(lines) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{padding:.25em .7em;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{border-bottom:2px solid #333}
tbody tr:nth-child(even){background:#f4f4f4}img{max-width:100%}caption{text-align:left;
font-weight:bold;padding:.3em 0}.note{color:#555;font-size:.9em}"""


def _html(
    title: str, sources: list[Source], ts: list[Table], figs: dict[str, Path], alpha: float
) -> str:
    e = html.escape
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{e(title)}</h1>",
        f"<p class='note'>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by "
        "<code>rarx eval report</code>.</p>",
    ]
    for section, heading in SECTIONS.items():
        mine = [t for t in ts if t.section == section]
        if not mine:
            continue
        out.append(f"<h2>{e(heading)}</h2><img src='{e(figs[section].name)}' alt='{e(heading)}'>")
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
        "<th>rarx</th><th>what</th></tr></thead><tbody>"
    )
    for s in sources:
        out.append(
            "<tr>"
            + "".join(f"<td>{e(v)}</td>" for v in (s.path, s.kind, s.created, s.rarx, s.about))
            + "</tr>"
        )
    out.append("</tbody></table></body></html>")
    return "\n".join(out) + "\n"


def build_report(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    title: str = "rarx evaluation report",
    alpha: float = 0.05,
) -> Report:
    """Read every results file (all are checked before anything is written), then write
    ``report.md``, ``report.html`` and one ``<section>.png`` per section into ``out_dir``."""
    from rarx.errors import require

    scores, sources = load_scores(paths)
    require("matplotlib", "eval")
    from rarx.eval.report_figures import draw_section

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ts = tables(scores)
    figs = {
        sec: draw_section(sec, scores, out / f"{sec}.png", alpha)
        for sec in SECTIONS
        if any(s.section == sec for s in scores)
    }
    md, page = out / "report.md", out / "report.html"
    with atomic_write(md) as f:
        f.write(_markdown(title, sources, ts, figs, alpha))
    with atomic_write(page) as f:
        f.write(_html(title, sources, ts, figs, alpha))
    return Report(md, page, tuple(figs.values()), tuple(scores))
