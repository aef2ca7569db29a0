"""`rarx eval report`: tables and figures from results files built in the test with the
same code the eval commands write them with."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from rarx.cli.main import cli
from rarx.errors import InputError, RarxError
from rarx.eval.datasets import BeirDataset
from rarx.eval.mcr import McrResult
from rarx.eval.report import build_report, read_results
from rarx.eval.results import envelope, write_results
from rarx.eval.retrieval import RetrievalEvaluation, compare
from rarx.eval.systems import SystemRun
from rarx.types import Document, Query, Ranking

N = 8  # queries; query i's one relevant document is d{i}
MEASURES = ("nDCG@10", "R@1")


def run(name: str, ranks: list[int], instruction: str = "") -> SystemRun:
    """Rankings that put each query's relevant document at the given rank."""
    rankings = []
    for i, r in enumerate(ranks):
        docids = [f"x{j}" for j in range(4)]
        docids.insert(r - 1, f"d{i}")
        rankings.append(Ranking.from_arrays(f"q{i}", docids, [5.0 - j for j in range(5)]))
    return SystemRun(name, rankings, {"kind": "dense", "instruction": instruction})


def retrieval_file(path: Path, task: str, runs: list[SystemRun]) -> Path:
    queries = [Query(f"q{i}", f"question {i}") for i in range(N)]
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(N)}
    data = BeirDataset(
        path.parent / task,
        [Document(f"d{i}", "x") for i in range(N)],
        queries,
        qrels,
        instruction="Retrieve.",
    )
    result = RetrievalEvaluation(task, data, "test", 5, MEASURES, compare(runs, qrels, MEASURES))
    write_results(path, result.as_dict())
    return path


def tables(markdown: str) -> dict[str, dict[str, list[str]]]:
    """{metric: {row label: cells}} of every table on the page."""
    out: dict[str, dict[str, list[str]]] = {}
    metric = ""
    for line in markdown.splitlines():
        if line.startswith("## "):
            metric = ""
        elif m := re.fullmatch(r"\*\*(.+)\*\*", line):
            metric = m.group(1)
            out[metric] = {}
        elif line.startswith("| ") and metric and not line.startswith("| system"):
            label, *cells = [c.strip() for c in line.strip("|").split("|")]
            out[metric][label] = cells  # "(chance)" and "(n)" rows too
    return out


def ndcg(rank: int) -> float:
    return 1 / math.log2(rank + 1)


