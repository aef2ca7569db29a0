"""The one typed layout `rarx eval report` reads: a results file's ``"report"`` section.

Every results file (rarx's own ``--results`` envelopes and every benchmark's JSON)
carries, beside its own figures, one section of this shape::

    "report": {
      "schema": 1,
      "benchmark": "first_rarb",                 # what wrote the figures
      "about": "FIRST with qwen over MiniLM's top 20",   # one line, in words
      "settings": {"k": 20, "seed": 0},         # scalars worth showing beside the tables
      "sections": [{
        "key": "first-rarb", "title": "FIRST on RAR-b Full sets",
        "plot": "bars",                # bars | lines | histogram | table
        "note": "...", "average": false,         # average: a mean column over datasets
        "measurements": [{
          "system": "FIRST", "dataset": "piqa", "measure": "nDCG@10", "value": 0.41,
          "ci95": [0.37, 0.45], "n": 300, "chance": null,
          "p_value": 0.01, "baseline": "MiniLM", "instructions": null}]}]}

A section is one table per measure (systems x datasets) and, unless its plot is
``table``, one figure: ``bars`` puts datasets along x with systems side by side,
``lines`` joins each system's values over ordered datasets (sizes, client counts),
``histogram`` draws adjacent bars over ordered bins (a reranker's top pick per
identifier position: the datasets are the bins, the systems side by side in each).
``chance`` is the score of guessing (1/k for k-option multiple choice, the mean of 1/k
over items, always-yes for yes/no questions), drawn as a dashed line; ``ci95`` is the
95% interval the file holds, drawn as error bars. Nothing here is computed from
per-query data: a section only restates figures its file already holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rarx.errors import InputError

SCHEMA = 1
KEY = "report"  # where a results file holds its section
PLOTS = ("bars", "lines", "histogram", "table")


def _fail(where: str, message: str, path: str | Path | None, top: bool = True) -> InputError:
    """An error naming the field: ``report.sections[0].measurements[2].value: ...`` when
    read from a file (``top``); a writer's bad value names the dataclass field alone."""
    if not top:
        return InputError(f"{where}: {message}", path)
    return InputError(f"{KEY}.{where}: {message}" if where else f"{KEY}: {message}", path)


def _number(value: Any, where: str, path: str | Path | None, top: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, f"expected a finite number, found {value!r:.60}", path, top)
    return float(value)


def _text(value: Any, where: str, path: str | Path | None, empty: bool = False,
          top: bool = True) -> str:  # fmt: skip
    if not isinstance(value, str) or (not empty and not value.strip()):
        what = "a string" if empty else "a non-empty string"
        raise _fail(where, f"expected {what}, found {value!r:.60}", path, top)
    return value


def _keys(obj: Any, where: str, need: Iterable[str], allowed: Iterable[str],
          path: str | Path | None) -> dict:  # fmt: skip
    if not isinstance(obj, dict):
        raise _fail(where, f"expected an object, found {type(obj).__name__}", path)
    for k in need:
        if k not in obj:
            raise _fail(f"{where}.{k}" if where else k, "missing (required)", path)
    extra = sorted(set(obj) - set(allowed))
    if extra:
        raise _fail(where or "top level", f"unknown field(s) {extra}; expected some of "
                    f"{sorted(allowed)}", path)  # fmt: skip
    return obj


