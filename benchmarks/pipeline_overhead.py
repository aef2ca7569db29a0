"""Overhead of the pipeline layer: a pipeline of only ``retrieve`` against calling the
BM25 index directly, on all SciQ questions (batched) and one query at a time.

    .venv/bin/python benchmarks/pipeline_overhead.py [--repeats 5]

ratio = direct time / pipeline time (1.0: no overhead); the bar is >= 0.95.
"""

from __future__ import annotations

import argparse

from common import best_of, table, write_result
from pipeline_common import bm25_index, sciq

from rarx.index.base import load_index
from rarx.pipeline import Pipeline, Resources


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    args = ap.parse_args()
    folder, queries = sciq()
    path = bm25_index(folder)
    resources = Resources()
    pipe = Pipeline.from_dict({"stages": [{"retrieve": {"index": str(path), "k": args.k}}]},
                              resources=resources)  # fmt: skip
    index = load_index(path)  # its own searcher, so neither path shares a lock

    def direct() -> list:
        return index.search(queries, args.k, with_docs=True)

    def piped() -> list:
        return pipe.run(queries)

    single = queries[: args.single]

    def direct_one() -> None:
        for q in single:
            index.search([q], args.k, with_docs=True)

    def piped_one() -> None:
        for q in single:
            pipe.run([q])

    direct(), piped(), direct_one(), piped_one()  # warm the JVM and caches
    rows, results = [], {}
    modes = {"batched": (direct, piped, len(queries)),
             "one at a time": (direct_one, piped_one, len(single))}  # fmt: skip
    for name, (a, b, n) in modes.items():
        # interleave so drift on a busy machine hits both the same way
        d_times, p_times = [], []
        for _ in range(args.repeats):
            d_times.append(best_of(a, 1)[0])
            p_times.append(best_of(b, 1)[0])
        d, p = min(d_times), min(p_times)
        results[name] = {"queries": n, "direct_s": round(d, 4), "pipeline_s": round(p, 4),
                         "ratio": round(d / p, 4)}  # fmt: skip
        rows.append([name, n, d, p, round(d / p, 4)])
    same = [r.docids for r in direct()] == [s.ranking.docids for s in piped()]
    print(table(["mode", "queries", "direct s", "pipeline s", "ratio"], rows))
    write_result("pipeline_overhead", reportable=reportable, payload={
        "setup": {"index": "bm25 over SciQ support paragraphs", "k": args.k,
                  "repeats": args.repeats, "timing": "best of repeats, interleaved",
                  "same_rankings": same},
        "results": results,
    })  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: seconds through the pipeline and directly, and the ratio."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section, scalars

    rows = [M(k.removesuffix("_s"), mode, "seconds", r[k], n=r["queries"])
            for mode, r in data["results"].items() for k in ("direct_s", "pipeline_s")]
    rows += [M("direct / pipeline", mode, "ratio", r["ratio"], n=r["queries"])
             for mode, r in data["results"].items()]  # fmt: skip
    return Reportable("pipeline_overhead", (
        Section("pipeline-overhead", "Pipeline overhead against the index directly",
                tuple(rows)),), data["setup"]["index"], scalars(data["setup"]))


if __name__ == "__main__":
    main()