@pytest.mark.filterwarnings("ignore:Precision loss")  # scipy, on R@1's constant differences
def test_report_tables_and_figures(tmp_path: Path) -> None:
    from PIL import Image
    from scipy.stats import ttest_rel

    bm25 = [i % 3 + 1 for i in range(N)]  # ranks 1, 2, 3, 1, 2, 3, 1, 2
    ret1 = retrieval_file(
        tmp_path / "r1.json",
        "arc",
        [run("bm25", bm25), run("minilm", [1] * N), run("minilm +inst", [2] * N, "Retrieve.")],
    )
    alt = [2 + i % 2 for i in range(N)]  # ranks 2, 3, 2, 3, ...
    ret2 = retrieval_file(
        tmp_path / "r2.json", "data/rarb/piqa", [run("bm25", [1] * N), run("minilm", alt)]
    )
    mcr = tmp_path / "mcr.json"  # as `rarx eval mcr --instructions --results` writes it
    write_results(
        mcr,
        envelope(
            "mcr",
            model="minilm",
            files=[McrResult("/data/alphanli-test.csv", 4, 0.5, 0.75).as_dict()],
        ),
    )
    mcr_bench = tmp_path / "mcr_bench.json"  # benchmarks/mcr_rarb.py's layout
    write_results(
        mcr_bench,
        envelope(
            "mcr",
            model="e5",
            files=[
                {
                    "file": "alphanli-test.csv",
                    "questions": 4,
                    "without_instructions": {"accuracy": 0.25},
                    "with_instructions": {"accuracy": 1.0},
                }
            ],
        ),
    )
    qa = tmp_path / "qa.json"
    write_results(
        qa,
        envelope(
            "qa",
            dataset={"name": "sciq", "queries": 4},
            system={"pipeline": "p.yaml", "name": "bm25-first"},
            figures={"EM": 0.25, "F1": 0.5, "retrieval_rate": 1.0},
        ),
    )

    out = tmp_path / "report"
    cli.main(
        [
            "eval",
            "report",
            str(ret1),
            str(ret2),
            str(mcr),
            str(mcr_bench),
            str(qa),
            "--out",
            str(out),
        ],
        standalone_mode=False,
    )
    md = (out / "report.md").read_text()
    t = tables(md)

    base = sum(ndcg(r) for r in bm25) / N
    p_minilm = ttest_rel([1.0] * N, [ndcg(r) for r in bm25]).pvalue
    p_inst = ttest_rel([ndcg(2)] * N, [ndcg(r) for r in bm25]).pvalue
    assert p_minilm < 0.05 < p_inst  # one significant cell, one not
    assert t["nDCG@10"]["bm25"] == [f"{base:.4f}", "**1.0000**", f"{(base + 1) / 2:.4f}"]
    piqa = sum(ndcg(r) for r in alt) / N
    assert t["nDCG@10"]["minilm (w/o inst)"] == [
        "**1.0000\\***",
        f"{piqa:.4f}\\*",
        f"{(1 + piqa) / 2:.4f}",
    ]
    assert t["nDCG@10"]["minilm (w/ inst)"] == [f"{ndcg(2):.4f}", "–", "–"]
    assert t["R@1"]["bm25"][0] == f"{3 / N:.4f}" and t["R@1"]["minilm (w/ inst)"][0] == "0.0000"
    assert "| system | arc | piqa | mean |" in md  # a folder path or spec shows its last part
    assert "\\* p < 0.05, paired test against bm25" in md
    assert t["nDCG@10"]["(n)"] == [str(N), str(N), ""]  # queries per task (then the mean)
    assert t["accuracy"] == {
        "minilm (w/o inst)": ["0.5000"],
        "minilm (w/ inst)": ["0.7500"],
        "e5 (w/o inst)": ["0.2500"],
        "e5 (w/ inst)": ["**1.0000**"],
        "(n)": ["4"],
    }
    assert t["EM"] == {"bm25-first": ["0.2500"], "(n)": ["4"]}
    assert t["F1"] == {"bm25-first": ["0.5000"], "(n)": ["4"]}

    page = (out / "report.html").read_text()
    assert "<td><b>1.0000*</b></td>" in page and f"<td>{ndcg(2):.4f}</td>" in page
    for name in ("retrieval.png", "mcr.png", "qa.png"):
        assert f"({name})" in md and f"src='{name}'" in page
        with Image.open(out / name) as img:
            img.verify()
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width >= 800 and img.height >= 400
            assert len(img.convert("RGB").getcolors(1 << 20) or []) > 20  # drawn, not blank


def test_files_it_does_not_understand(tmp_path: Path) -> None:
    bench = tmp_path / "bm25_cacm.json"
    bench.write_text(json.dumps({"benchmark": "bm25_cacm", "results": []}))
    with pytest.raises(
        InputError,
        match=r"bm25_cacm\.json: not a results file rarx can report \(benchmark 'bm25_cacm'\): "
        r"it has no 'report' section; .*`python benchmarks/reportable.py FILE`",
    ):
        read_results(bench)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(InputError, match="broken.json: not a JSON file"):
        read_results(broken)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"kind": "retrieval", "dataset": {"name": "x"}}))
    with pytest.raises(InputError, match="missing 'systems'"):
        read_results(partial)
    one = retrieval_file(tmp_path / "a.json", "arc", [run("bm25", [1] * N)])
    two = retrieval_file(tmp_path / "b.json", "arc", [run("bm25", [2] * N)])
    with pytest.raises(RarxError, match=r"a\.json and .*b\.json both hold nDCG@10 of bm25 on arc"):
        build_report([one, two], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing is written before every file is read
    # kept apart, each file is its own section; the same figure restated is kept once
    report = build_report([one, two], tmp_path / "apart", separate=True)
    assert {s.section for s in report.scores} == {"a.retrieval", "b.retrieval"}
    same = retrieval_file(tmp_path / "c.json", "arc", [run("bm25", [1] * N)])
    report = build_report([one, same], tmp_path / "once")
    assert [(s.source, s.metric) for s in report.scores] == [(str(one), m) for m in MEASURES]


def test_intervals_the_file_holds_reach_the_report(tmp_path: Path) -> None:
    runs = [run("bm25", [1, 3, 5, 2, 1, 5, 1, 2]), run("dense", [1] * N)]
    path = retrieval_file(tmp_path / "r.json", "arc", runs)
    written = json.loads(path.read_text())["systems"]
    scores, _ = read_results(path)
    by = {(s.system, s.metric): s for s in scores}
    for system in written:
        for m, (low, high) in system["ci95"].items():
            assert by[system["system"], m].ci == (low, high)
    bm25 = by["bm25", "nDCG@10"]
    assert bm25.ci[0] < bm25.value < bm25.ci[1]  # per-query values differ: a real interval
    report = build_report([path], tmp_path / "out")
    assert "error bars are the files' 95% intervals" in report.markdown.read_text()
    # A malformed interval names the file and where it is: in the section the report reads,
    data = json.loads(path.read_text())
    data["report"]["sections"][0]["measurements"][0]["ci95"] = [0.1]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"r\.json: report\.sections\[0\]\.measurements\[0\]"
                                         r"\.ci95: an interval must be \[low, high\], "
                                         r"got \[0\.1\]"):  # fmt: skip
        read_results(path)
    # and in an envelope written before sections existed (read through its kind).
    del data["report"]
    data["systems"][0]["ci95"]["nDCG@10"] = [0.1]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"r\.json: systems\[0\]\.ci95\.nDCG@10: an interval "
                                         r"must be \[low, high\], got \[0\.1\]"):  # fmt: skip
        read_results(path)


