"""No overhead over the engine: rarx BM25 batch search vs pyserini's
``LuceneSearcher.batch_search`` on the same CACM index and topics, in one process.

    python benchmarks/bm25_overhead.py [--repeats 5] [--k 1000]
"""

from __future__ import annotations

import argparse
import time

from common import cacm_bm25_index, data_dir, table, write_result

from rarx.index.lucene import LUCENE_DIR, LuceneIndex
from rarx.io.topics import read_topics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--k", type=int, default=1000)
    args = ap.parse_args()
    cacm = data_dir() / "cacm"
    index_dir = cacm_bm25_index()
    queries = read_topics(cacm / "topics.cacm.txt")
    ours = LuceneIndex.load(index_dir)  # starts the JVM the rarx way
    from pyserini.search.lucene import LuceneSearcher  # reuses the running JVM

    theirs = LuceneSearcher(str(index_dir / LUCENE_DIR))
    texts, qids = [q.text for q in queries], [q.qid for q in queries]

    rows, payload = [], {}
    for threads in (1, 2):

        def run_rarx(threads=threads):
            return ours.search(queries, args.k, threads=threads)

        def run_pyserini(threads=threads):
            res = theirs.batch_search(texts, qids, k=args.k, threads=threads)
            # Same output as rarx's: python (docid, score) pairs per query.
            return {q: [(h.docid, h.score) for h in hits] for q, hits in res.items()}

        best = {"rarx": float("inf"), "pyserini": float("inf")}
        for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
            for name, fn in (("rarx", run_rarx), ("pyserini", run_pyserini)):
                t = time.perf_counter()
                out = fn()
                best[name] = min(best[name], time.perf_counter() - t)
                if name == "rarx":
                    r_out = out
                else:
                    p_out = out
        identical = all([(h.docid, h.score) for h in r.hits] == p_out[r.qid] for r in r_out)
        qps = {n: len(queries) / t for n, t in best.items()}
        ratio = qps["rarx"] / qps["pyserini"]
        rows.append(
            (threads, f"{qps['rarx']:.1f}", f"{qps['pyserini']:.1f}", f"{ratio:.3f}", identical)
        )
        payload[f"threads={threads}"] = {
            "qps": qps,
            "ratio": ratio,
            "identical_rankings": identical,
        }
    print(f"CACM, {len(queries)} topics, {args.k} hits, best of {args.repeats}")
    print(table(("threads", "rarx q/s", "pyserini q/s", "ratio", "identical"), rows))
    write_result(
        "bm25_overhead",
        {
            "command": "python benchmarks/bm25_overhead.py",
            "k": args.k,
            "queries": len(queries),
            "results": payload,
            "target": "ratio >= 0.95, identical rankings",
        },
    )


if __name__ == "__main__":
    main()
