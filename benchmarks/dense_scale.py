"""How a dense build grows with the corpus: MiniLM + faiss on N generated passages.

Each size runs in its own process, so its peak RSS is its own. Passages come from
``corpus_gen.generate_passages`` as a stream (generating costs well under 1% of the
build), so a flat memory curve shows that the build does not hold the corpus.

    python benchmarks/dense_scale.py [--sizes 10000,30000,100000] [--faiss flat]
    python benchmarks/dense_scale.py --sizes 2000          # quick check
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, peak_rss_mb, table, write_result
from corpus_gen import generate_passages

DEFAULT_SIZES = "10000,30000,100000"


def one_size(n: int, faiss: str, batch_size: int) -> dict[str, Any]:
    """Build one index (in this process) and report its costs."""
    import torch

    from rarx.index.dense import DenseIndex
    from rarx.models.encoder import Encoder

    t = time.perf_counter()
    encoder = Encoder(model="minilm", device="cpu")
    load_s = time.perf_counter() - t
    rss_model = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        index = DenseIndex.build(
            generate_passages(n), Path(tmp) / "idx", encoder=encoder, faiss=faiss,
            batch_size=batch_size, quiet=True,
        )  # fmt: skip
        build_s = time.perf_counter() - t
        disk = sum(p.stat().st_size for p in index.path.iterdir())
    return {
        "n": n,
        "build_s": build_s,
        "passages_per_s": n / build_s,
        "model_load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_model_load_mb": rss_model,
        "index_mb": disk / 2**20,
        "torch_threads": torch.get_num_threads(),
    }


def growth(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Between consecutive sizes: the exponent of time in N (1.0 = linear) and extra RSS."""
    out = []
    for a, b in zip(results, results[1:], strict=False):
        exponent = math.log(b["build_s"] / a["build_s"]) / math.log(b["n"] / a["n"])
        extra = (b["peak_rss_mb"] - a["peak_rss_mb"]) / ((b["n"] - a["n"]) / 10_000)
        out.append({"from": a["n"], "to": b["n"], "time_exponent": exponent,
                    "rss_mb_per_10k_passages": extra})  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated passage counts")
    ap.add_argument("--faiss", default="flat", choices=("flat", "hnsw", "ivfpq"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep sizes already in results/dense_scale.json (same settings)",
    )
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(one_size(args.child, args.faiss, args.batch_size)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    command = "python benchmarks/dense_scale.py" + (
        f" --sizes {args.sizes}" if args.sizes != DEFAULT_SIZES else ""
    )
    results: list[dict[str, Any]] = []
    previous = RESULTS / "dense_scale.json"
    if args.resume and previous.is_file():
        old = json.loads(previous.read_text())
        if (old.get("faiss"), old.get("batch_size")) == (args.faiss, args.batch_size):
            results = [r for r in old["results"] if r["n"] in sizes]
    for n in sizes:
        if any(r["n"] == n for r in results):
            continue
        print(f"building {n:,} passages ...", flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--faiss", args.faiss,
             "--batch-size", str(args.batch_size)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        results.sort(key=lambda r: r["n"])
        r = next(r for r in results if r["n"] == n)
        print(f"  {r['passages_per_s']:.1f} passages/s, {r['build_s']:.0f}s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
        # written after every size, so a long run that is stopped keeps what it measured
        write_result("dense_scale", reportable=reportable, payload={
            "command": command, "model": "minilm", "faiss": args.faiss,
            "batch_size": args.batch_size, "corpus": "corpus_gen.generate_passages(n, seed=0)",
            "results": results, "growth": growth(results),
        })  # fmt: skip

    rows = [(r["n"], f"{r['passages_per_s']:.1f}", f"{r['build_s']:.1f}",
             f"{r['peak_rss_mb']:.0f}", f"{r['rss_after_model_load_mb']:.0f}",
             f"{r['index_mb']:.1f}") for r in results]  # fmt: skip
    print(table(("passages", "passages/s", "build s", "peak RSS MB", "RSS model MB",
                 "index MB"), rows))  # fmt: skip
    for g in growth(results):
        print(
            f"{g['from']:,} -> {g['to']:,}: time ~ N^{g['time_exponent']:.2f}, "
            f"peak RSS +{g['rss_mb_per_10k_passages']:.1f} MB per 10k passages"
        )


def reportable(data: dict) -> object:
    """The report section: build speed, time and memory by corpus size (lines)."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section, scalars

    rows = [M(f"{data['model']} {data['faiss']}", f"{r['n']:,}", m, r[m])
            for r in data["results"]
            for m in ("passages_per_s", "build_s", "peak_rss_mb", "index_mb")]  # fmt: skip
    return Reportable("dense_scale", (
        Section("dense-scale", "Dense index build by corpus size (passages)", tuple(rows),
                plot="lines"),
    ), data["corpus"], scalars(data, "model", "faiss", "batch_size"))


if __name__ == "__main__":
    main()
