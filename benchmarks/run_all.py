"""Run every benchmark in turn (``make bench``). Each prints its table and writes JSON to
benchmarks/results/. ``--quick`` shrinks the long ones (scale, LLM) to a smoke run.

    python benchmarks/run_all.py [--quick] [NAME ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "bm25_cacm": ([], []),
    "bm25_overhead": ([], ["--repeats", "2"]),
    # 100,000 passages (the script's default) take hours to encode on 2 CPU cores
    "splade_cacm": (["--scale-size", "10000"], ["--quick"]),
    "startup": ([], ["--runs", "2"]),
    "bm25_scale": ([], ["--sizes", "20000"]),
    "dense_overhead": ([], ["--repeats", "1"]),
    "dense_scale": ([], ["--sizes", "2000"]),
    "ray_scale": ([], ["--quick"]),
    "eval_agreement": ([], []),
    "mcr_rarb": ([], []),
    "mcr_scorers": ([], ["--limit", "20", "--out", "work/mcr_scorers_quick.json"]),
    "baselines": ([], ["sciq"]),
    "cross_encoder_throughput": ([], ["--queries", "2", "--repeats", "2"]),
    "first_vs_listwise": ([], ["--queries", "3"]),
    "openai_first_http": ([], ["--queries", "2"]),
    "pipeline_overhead": ([], ["--repeats", "2"]),
    "pipeline_gating": ([], ["--n", "5"]),
    "pipeline_memory": ([], ["--n", "10", "--latency-n", "4"]),
    "pipeline_demos": ([], ["--n", "5"]),
    "pipeline_arr": ([], ["--n", "5"]),
    "serve_load": ([], ["--quick"]),
    "index_integrity": ([], ["--passages", "20000", "--repeats", "1"]),
    "integrations_overhead": ([], ["--queries", "100", "--repeats", "1"]),
}
NEEDS = {"openai_first_http": "llama_cpp"}  # optional packages, skipped when absent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    args = ap.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    for name in args.names or list(BENCHMARKS):
        full, quick = BENCHMARKS[name]
        if name in NEEDS and importlib.util.find_spec(NEEDS[name]) is None:
            print(f"== {name}: skipped ({NEEDS[name]} is not installed)")
            continue
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        cmd = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full)]
        if subprocess.run(cmd, cwd=HERE).returncode != 0:
            failed.append(name)
        print(f"== {name}: {time.perf_counter() - t:.0f}s\n", flush=True)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