# --- the typed section every results file carries (rarx.eval.report_schema) -------------

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [  # (gold, answer) of a yes/no set and of an open set
    ("boolq", ["yes"], "yes"), ("boolq", ["yes"], "no"), ("boolq", ["no"], "no"),
    ("boolq", ["yes"], "yes"), ("boolq", ["no"], "yes"),
    ("sciq", ["pollen"], "pollen grains"), ("sciq", ["chromatin"], "the chromosomes"),
    ("sciq", ["skeletal muscle"], "skeletal muscle"),
]  # fmt: skip


def closed_book_file(path: Path, monkeypatch: pytest.MonkeyPatch, llms: int = 2) -> dict:
    """A results file saved by benchmarks/closed_book.py's own writer (answers scored by
    its own functions), for ``llms`` LLMs with their paired differences."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import closed_book

    payload: dict = {"benchmark": "closed_book", "llms": {}}
    for j in range(llms):
        datasets: dict = {}
        for i, (ds, gold, answer) in enumerate(QUESTIONS):
            answer = answer if j == 0 else gold[0]  # the second LLM knows every answer
            datasets.setdefault(ds, {"per_question": []})["per_question"].append(
                {"qid": f"q{i}", "question": f"question {i}", "gold": gold, "answer": answer,
                 "seconds": 0.5 + j, **closed_book.scored(answer, gold)})  # fmt: skip
        for d in datasets.values():
            d["summary"], d["complete"] = closed_book.summary(d["per_question"]), True
        payload["llms"][f"llm{j}"] = {"setup": {"llm": f"llm{j}"}, "datasets": datasets}
    if llms > 1:
        first, second = (payload["llms"][k]["datasets"] for k in ("llm0", "llm1"))
        payload["paired"] = {f"llm1 - llm0 / {ds}": {m: closed_book.paired(
            first[ds]["per_question"], second[ds]["per_question"], m)
            for m in closed_book.METRICS} for ds in first}  # fmt: skip
    closed_book.write(path, payload)
    return payload


def test_a_benchmark_file_reports_through_its_own_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = closed_book_file(tmp_path / "closed_book.json", monkeypatch)
    saved = json.loads((tmp_path / "closed_book.json").read_text())
    assert {k: v for k, v in saved.items() if k != "report"} == payload  # figures untouched
    report = build_report([tmp_path / "closed_book.json"], tmp_path / "out")
    t = tables(report.markdown.read_text())
    summary = {(llm, ds): d["summary"] for llm, e in payload["llms"].items()
               for ds, d in e["datasets"].items()}  # fmt: skip
    assert t["contains"]["llm0"] == [f"{summary['llm0', ds]['contains']:.4f}"
                                     for ds in ("boolq", "sciq")]  # fmt: skip
    yes = sum(g == ["yes"] for ds, g, _ in QUESTIONS if ds == "boolq") / 5
    assert t["contains"]["(chance)"] == [f"{yes:.4f}", "–"]  # always-yes on the yes/no set
    assert t["contains"]["(n)"] == ["5", "3"]
    diff = payload["paired"]["llm1 - llm0 / sciq"]["f1"]["diff"]
    assert t["f1 difference"]["llm1 - llm0"][1] == f"{diff:.4f}"
    assert [p.name for p in report.figures] == ["closed-book.png", "closed-book-paired.png"]
    scores = {(s.system, s.task, s.metric): s for s in report.scores}
    em = scores["llm0", "boolq", "em"]
    assert em.ci == tuple(summary["llm0", "boolq"]["em_ci"]) and em.chance == yes


def test_the_backfill_adds_only_the_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    path = tmp_path / "closed_book.json"  # the name says which benchmark wrote it
    closed_book_file(path, monkeypatch)
    with_section = path.read_text()
    data = json.loads(with_section)
    del data["report"]
    before = json.dumps(data, indent=1)  # any layout: only the section is appended
    path.write_text(before + "\n")
    script = [sys.executable, str(ROOT / "benchmarks" / "reportable.py"), str(path)]
    run = subprocess.run(script, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == f"{path}: written"
    after = path.read_text()
    assert after.startswith(before[:-1].rstrip())  # every byte before the section kept
    assert json.loads(after) == json.loads(with_section)  # the same section as when saved
    again = subprocess.run(script, capture_output=True, text=True, check=True)
    assert again.stdout.strip() == f"{path}: unchanged" and path.read_text() == after
    # A resumed run may write keys after a current section: still current, not refused.
    path.write_text(json.dumps(json.loads(after) | {"limits": {"x": 1}}, indent=2))
    kept = subprocess.run(script, capture_output=True, text=True, check=True)
    assert kept.stdout.strip() == f"{path}: unchanged"
    (tmp_path / "other.json").write_text(json.dumps({"benchmark": "other", "x": 1}))
    failed = subprocess.run([*script[:2], str(tmp_path / "other.json")], capture_output=True,
                            text=True)  # fmt: skip
    assert failed.returncode == 1 and "no benchmark script writes it" in failed.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["sections"][0]["measurements"][2].update(value="high"),
         r"report\.sections\[0\]\.measurements\[2\]\.value: expected a finite number, "
         r"found 'high'"),
        (lambda r: r["sections"][0]["measurements"][1].pop("measure"),
         r"report\.sections\[0\]\.measurements\[1\]\.measure: missing \(required\)"),
        (lambda r: r["sections"][1].update(plot="pie"),
         r"report\.sections\[1\]\.plot: expected one of \['bars', 'lines', 'histogram', "
         r"'table'\], "
         r"found 'pie'"),
        (lambda r: r["sections"][0]["measurements"][0].update(chance=[0.5]),
         r"report\.sections\[0\]\.measurements\[0\]\.chance: expected a finite number"),
        (lambda r: r["sections"][0]["measurements"][0].update(n=2.5),
         r"report\.sections\[0\]\.measurements\[0\]\.n: expected a count"),
        (lambda r: r["sections"][0]["measurements"][0].update(colour="red"),
         r"report\.sections\[0\]\.measurements\[0\]: unknown field\(s\) \['colour'\]"),
        (lambda r: r.update(schema=2), r"report\.schema: expected 1, found 2"),
        (lambda r: r["sections"][1].update(key="closed book"),
         r"report\.sections\[1\]\.key: expected letters, digits"),
    ],
)  # fmt: skip
def test_a_malformed_section_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any, message: str
) -> None:
    path = tmp_path / "closed_book.json"
    closed_book_file(path, monkeypatch)
    data = json.loads(path.read_text())
    change(data["report"])
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=rf"closed_book\.json: {message}"):
        build_report([path], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_chance_line_is_drawn_where_the_section_sets_it() -> None:
    from rarx.eval.report import SectionInfo, scores_of
    from rarx.eval.report_figures import section_figure
    from rarx.eval.report_schema import Measurement, Reportable, Section, mc_chance

    chance = mc_chance([2, 4, 4])  # three questions with 2, 4 and 4 options
    assert chance == pytest.approx((1 / 2 + 1 / 4 + 1 / 4) / 3)
    rows = (Measurement("a", "set1", "accuracy", 0.6, (0.5, 0.7), 3, chance),
            Measurement("b", "set1", "accuracy", 0.5, None, 3, chance),
            Measurement("a", "set2", "accuracy", 0.7))  # fmt: skip
    for plot in ("bars", "lines"):
        rep = Reportable("t", (Section("s", "S", rows, plot=plot),))
        fig = section_figure(SectionInfo("s", "S", plot, "", False), scores_of(rep), 0.05)
        (ax,) = fig.axes
        drawn = [a for a in [*ax.collections, *ax.lines] if a.get_gid() == "chance"]
        assert drawn, plot
        if plot == "bars":  # one segment over set1's bars, none over set2 (no chance there)
            (segs,) = [a.get_segments() for a in drawn]
            assert [(s[0][1], s[1][1]) for s in segs] == [(chance, chance)]
            assert segs[0][0][0] < 0 < segs[0][1][0]  # set1 is at x = 0
        else:
            assert [list(a.get_ydata()) for a in drawn] == [[chance, chance]]
        assert "chance" in [t.get_text() for t in fig.legends[0].get_texts()]
    plain = Reportable("t", (Section("s", "S", rows[2:]),))
    fig = section_figure(SectionInfo("s", "S", "bars", "", False), scores_of(plain), 0.05)
    assert not [a for a in [*fig.axes[0].collections, *fig.axes[0].lines]
                if a.get_gid() == "chance"]  # fmt: skip
    assert "chance" not in [t.get_text() for t in fig.legends[0].get_texts()]


def test_a_negative_difference_shows_its_whole_interval() -> None:
    from rarx.eval.report import SectionInfo, scores_of
    from rarx.eval.report_figures import section_figure
    from rarx.eval.report_schema import Measurement, Reportable, Section

    rows = (Measurement("trained - base", "set1", "accuracy difference", -0.004, (-0.042, 0.032)),
            Measurement("trained - base", "set2", "accuracy difference", -0.028, (-0.058, 0.0)))
    rep = Reportable("t", (Section("s", "S", rows),))
    fig = section_figure(SectionInfo("s", "S", "bars", "", False), scores_of(rep), 0.05)
    low, high = fig.axes[0].get_ylim()
    assert low < -0.058 and high > 0.032  # neither interval is cut by the axis


def test_every_committed_results_file_has_a_section_rarx_can_read() -> None:
    from rarx.eval.report import read_file

    files = sorted((ROOT / "benchmarks" / "results").rglob("*.json"))
    assert len(files) > 40
    for path in files:
        rep, _ = read_file(path)  # raises, naming the file and field, on any problem
        assert "report" in json.loads(path.read_text()), path  # written, not derived
        assert sum(len(s.measurements) for s in rep.sections) > 0


def test_a_benchmark_keeps_its_figures_when_its_section_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import common

    payload = {"benchmark": "x", "figures": {"accuracy": 0.5}, "report": {"stale": True}}
    assert common.with_report(payload, lambda data: data["missing"]) == {
        "benchmark": "x", "figures": {"accuracy": 0.5}}  # fmt: skip
    assert "KeyError: 'missing'" in capsys.readouterr().err


def test_a_histogram_section_draws_adjacent_bars_over_its_bins() -> None:
    """Bins (identifier positions) in order along x, each system's bar side by side
    within a bin and no gap between bins, intervals as error bars, chance dashed across
    every bar, and n written on the bars only where it differs across a panel."""
    from matplotlib.container import ErrorbarContainer
    from matplotlib.patches import Rectangle

    from rarx.eval.report import SectionInfo, scores_of
    from rarx.eval.report_figures import section_figure
    from rarx.eval.report_schema import Measurement, Reportable, Section

    bins = "ABCD"
    counts = [Measurement(sys, b, "top picks", float(v), n=12, chance=3.0)
              for sys, vals in (("set1", [7, 3, 0, 2]), ("set2", [1, 1, 9, 1]))
              for b, v in zip(bins, vals, strict=True)]  # fmt: skip
    accuracy = [Measurement("set1", b, "accuracy by position", a, (max(0, a - 0.2), a + 0.1),
                            n=n, chance=0.25)
                for b, a, n in zip(bins, [0.5, 0.25, 0.0, 0.6], [2, 4, 1, 5],
                                   strict=True)]  # fmt: skip
    rep = Reportable("t", (Section("pos", "Position", tuple(counts + accuracy), "histogram"),))
    fig = section_figure(SectionInfo("pos", "Position", "histogram", "", False),
                         scores_of(rep), 0.05)  # fmt: skip
    top, bottom = fig.axes
    bars = [p for p in top.patches if isinstance(p, Rectangle)]
    assert len(bars) == 8 and [round(b.get_height()) for b in bars] == [7, 3, 0, 2, 1, 1, 9, 1]
    spans = sorted((b.get_x(), b.get_x() + b.get_width()) for b in bars)
    assert spans[0][0] == pytest.approx(-0.5) and spans[-1][1] == pytest.approx(3.5)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(spans, spans[1:], strict=False))
    assert [t.get_text() for t in top.get_xticklabels()] == list(bins)
    (chance,) = [a for a in top.collections if a.get_gid() == "chance"]
    segments = sorted((s[0][0], s[1][0], s[0][1]) for s in chance.get_segments())
    assert [(a, b) for a, b, _ in segments] == [pytest.approx(x) for x in spans]  # one a bar
    assert {y for _, _, y in segments} == {3.0}
    assert not top.texts  # the same n on every bar: nothing written on them
    assert [t.get_text() for t in bottom.texts] == ["2", "4", "1", "5"]
    errs = [c for c in bottom.containers if isinstance(c, ErrorbarContainer)]
    assert len(errs) == 4 and not [c for c in top.containers
                                   if isinstance(c, ErrorbarContainer)]  # fmt: skip
    assert "numbers: n per bar" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_first_rarb_reports_its_position_histogram(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """first_rarb.py's position records (shuffled windows) become a histogram section and
    a share table on the page: whole-number counts per identifier, accuracy by the gold
    passage's position with Wilson intervals, the run marked partial."""
    import argparse

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import first_rarb
    from common import with_report

    data = BeirDataset(tmp_path / "tiny", [Document(f"d{i}", "x") for i in range(8)],
                       [Query(f"q{i}", f"question {i}") for i in range(4)],
                       {f"q{i}": {f"d{i}": 1} for i in range(4)})  # fmt: skip
    # (qid, seed, the window's order, top pick's position); q3's gold is not a candidate
    windows = [("q0", 0, "d0 d4 d5 d6", 0), ("q0", 1, "d4 d0 d5 d6", 0),
               ("q1", 0, "d4 d5 d1 d6", 0), ("q1", 1, "d1 d4 d5 d6", 0),
               ("q2", 0, "d4 d5 d6 d2", 3), ("q2", 1, "d2 d4 d5 d6", 1),
               ("q3", 0, "d4 d5 d6 d7", 0)]  # fmt: skip
    records = [{"dataset": "tiny", "system": "first-stage", "qid": f"q{i}",
                "docids": [f"d{i}", "d4", "d5", "d6"], "seconds": 0.0, "top_pick": 0,
                "gold_positions": [], "forward_passes": 0} for i in range(4)]  # fmt: skip
    for qid, seed, order, pick in windows:
        docids = order.split()
        ranked = [docids[pick]] + [d for d in docids if d != docids[pick]]
        records.append({"dataset": "tiny", "system": f"position-s{seed}", "qid": qid,
                        "docids": ranked, "seconds": 1.0, "top_pick": pick,
                        "gold_positions": [j for j, d in enumerate(docids) if d == f"d{qid[1]}"],
                        "forward_passes": 1, "failed_windows": 0})  # fmt: skip
    args = argparse.Namespace(systems=["position"], k=4, queries=4, seed=0, position_seeds=2)
    summary = first_rarb.summarize(records, {"tiny": data}, args, {"tiny": 0.75}, {"tiny": ""})
    settings = {"llm": "tiny-llm", "k": 4, "seed": 0, "queries": 4, "orders": 2}
    payload = {"partial": True, "settings": settings, "datasets": summary}
    path = tmp_path / "first_rarb_tiny.json"
    path.write_text(json.dumps(with_report(payload, first_rarb.reportable)))
    report = build_report([path], tmp_path / "out")
    page = report.markdown.read_text()
    t = tables(page)
    # top picks: A 5 (q0 s0, q0 s1, q1 s0, q1 s1, q3 s0), B 1, C 0, D 1; chance 7 / 4
    assert t["windows whose top pick is here"]["tiny"] == ["5", "1", "0", "1"]
    assert t["windows whose top pick is here"]["(chance)"] == ["1.7500"] * 4
    # gold at A in q0 s0, q1 s1 (picked) and q2 s1 (not); at B, C: missed; at D: picked
    gold = t["top pick is gold, by the gold's position"]
    assert gold["tiny"] == ["0.6667", "0.0000", "0.0000", "1.0000"]
    assert gold["(n)"] == ["3", "1", "1", "1"]
    scores = {(s.task, s.metric): s for s in report.scores if s.section == "first-rarb-position"}
    low, high = scores["A", "top pick is gold, by the gold's position"].ci
    assert low == pytest.approx(0.2077, abs=1e-3) and high == pytest.approx(0.9385, abs=1e-3)
    shares = tables(page)["top pick is gold"]
    assert shares["FIRST, shuffled windows"] == ["0.4286"]  # q0 s0, q1 s1, q2 s0: 3 of 7
    assert [p.name for p in report.figures] == ["first-rarb.png", "first-rarb-position.png"]
    assert "## FIRST's top pick by identifier position (shuffled windows) (partial" in page


