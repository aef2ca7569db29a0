"""BM25 search speed on CACM, in one process: rarx's two search paths over the same index,
the score matrix (``engine="matrix"``, the default; :mod:`rarx.index.matrix`) and Lucene
(``engine="lucene"``), vs pyserini's ``LuceneSearcher.batch_search`` and ``bm25s``
(sparse-matrix BM25, same k1/b, one thread), the reference users pick for speed. Targets:
both rarx paths identical to pyserini (every docid, score and rank), the matrix path >= 1.0
of bm25s's queries/s at k=10 and k=1000, and CACM MAP / P@30 of the matrix path's k=1000
run unchanged (Anserini's regression: 0.3123 / 0.1942).

Each round runs every system once over all topics, in turn, so drift on a shared machine
hits all alike; the best round counts, after an untimed warm-up round. rarx fills a table
from Lucene ids to docids as documents are first returned; its first search (empty table)
is reported apart. Anserini's query parsing plus its Lucene call, hits left in Java, is timed
too (after the rounds): what Anserini spends before it reads a single hit. bm25s's time
includes tokenising the queries and mapping its row numbers to docids; it tokenises with
its own regex and English stop words, without a stemmer, so its rankings differ from
Lucene's (it is a speed reference only).

bm25s is not a rarx dependency: ``pip install bm25s`` to get its column.

    python benchmarks/bm25_overhead.py [--repeats 5] [--ks 10,1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import ir_measures
import numpy as np
from common import WORK, cacm_bm25_index, data_dir, table, write_result

from rarx.index.lucene import LUCENE_DIR, Bm25BuildParams, LuceneIndex
from rarx.io.corpus import read_corpus
from rarx.io.topics import read_topics
from rarx.io.trec import write_run

BM25 = Bm25BuildParams()  # rarx's defaults (k1=0.9, b=0.4), given to bm25s too

TARGET_BM25S = 1.0  # the matrix path's queries/s over bm25s's
ANSERINI_CACM = {"AP": 0.3123, "P@30": 0.1942}  # Anserini's CACM BM25 regression


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


def cacm_quality(rankings: list[Any], qrels_path: Any) -> dict[str, float]:
    """MAP and P@30 of a run, as benchmarks/bm25_cacm.py measures them (ir-measures)."""
    path = WORK / "cacm-bm25-matrix.trec"
    write_run(path, rankings)
    run = list(ir_measures.read_trec_run(str(path)))
    qrels = list(ir_measures.read_trec_qrels(str(qrels_path)))
    measures = [ir_measures.parse_measure("AP"), ir_measures.parse_measure("P@30")]
    agg = ir_measures.calc_aggregate(measures, qrels, run)
    return {str(m): round(v, 4) for m, v in agg.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ks", default="10,1000")
    ap.add_argument("--threads", default="1", help="rarx lucene/pyserini threads to compare")
    args = ap.parse_args()
    cacm = data_dir() / "cacm"
    index_dir = cacm_bm25_index()
    queries = read_topics(cacm / "topics.cacm.txt")
    lucene = LuceneIndex.load(index_dir, engine="lucene")  # starts the JVM the rarx way
    matrix = LuceneIndex.load(index_dir, engine="matrix")
    from pyserini.search.lucene import LuceneSearcher  # reuses the running JVM

    theirs = LuceneSearcher(str(index_dir / LUCENE_DIR))  # k1=0.9, b=0.4 by default, as ours
    texts, qids = [q.text for q in queries], [q.qid for q in queries]
    run_bm25s, bm25s_note = bm25s_system(cacm)
    print(bm25s_note)
    ks = [int(x) for x in args.ks.split(",")]
    for _ in range(3):  # warm the JIT on pyserini's path, so rarx's first search is cold
        theirs.batch_search(texts, qids, k=max(ks), threads=1)
    t = time.perf_counter()
    lucene.search(queries, max(ks))
    cold = len(queries) / (time.perf_counter() - t)
    print(f"rarx lucene, first search (empty Lucene-id-to-docid table), k={max(ks)}: "
          f"{cold:.1f} q/s")  # fmt: skip
    sizes = {
        "matrix_bytes": sum(f.stat().st_size for f in (index_dir / "matrix").iterdir()),
        "lucene_bytes": sum(f.stat().st_size for f in (index_dir / LUCENE_DIR).iterdir()),
    }
    build_seconds = matrix._matrix.manifest["build_seconds"] if matrix._matrix else None

    rows, payload = [], {}
    quality = None
    for k in ks:
        for threads in (int(x) for x in args.threads.split(",")):
            systems: dict[str, Callable[[], Any]] = {
                "matrix": lambda k=k: matrix.search(queries, k),
                "lucene": lambda k=k, t=threads: lucene.search(queries, k, threads=t),
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
            identical = {
                name: all(
                    [(h.docid, h.score) for h in r.hits] == out["pyserini"][r.qid]
                    for r in out[name]
                )
                for name in ("matrix", "lucene")
            }
            if k == 1000:
                quality = cacm_quality(out["matrix"], cacm / "qrels.cacm.txt")
            qps = {n: len(queries) / t for n, t in best.items()}
            vs_bm25s = qps["matrix"] / qps["bm25s"] if "bm25s" in qps else None
            rows.append((k, threads, f"{qps['matrix']:.0f}", f"{qps['lucene']:.0f}",
                         f"{qps['pyserini']:.0f}", f"{qps['bm25s']:.0f}" if vs_bm25s else "-",
                         f"{vs_bm25s:.2f}" if vs_bm25s else "-",
                         f"{qps['matrix'] / qps['pyserini']:.2f}",
                         f"{qps['lucene'] / qps['pyserini']:.2f}",
                         identical["matrix"], identical["lucene"]))  # fmt: skip
            payload[f"k={k} threads={threads}"] = {
                "qps": qps,
                "matrix_to_bm25s": vs_bm25s,
                "matrix_to_pyserini": qps["matrix"] / qps["pyserini"],
                "lucene_to_pyserini": qps["lucene"] / qps["pyserini"],
                "lucene_to_bm25s": qps["lucene"] / qps["bm25s"] if "bm25s" in qps else None,
                "identical_to_pyserini": identical,
            }
    lucene_only = {k: lucene_search_qps(lucene, texts, k, args.repeats) for k in ks}  # JIT warm
    for k, q in lucene_only.items():
        payload.setdefault(f"k={k} threads=1", {})["anserini_lucene_call_qps"] = q
    print(f"CACM, {len(queries)} topics, best of {args.repeats} interleaved rounds")
    print(
        "Anserini's query parsing + Lucene call, hits left in Java (1 thread): "
        + ", ".join(f"k={k}: {q:.0f} q/s" for k, q in lucene_only.items())
    )
    print(table(("k", "threads", "matrix q/s", "lucene q/s", "pyserini q/s", "bm25s q/s",
                 "matrix/bm25s", "matrix/pyserini", "lucene/pyserini", "matrix identical",
                 "lucene identical"), rows))  # fmt: skip
    if quality is not None:
        print(f"CACM, matrix path, k=1000: MAP {quality['AP']}, P@30 {quality['P@30']} "
              f"(Anserini: {ANSERINI_CACM['AP']}, {ANSERINI_CACM['P@30']})")  # fmt: skip
    print(
        f"matrix {sizes['matrix_bytes'] / 2**20:.1f} MiB beside a "
        f"{sizes['lucene_bytes'] / 2**20:.1f} MiB Lucene index; built in {build_seconds} s"
    )
    write_result("bm25_overhead", reportable=reportable, payload={
        "command": "python benchmarks/bm25_overhead.py " + " ".join(sys.argv[1:]),
        "queries": len(queries),
        "bm25": {"k1": BM25.k1, "b": BM25.b},
        "bm25s": bm25s_note,
        "rarx_lucene_first_search_qps": {"k": max(ks), "qps": cold},
        "anserini_lucene_call": "Anserini's query parsing + IndexSearcher.search(query, k, "
                                "its sort, doDocScores=true), hits left in Java",
        "results": payload,
        "cacm_matrix_k1000": quality,
        "anserini_cacm": ANSERINI_CACM,
        "sizes": sizes,
        "matrix_build_seconds": build_seconds,
        "target": f"identical rankings; matrix >= {TARGET_BM25S} of bm25s's q/s at every k "
                  "(one thread); CACM MAP/P@30 unchanged",
    })  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: queries per second of each engine per k (one thread), CACM
    effectiveness of the matrix path and Anserini, index sizes."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section

    qps = []
    for setting, r in data["results"].items():
        qps += [M(engine, setting, "queries/s", v, n=data["queries"])
                for engine, v in r["qps"].items()]  # fmt: skip
        if r.get("anserini_lucene_call_qps") is not None:
            qps.append(M("anserini (Java call)", setting, "queries/s",
                         r["anserini_lucene_call_qps"], n=data["queries"]))
    quality = [M(name, "CACM", m, v) for name, key in (("rarx matrix (k=1000)",
               "cacm_matrix_k1000"), ("anserini", "anserini_cacm"))
               for m, v in data[key].items()]  # fmt: skip
    sizes = [M(k.removesuffix("_bytes"), "index", "bytes", v) for k, v in data["sizes"].items()]
    return Reportable("bm25_overhead", (
        Section("bm25-overhead", "BM25 search speed: rarx matrix and Lucene, pyserini, bm25s",
                tuple(qps), note=data.get("target", "")),
        Section("bm25-overhead-cacm", "BM25 on CACM: the matrix path and Anserini",
                tuple(quality), plot="table"),
        Section("bm25-overhead-sizes", "BM25 index sizes", tuple(sizes), plot="table"),
    ), f"{data['queries']} queries; {data['bm25s']}", dict(data["bm25"]))


if __name__ == "__main__":
    main()