@dataclass(frozen=True)
class Measurement:
    """One figure: ``system`` on ``dataset`` (a set, file, or x value of a line plot)."""

    system: str
    dataset: str
    measure: str
    value: float
    ci95: tuple[float, float] | None = None
    n: int | None = None  # items the figure is over (questions, queries, windows, ...)
    chance: float | None = None  # what guessing scores on this measure and dataset
    p_value: float | None = None  # paired test against `baseline` on the same items
    baseline: str = ""
    instructions: bool | None = None  # None: the system has no with/without variants

    def __post_init__(self) -> None:
        # A writer's bad value fails here, before any file is written; a file's is caught
        # by `parse` first, with the field's full path.
        for name in ("system", "dataset", "measure"):
            _text(getattr(self, name), name, None, top=False)
        _number(self.value, "value", None, top=False)
        if self.ci95 is not None:
            _interval(self.ci95, "ci95", None, top=False)
        if self.n is not None and (isinstance(self.n, bool) or not isinstance(self.n, int)
                                   or self.n < 0):  # fmt: skip
            raise InputError(f"n: expected a count (int >= 0), found {self.n!r}")
        for name in ("chance", "p_value"):
            if getattr(self, name) is not None:
                _number(getattr(self, name), name, None, top=False)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"system": self.system, "dataset": self.dataset,
                               "measure": self.measure, "value": self.value}  # fmt: skip
        if self.ci95 is not None:
            out["ci95"] = list(self.ci95)
        for name in ("n", "chance", "p_value", "instructions"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.baseline:
            out["baseline"] = self.baseline
        return out


MEASUREMENT_FIELDS = ("system", "dataset", "measure", "value", "ci95", "n", "chance",
                      "p_value", "baseline", "instructions")  # fmt: skip


def _interval(value: Any, where: str, path: str | Path | None,
              top: bool = True) -> tuple[float, float]:  # fmt: skip
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _fail(where, f"an interval must be [low, high], got {value!r:.60}", path, top)
    low, high = (_number(v, where, path, top) for v in value)
    if low > high:
        raise _fail(where, f"an interval must be [low, high] with low <= high, got {value!r}",
                    path, top)  # fmt: skip
    return low, high


@dataclass(frozen=True)
class Section:
    """One table per measure and (unless ``plot`` is ``table``) one figure."""

    key: str  # short name: the figure's file name, and sections of the same key merge
    title: str
    measurements: tuple[Measurement, ...]
    plot: str = "bars"
    note: str = ""
    average: bool = False  # tables get a mean column over datasets

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.key or ""):
            raise _fail("key", f"expected letters, digits, '.', '_' or '-', found {self.key!r}",
                        None, top=False)  # fmt: skip
        _text(self.title, "title", None, top=False)
        if self.plot not in PLOTS:
            raise _fail("plot", f"expected one of {list(PLOTS)}, found {self.plot!r}", None,
                        top=False)  # fmt: skip
        if not self.measurements:
            raise _fail("measurements", f"section {self.key!r} has no measurements", None,
                        top=False)  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "title": self.title, "plot": self.plot}
        if self.note:
            out["note"] = self.note
        if self.average:
            out["average"] = True
        out["measurements"] = [m.as_json() for m in self.measurements]
        return out


SECTION_FIELDS = ("key", "title", "plot", "note", "average", "measurements")


@dataclass(frozen=True)
class Reportable:
    """A results file as the report reads it."""

    benchmark: str
    sections: tuple[Section, ...]
    about: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _text(self.benchmark, "benchmark", None, top=False)
        if not self.sections:
            raise _fail("sections", "no sections: a results file reports at least one table",
                        None, top=False)  # fmt: skip
        _settings(self.settings, None, top=False)
        keys = [s.key for s in self.sections]
        if len(set(keys)) != len(keys):
            raise _fail("sections", f"section keys repeat: {keys}", None, top=False)

    def as_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "benchmark": self.benchmark, "about": self.about,
                "settings": dict(self.settings),
                "sections": [s.as_json() for s in self.sections]}  # fmt: skip


def _settings(value: Any, path: str | Path | None, top: bool = True) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail("settings", f"expected an object, found {type(value).__name__}", path, top)
    for k, v in value.items():
        if v is not None and not isinstance(v, str | int | float | bool):
            raise _fail(f"settings.{k}", f"expected a scalar (text, number, true/false), "
                        f"found {type(v).__name__}", path, top)  # fmt: skip
    return dict(value)