def test_the_backfill_never_drops_a_figure_it_cannot_compute_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A train_mcr file on a RAR-b MCR file that is not packaged (alphaNLI): its chance
    comes from the file, so a machine (or a worktree) without it must not rewrite the
    section without chance; it says what is missing instead."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.syspath_prepend(str(ROOT))
    import reportable
    import train_mcr

    from benchmarks import common
    from benchmarks.common import with_report

    data = tmp_path / "data"
    (data / "rarb-mcr").mkdir(parents=True)
    rows = [["Retrieve the reason.", f"start {i}. end {i}.", repr([f"a{i}", f"b{i}"]), i % 2]
            for i in range(4)]  # fmt: skip
    lines = ["instructions,queries,documents,labels",
             *(",".join(json.dumps(str(x)) for x in r) for r in rows)]  # fmt: skip
    (data / "rarb-mcr" / "alphanli-test.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(common, "WORK", tmp_path / "work")  # no copy there
    monkeypatch.setenv("RARX_DATA", str(data))
    payload = {"benchmark": "train_mcr", "settings": {"minutes": 1.0},
               "results": [{"file": "alphanli-test.csv", "system": "minilm", "n": 4,
                            "accuracy": 0.5, "ci95": [0.0, 1.0]},
                           {"file": "alphanli-test.csv", "system": "ce", "n": 4,
                            "accuracy": 0.75, "ci95": [0.25, 1.0],
                            "vs_minilm": {"delta": 0.25, "p_value": 0.39, "n": 4}}]}  # fmt: skip
    path = tmp_path / "train_mcr-x.json"
    path.write_text(json.dumps(with_report(payload, train_mcr.reportable), indent=2) + "\n")
    text = path.read_text()
    assert {m["chance"] for m in json.loads(text)["report"]["sections"][0]["measurements"]} == {
        0.5
    }
    assert reportable.backfill(path, check=True) == "unchanged"

    monkeypatch.setenv("RARX_DATA", str(tmp_path / "elsewhere"))  # the file is not here
    for check in (True, False):
        with pytest.raises(RarxError, match=r"would lose 2 figure\(s\).*minilm / "
                           r"alphanli-test / accuracy: chance.*set RARX_DATA"):  # fmt: skip
            reportable.backfill(path, check=check)
    assert path.read_text() == text


def test_shared_data_of_a_git_worktree_is_beside_the_main_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.common import shared_data

    monkeypatch.delenv("RARX_DATA", raising=False)
    main = tmp_path / "main"
    (main / ".git" / "worktrees" / "b").mkdir(parents=True)
    worktree = tmp_path / "wt" / "b"
    worktree.mkdir(parents=True)
    (worktree / ".git").write_text(f"gitdir: {main / '.git' / 'worktrees' / 'b'}\n")
    assert shared_data(worktree) == tmp_path / "shared" / "data"
    assert shared_data(main) == tmp_path / "shared" / "data"
    monkeypatch.setenv("RARX_DATA", str(tmp_path / "d"))
    assert shared_data(worktree) == tmp_path / "d"
