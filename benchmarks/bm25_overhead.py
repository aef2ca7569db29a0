"""BM25 search speed on CACM, in one process: rarx's ``LuceneIndex.search`` vs pyserini's
``LuceneSearcher.batch_search`` on the same index (target: identical rankings, >= 0.95 of
pyserini's queries/s), and ``bm25s`` (sparse-matrix BM25, same k1/b, one thread) as the
reference users pick for speed (target: >= 0.5 of its queries/s).

Each round runs every system once over all topics, in turn, so drift on a shared machine
hits all alike; the best round counts, after an untimed warm-up round. rarx fills a table
from Lucene ids to docids as documents are first returned; its first search (empty table)
is reported apart. Anserini's query parsing plus its Lucene call, hits left in Java, is timed
too (after the rounds): what Anserini spends before it reads a single hit. bm25s's time
includes tokenising the queries and mapping its row numbers to docids; it tokenises with
its own regex and English stop words, without a stemmer, so its rankings differ from
Lucene's (it is a speed reference only).

bm25s is not a rarx dependency: ``pip install bm25s`` to get its column.

    python benchmarks/bm25_overhead.py [--repeats 5] [--ks 10,1000] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from common import cacm_bm25_index, data_dir, table, write_result

from rarx.index.lucene import LUCENE_DIR, Bm25BuildParams, LuceneIndex
from rarx.io.corpus import read_corpus
from rarx.io.topics import read_topics

BM25 = Bm25BuildParams()  # rarx's defaults (k1=0.9, b=0.4), given to bm25s too

TARGET_PYSERINI, TARGET_BM25S = 0.95, 0.5


def bm25s_system(cacm: Any) -> tuple[Callable[[list[str], int], Any] | None, str]:
    """A function (query texts, k) -> docids per query, or None and why not."""
    try:
        import bm25s
    except ImportError:
        return None, "bm25s not installed (pip install bm25s); its column is skipped"
    docs = list(read_corpus(cacm / "corpus.jsonl"))
    docids = np.array([d.docid for d in docs], dtype=object)
    model = bm25s.BM25(k1=BM25.k1, b=BM25.b)  # method "lucene"
    tokens = bm25s.tokenize([d.contents for d in docs], stopwords="en", show_progress=False)
    model.index(tokens, show_progress=False)

    def run(texts: list[str], k: int) -> Any:
        query_tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False,
                                      return_ids=False)  # fmt: skip
        rows, scores = model.retrieve(query_tokens, k=k, n_threads=1, show_progress=False)
        return docids[rows], scores

    return run, f"bm25s {bm25s.__version__}, numpy backend, one thread"


def lucene_search_qps(index: LuceneIndex, texts: list[str], k: int, repeats: int) -> float:
    """Queries/s of Anserini's query parsing and its Lucene call (sorted, each hit scored
    again: ``doDocScores``), hits left in Java: Anserini's cost before it reads any hit."""
    hits = index._hits  # benchmark-only look inside: the Java objects rarx searches with
    build, search = hits._generator.buildQuery, hits._searcher.search
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for text in texts:
            search(build("contents", hits._analyzer, text), k, hits._sort, True)
        best = min(best, time.perf_counter() - t)
    return len(texts) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ks", default="10,1000")
    ap.add_argument("--threads", default="1,2", help="rarx/pyserini search threads to compare")
    args = ap.parse_args()
    cacm = data_dir() / "cacm"
    index_dir = cacm_bm25_index()
    queries = read_topics(cacm / "topics.cacm.txt")
    ours = LuceneIndex.load(index_dir)  # starts the JVM the rarx way
    from pyserini.search.lucene import LuceneSearcher  # reuses the running JVM

    theirs = LuceneSearcher(str(index_dir / LUCENE_DIR))  # k1=0.9, b=0.4 by default, as ours
    texts, qids = [q.text for q in queries], [q.qid for q in queries]
    run_bm25s, bm25s_note = bm25s_system(cacm)
    print(bm25s_note)
    ks = [int(x) for x in args.ks.split(",")]
    for _ in range(3):  # warm the JIT on pyserini's path, so rarx's first search is cold
        theirs.batch_search(texts, qids, k=max(ks), threads=1)
    t = time.perf_counter()
    ours.search(queries, max(ks))
    cold = len(queries) / (time.perf_counter() - t)
    print(f"rarx, first search (empty Lucene-id-to-docid table), k={max(ks)}: {cold:.1f} q/s")

    rows, payload = [], {}
    for k in ks:
        for threads in (int(x) for x in args.threads.split(",")):
            systems: dict[str, Callable[[], Any]] = {
                "rarx": lambda k=k, t=threads: ours.search(queries, k, threads=t),
                # Same output as rarx's: python (docid, score) pairs per query.
                "pyserini": lambda k=k, t=threads: {
                    q: [(h.docid, h.score) for h in hits]
                    for q, hits in theirs.batch_search(texts, qids, k=k, threads=t).items()
                },
            }
            if run_bm25s is not None and threads == 1:
                systems["bm25s"] = lambda k=k: run_bm25s(texts, k)
            best = dict.fromkeys(systems, float("inf"))
            out: dict[str, Any] = {name: fn() for name, fn in systems.items()}  # warm-up
            for _ in range(args.repeats):  # interleaved, so drift hits every system alike
                for name, fn in systems.items():
                    t = time.perf_counter()
                    out[name] = fn()
                    best[name] = min(best[name], time.perf_counter() - t)
            identical = all(
                [(h.docid, h.score) for h in r.hits] == out["pyserini"][r.qid] for r in out["rarx"]
            )
            qps = {n: len(queries) / t for n, t in best.items()}
            ratio = qps["rarx"] / qps["pyserini"]
            vs_bm25s = qps["rarx"] / qps["bm25s"] if "bm25s" in qps else None
            rows.append((k, threads, f"{qps['rarx']:.1f}", f"{qps['pyserini']:.1f}",
                         f"{ratio:.3f}", f"{qps['bm25s']:.1f}" if vs_bm25s else "-",
                         f"{vs_bm25s:.3f}" if vs_bm25s else "-", identical))  # fmt: skip
            payload[f"k={k} threads={threads}"] = {
                "qps": qps,
                "ratio_to_pyserini": ratio,
                "ratio_to_bm25s": vs_bm25s,
                "identical_rankings": identical,
            }
    lucene_only = {k: lucene_search_qps(ours, texts, k, args.repeats) for k in ks}  # JIT warm
    for k, q in lucene_only.items():
        payload.setdefault(f"k={k} threads=1", {})["anserini_lucene_call_qps"] = q
    print(f"CACM, {len(queries)} topics, best of {args.repeats} interleaved rounds")
    print(
        "Anserini's query parsing + Lucene call, hits left in Java (1 thread): "
        + ", ".join(f"k={k}: {q:.0f} q/s" for k, q in lucene_only.items())
    )
    print(table(("k", "threads", "rarx q/s", "pyserini q/s", "ratio", "bm25s q/s",
                 "rarx/bm25s", "identical"), rows))  # fmt: skip
    write_result("bm25_overhead", {
        "command": "python benchmarks/bm25_overhead.py " + " ".join(sys.argv[1:]),
        "queries": len(queries),
        "bm25": {"k1": BM25.k1, "b": BM25.b},
        "bm25s": bm25s_note,
        "rarx_first_search_qps": {"k": max(ks), "qps": cold},
        "anserini_lucene_call": "Anserini's query parsing + IndexSearcher.search(query, k, "
                                "its sort, doDocScores=true), hits left in Java",
        "results": payload,
        "target": f"identical rankings; rarx >= {TARGET_PYSERINI} of pyserini's q/s and >= "
                  f"{TARGET_BM25S} of bm25s's (one thread)",
    })  # fmt: skip


if __name__ == "__main__":
    main()