def parse(obj: Any, path: str | Path | None = None) -> Reportable:
    """A ``"report"`` section read back, or an InputError naming the field that is wrong."""
    top = _keys(obj, "", ("schema", "benchmark", "sections"),
                ("schema", "benchmark", "about", "settings", "sections"), path)  # fmt: skip
    if top["schema"] != SCHEMA:
        raise _fail("schema", f"expected {SCHEMA}, found {top['schema']!r}; this rarx reads "
                    f"version {SCHEMA} only", path)  # fmt: skip
    sections = top["sections"]
    if not isinstance(sections, list) or not sections:
        raise _fail("sections", "expected a non-empty list of sections", path)
    parsed = []
    for i, s in enumerate(sections):
        at = f"sections[{i}]"
        s = _keys(s, at, ("key", "title", "measurements"), SECTION_FIELDS, path)
        ms = s["measurements"]
        if not isinstance(ms, list) or not ms:
            raise _fail(f"{at}.measurements", "expected a non-empty list of measurements", path)
        rows = tuple(_measurement(m, f"{at}.measurements[{j}]", path) for j, m in enumerate(ms))
        plot = s.get("plot", "bars")
        if plot not in PLOTS:
            raise _fail(f"{at}.plot", f"expected one of {list(PLOTS)}, found {plot!r}", path)
        if not isinstance(s.get("average", False), bool):
            raise _fail(f"{at}.average", f"expected true or false, found {s['average']!r}", path)
        key, title = _text(s["key"], f"{at}.key", path), _text(s["title"], f"{at}.title", path)
        note = _text(s.get("note", ""), f"{at}.note", path, empty=True)
        try:
            parsed.append(Section(key, title, rows, plot, note, s.get("average", False)))
        except InputError as exc:  # a rule across fields (the key's form, ...)
            raise InputError(f"{KEY}.{at}.{exc}", path) from None
    try:
        return Reportable(_text(top["benchmark"], "benchmark", path), tuple(parsed),
                          _text(top.get("about", ""), "about", path, empty=True),
                          _settings(top.get("settings", {}), path))  # fmt: skip
    except InputError as exc:
        if exc.path is not None:
            raise
        raise InputError(f"{KEY}.{exc}", path) from None


def _measurement(m: Any, at: str, path: str | Path | None) -> Measurement:
    m = _keys(m, at, ("system", "dataset", "measure", "value"), MEASUREMENT_FIELDS, path)
    n = m.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise _fail(f"{at}.n", f"expected a count (int >= 0), found {n!r}", path)
    inst = m.get("instructions")
    if inst is not None and not isinstance(inst, bool):
        raise _fail(f"{at}.instructions", f"expected true, false or null, found {inst!r}", path)
    opt = {k: _number(m[k], f"{at}.{k}", path) if m.get(k) is not None else None
           for k in ("chance", "p_value")}  # fmt: skip
    return Measurement(
        _text(m["system"], f"{at}.system", path),
        _text(m["dataset"], f"{at}.dataset", path),
        _text(m["measure"], f"{at}.measure", path),
        _number(m["value"], f"{at}.value", path),
        _interval(m["ci95"], f"{at}.ci95", path) if m.get("ci95") is not None else None,
        n, opt["chance"], opt["p_value"],
        _text(m.get("baseline", ""), f"{at}.baseline", path, empty=True), inst,
    )  # fmt: skip


# --- helpers the writers share ---------------------------------------------------------


def mc_chance(options: int | Sequence[int]) -> float:
    """Accuracy of guessing among ``k`` options, or the mean of 1/k over items whose
    option counts differ."""
    counts = [options] if isinstance(options, int) else list(options)
    if not counts or any(k < 1 for k in counts):
        raise ValueError(f"option counts must be >= 1, got {counts[:5]}")
    return sum(1 / k for k in counts) / len(counts)


def interval(value: Any) -> tuple[float, float] | None:
    """A file's interval as a pair, whatever sequence it was stored as; None if absent."""
    if value is None:
        return None
    low, high = value
    return float(low), float(high)


def scalars(settings: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The named settings (all when none are named) that are scalars, for the page's
    settings line; lists and objects stay in the file."""
    keys = names or tuple(settings)
    return {k: settings[k] for k in keys
            if k in settings and (settings[k] is None or isinstance(settings[k], str | int | float | bool))}  # fmt: skip  # noqa: E501
