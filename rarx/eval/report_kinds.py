"""The report sections of rarx's own results envelopes (``rarx eval
retrieval|mcr|qa|adaptive --results``): the functions their writers call to add the
``"report"`` section, and :func:`reportable_of`, which reads any results file's section
(an envelope written before sections existed gets it from the same functions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rarx.errors import InputError
from rarx.eval.report_schema import KEY, Measurement, Reportable, Section, interval, parse

INST = " +inst"  # how `rarx eval retrieval` names a system's with-instruction run
QA_METRICS = ("EM", "F1")
TITLES = {
    "retrieval": "Retrieval",
    "mcr": "Multiple-choice retrieval (MCR)",
    "qa": "Question answering",
}


def _need(obj: Any, key: str, where: str, path: str | Path | None) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise InputError(f"{where}: missing {key!r}; is this file from a rarx eval command?", path)
    return obj[key]


def task_name(name: str) -> str:
    """A dataset's short name: a folder path or download spec gives its last part."""
    return Path(name.rstrip("/")).name or name


def retrieval_measurements(task: str, systems: Sequence[Mapping], where: str = "",
                           path: str | Path | None = None) -> list[Measurement]:  # fmt: skip
    """Systems of one dataset as ``rarx eval retrieval`` writes them (and benchmarks/
    baselines.py): p-values are paired t-tests against the first system."""
    if not isinstance(systems, list) or not systems:
        raise InputError(f"{where or 'top level'}: 'systems' must be a non-empty list", path)
    baseline = str(_need(systems[0], "system", f"{where}systems[0]", path))
    rows = []
    for i, s in enumerate(systems):
        at = f"{where}systems[{i}]"
        name = str(_need(s, "system", at, path))
        measures = _need(s, "measures", at, path)
        if not isinstance(measures, Mapping) or not measures:
            raise InputError(f"{at}: 'measures' must map measure names to numbers", path)
        p_values = s.get("p_value_vs_first") or {}
        intervals = s.get("ci95") or {}
        inst = INST in name or bool((s.get("settings") or {}).get("instruction"))
        n = s.get("queries")
        for m, v in measures.items():
            ci = intervals.get(m)
            if ci is not None and (not isinstance(ci, list | tuple) or len(ci) != 2):
                raise InputError(f"{at}.ci95.{m}: an interval must be [low, high], got {ci!r}",
                                 path)  # fmt: skip
            try:
                rows.append(Measurement(
                    name.replace(INST, ""), task, str(m), v, interval(ci),
                    n if isinstance(n, int) else None, None, p_values.get(m) if i else None,
                    baseline if i else "", inst))  # fmt: skip
            except InputError as exc:
                raise InputError(f"{at}.measures.{m}: {exc}", path) from None
    return rows


def retrieval_reportable(data: Mapping, path: str | Path | None = None) -> Reportable:
    d = _need(data, "dataset", "top level", path)
    task = task_name(str(_need(d, "name", "dataset", path)))
    rows = retrieval_measurements(task, _need(data, "systems", "top level", path), "", path)
    about = f"{d.get('name')}: {d.get('queries')} queries, {d.get('documents')} documents"
    settings = {k: v for k, v in (data.get("settings") or {}).items() if k == "depth"}
    return Reportable("rarx eval retrieval", (Section("retrieval", TITLES["retrieval"],
                      tuple(rows), average=True),), about, settings)  # fmt: skip


def _mcr_accuracy(entry: Mapping, variant: str) -> Any:
    """Accuracy with/without instructions as ``rarx eval mcr`` writes it
    (``accuracy_with_instructions``) or nested (``with_instructions: {accuracy}``)."""
    flat = entry.get(f"accuracy_{variant}_instructions")
    if flat is not None:
        return flat
    nested = entry.get(f"{variant}_instructions")
    return nested.get("accuracy") if isinstance(nested, Mapping) else None


def mcr_system(data: Mapping) -> str:
    settings = data.get("settings") or {}
    model = str(data.get("model") or settings.get("model") or "?")
    scorer = data.get("scorer") or settings.get("scorer")
    normalize = data.get("normalize") or settings.get("normalize")
    name = model if scorer in (None, "bi-encoder") else f"{model} {scorer}"
    return f"{name} ({normalize})" if normalize else name


def mcr_reportable(data: Mapping, path: str | Path | None = None) -> Reportable:
    files = _need(data, "files", "top level", path)
    if not isinstance(files, list) or not files:
        raise InputError("'files' must be a non-empty list", path)
    system = mcr_system(data)
    rows = []
    for i, entry in enumerate(files):
        at = f"files[{i}]"
        task = Path(str(_need(entry, "file", at, path))).stem
        found = {v: _mcr_accuracy(entry, v) for v in ("without", "with")}
        if found["without"] is None and found["with"] is None:
            raise InputError(f"{at}: no accuracy (expected accuracy_without_instructions)", path)
        n = entry.get("questions")
        for variant, acc in found.items():
            if acc is None:
                continue
            try:
                rows.append(Measurement(system, task, "accuracy", acc, None,
                                        n if isinstance(n, int) else None, entry.get("chance"),
                                        instructions=variant == "with"))  # fmt: skip
            except InputError as exc:
                raise InputError(f"{at}.accuracy: {exc}", path) from None
    n = sum(int(f.get("questions") or 0) for f in files)
    return Reportable("rarx eval mcr", (Section("mcr", TITLES["mcr"], tuple(rows),
                      average=True),), f"{system}: {len(files)} files, {n} questions")  # fmt: skip


