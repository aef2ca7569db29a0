"""`rarx eval report`: tables and figures from results files built in the test with the
same code the eval commands write them with."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

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
            out[metric][label] = cells
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
    assert "\\* p < 0.05, paired t-test against bm25" in md
    assert t["accuracy"] == {
        "minilm (w/o inst)": ["0.5000"],
        "minilm (w/ inst)": ["0.7500"],
        "e5 (w/o inst)": ["0.2500"],
        "e5 (w/ inst)": ["**1.0000**"],
    }
    assert t["EM"] == {"bm25-first": ["0.2500"]} and t["F1"] == {"bm25-first": ["0.5000"]}

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
        match=r"bm25_cacm\.json: not a results file rarx can report "
        r"\(kind None\); expected the JSON that `rarx eval retrieval\|mcr\|qa",
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
    assert "error bars are the files' 95% bootstrap intervals" in report.markdown.read_text()
    # A malformed interval names the file and where it is.
    data = json.loads(path.read_text())
    data["systems"][0]["ci95"]["nDCG@10"] = [0.1]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"r\.json: systems\[0\]\.ci95\.nDCG@10: an interval "
                                         r"must be \[low, high\], got \[0\.1\]"):  # fmt: skip
        read_results(path)
