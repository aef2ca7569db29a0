"""Scale: BM25 builds of generated corpora (realistic ~60-word passages) up to 1,000,000
passages, reporting build time, passages/second and the peak RSS of rarx's own process
(the JVM runs inside it, so its heap is included). Target: under 4 GB at 1M.

    python benchmarks/bm25_scale.py [--sizes 100000,300000,1000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import WORK, table, write_result
from corpus_gen import generate_passages

# Runs the real CLI in a fresh process and reports that process's own peak RSS.
CHILD = """
import json, resource, sys, time
from rarx.cli.main import cli
t = time.perf_counter()
cli.main(args=sys.argv[1:], standalone_mode=False)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_corpus(n: int) -> tuple[str, float]:
    path = WORK / "scale" / f"corpus-{n}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for d in generate_passages(n, seed=0):
                f.write(json.dumps({"_id": d.docid, "title": d.title, "text": d.text}) + "\n")
        tmp.rename(path)
    return str(path), path.stat().st_size / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows, results = [], []
    for n in (int(s) for s in args.sizes.split(",")):
        corpus, mb = write_corpus(n)
        index = WORK / "scale" / f"bm25-{n}"
        t = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                "index",
                "--corpus",
                corpus,
                "--index",
                str(index),
                "--kind",
                "bm25",
                "--threads",
                str(args.threads),
                "--overwrite",
                "--quiet",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
        child = json.loads(out.stdout.strip().splitlines()[-1])
        rate = n / child["seconds"]
        results.append(
            {
                "passages": n,
                "corpus_mb": round(mb, 1),
                "build_seconds": child["seconds"],
                "process_seconds": wall,
                "passages_per_second": rate,
                "peak_rss_mb": child["peak_rss_mb"],
            }
        )
        rows.append(
            (
                f"{n:,}",
                f"{mb:.0f}",
                f"{child['seconds']:.1f}",
                f"{rate:,.0f}",
                f"{child['peak_rss_mb']:.0f}",
            )
        )
        print(
            table(("passages", "corpus MB", "build s", "passages/s", "peak RSS MB"), rows[-1:]),
            flush=True,
        )
    print()
    print(table(("passages", "corpus MB", "build s", "passages/s", "peak RSS MB"), rows))
    write_result(
        "bm25_scale",
        {
            "command": f"python benchmarks/bm25_scale.py --sizes {args.sizes}",
            "threads": args.threads,
            "results": results,
            "target": "peak RSS < 4096 MB at 1,000,000 passages",
        },
    )


if __name__ == "__main__":
    main()
