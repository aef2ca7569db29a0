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


def data_dir() -> Path:
    """Development data (CACM, RAR-b MCR files): ``RARX_DATA`` or ``../shared/data``."""
    path = Path(os.environ.get("RARX_DATA", ROOT.parent / "shared" / "data"))
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


def write_result(name: str, payload: dict[str, Any]) -> Path:
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