def qa_reportable(data: Mapping, path: str | Path | None = None) -> Reportable:
    dataset = _need(data, "dataset", "top level", path)
    task = task_name(str(_need(dataset, "name", "dataset", path)))
    info = _need(data, "system", "top level", path)
    system = str(info.get("name") or info.get("pipeline") or "?")
    figures = _need(data, "figures", "top level", path)
    n = dataset.get("queries")
    rows = []
    for m in QA_METRICS:
        try:
            rows.append(Measurement(system, task, m, _need(figures, m, "figures", path),
                                    n=n if isinstance(n, int) else None))  # fmt: skip
        except InputError as exc:
            raise InputError(f"figures.{m}: {exc}", path) from None
    return Reportable("rarx eval qa", (Section("qa", TITLES["qa"], tuple(rows), average=True),),
                      f"{system} on {dataset.get('name')}: {n} queries")  # fmt: skip


ADAPTIVE_MEASURES = ("accuracy", "F1", "retrieval_rate")


def adaptive_sections(results: Mapping[str, Mapping], key: str = "adaptive",
                      title: str = "Adaptive retrieval (Adapt-LLM protocol)") -> tuple[Section, ...]:  # fmt: skip  # noqa: E501
    """``rarx eval adaptive`` results of one or more datasets ({dataset: envelope}): each
    gate's accuracy, F1 and retrieval rate with their intervals (accuracy's p-value against
    AR), the oracle ceilings, and the AUC of P(<RET>) for closed-book failure (chance 0.5)."""
    rows, auc = [], []
    for dataset, r in results.items():
        n = (r.get("dataset") or {}).get("test_questions")
        n = n if isinstance(n, int) else None
        systems = {**(r.get("systems") or {}), **(r.get("ceilings") or {})}
        for name, fig in systems.items():
            for m in ADAPTIVE_MEASURES:
                if fig.get(m) is None:
                    continue
                p = fig.get("p_value_vs_AR") if m == "accuracy" and name != "AR" else None
                rows.append(Measurement(name, dataset, m, fig[m], interval(fig.get(f"{m}_ci")),
                                        n, None, p, "AR" if p is not None else ""))  # fmt: skip
        for name, a in (r.get("auc_p_ret_closed_book_failure") or {}).items():
            if a.get("auc") is not None:
                auc.append(Measurement(f"P(<RET>) {name}", dataset, "AUC (closed-book failure)",
                                       a["auc"], interval(a.get("auc_ci")), n, 0.5))  # fmt: skip
    out = [Section(key, title, tuple(rows), note="Oracles are ceilings, not gates anyone can "
                   "run. Accuracy: a gold answer in the output (yes/no questions: its "
                   "first yes/no word); p-values: paired t-test against AR.")]  # fmt: skip
    if auc:
        out.append(Section(f"{key}-auc", f"{title}: P(<RET>) as a predictor of closed-book "
                           "failure", tuple(auc)))  # fmt: skip
    return tuple(out)


def adaptive_reportable(data: Mapping, path: str | Path | None = None) -> Reportable:
    d = _need(data, "dataset", "top level", path)
    name = str(_need(d, "name", "dataset", path))
    cfg = data.get("config") or {}
    return Reportable("rarx eval adaptive", adaptive_sections({task_name(name): data}),
                      f"gate {cfg.get('gate_llm')} on {name}: {d.get('test_questions')} test "
                      "questions", {k: cfg[k] for k in ("top_docs", "tolerance", "seed")
                                    if k in cfg})  # fmt: skip


KINDS = {"retrieval": retrieval_reportable, "mcr": mcr_reportable, "qa": qa_reportable,
         "adaptive": adaptive_reportable}  # fmt: skip


def with_report(data: dict[str, Any]) -> dict[str, Any]:
    """An envelope of a kind above with its report section added (what writers save)."""
    return {**data, KEY: KINDS[data["kind"]](data).as_json()}


def reportable_of(data: Any, path: str | Path | None = None) -> Reportable:
    """A results file's report section, checked; an envelope of rarx's own kinds written
    before sections existed is read through its kind's function."""
    if isinstance(data, Mapping) and KEY in data:
        return parse(data[KEY], path)
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind in KINDS:
        return KINDS[kind](data, path)
    what = f"kind {kind!r}" if kind else f"benchmark {data.get('benchmark')!r}" if isinstance(
        data, Mapping) and data.get("benchmark") else "no kind"  # fmt: skip
    raise InputError(
        f"not a results file rarx can report ({what}): it has no {KEY!r} section; expected "
        "the JSON `rarx eval retrieval|mcr|qa|adaptive --results FILE` writes, or a "
        "benchmark's file (add the section to an older one with "
        "`python benchmarks/reportable.py FILE`)",
        path,
    )
