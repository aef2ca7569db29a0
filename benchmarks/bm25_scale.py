"""Scale: BM25 over generated corpora (realistic ~60-word passages) up to 1,000,000
passages, each step in a fresh process that reports its own peak RSS (the JVM runs inside
rarx's processes, so its heap is included):

- build: ``rarx index`` (Lucene, then the score matrix read from it): seconds, passages/s,
  peak RSS, the matrix's own build seconds and its size beside the Lucene index's;
- search: rarx's default path (the score matrix, in RAM) at k=10 and k=1000, one thread,
  queries/s over generated keyword queries; then identity with Anserini: the first
  ``--identity`` queries at k=1000 through the Lucene path, every docid, score and rank
  compared (and the Lucene path's queries/s on them);
- mmap: the same search with the matrix left on disk (``matrix_memory="mmap"``, page cache warm);
- bm25s: ``bm25s`` (0.3.16, numpy backend, same k1/b, one thread) indexing the same corpus
  and answering the same queries (its own tokenizer: a speed reference, not the same ranking).

Each finished step is saved (``benchmarks/work/scale/state-N.json``) and skipped when the
script runs again, so a long run resumes where it stopped; ``--fresh`` starts over.
Targets: peak RSS of the build < 4 GB at 1M; search identical to Anserini; matrix q/s >=
bm25s's.

    python benchmarks/bm25_scale.py [--sizes 1000000] [--steps build,search,mmap,bm25s]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import WORK, table, write_result
from corpus_gen import generate_passages

# Runs the real CLI in a fresh process and reports that process's own peak RSS.
BUILD_CHILD = """
import json, resource, sys, time
from rarx.cli.main import cli
t = time.perf_counter()
cli.main(args=sys.argv[1:], standalone_mode=False)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

SEARCH_CHILD = """
import json, resource, sys, time
sys.path.insert(0, "benchmarks")
from corpus_gen import generate_queries
from rarx.index.lucene import LuceneIndex
index_dir, memory = sys.argv[1], sys.argv[4]
n_queries, n_identity = int(sys.argv[2]), int(sys.argv[3])
queries = list(generate_queries(n_queries))
t = time.perf_counter()
index = LuceneIndex.load(index_dir, engine="matrix", matrix_memory=memory)
out = {"load_seconds": time.perf_counter() - t, "queries": n_queries, "qps": {}}
for k in (10, 1000):
    index.search(queries[:50], k)  # warm-up
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        matrix = index.search(queries, k)
        best = min(best, time.perf_counter() - t)
    out["qps"][str(k)] = n_queries / best
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if n_identity:
    lucene = LuceneIndex.load(index_dir, engine="lucene")
    subset = queries[:n_identity]
    lucene.search(subset[:20], 1000)  # warm-up
    t = time.perf_counter()
    expected = lucene.search(subset, 1000)
    out["lucene_qps_1000"] = n_identity / (time.perf_counter() - t)
    got = index.search(subset, 1000)
    same = [list(zip(a.docids, a.scores.tolist())) == list(zip(b.docids, b.scores.tolist()))
            for a, b in zip(got, expected)]
    out["identity"] = {"queries": n_identity, "k": 1000, "identical": sum(same),
                       "hits": sum(len(r) for r in expected)}
print(json.dumps(out))
"""

BM25S_CHILD = """
import json, resource, sys, time
sys.path.insert(0, "benchmarks")
import numpy as np
import bm25s
from corpus_gen import generate_queries
corpus, n_queries = sys.argv[1], int(sys.argv[2])
ids, texts = [], []
with open(corpus, encoding="utf-8") as f:
    for line in f:
        d = json.loads(line)
        ids.append(d["_id"])
        texts.append(d["title"] + "\\n" + d["text"] if d["title"] else d["text"])
docids = np.array(ids, dtype=object)
t = time.perf_counter()
model = bm25s.BM25(k1=0.9, b=0.4)
model.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
out = {"build_seconds": time.perf_counter() - t, "qps": {}}
del texts
queries = [q.text for q in generate_queries(n_queries)]
for k in (10, 1000):
    def run():
        tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False, return_ids=False)
        rows, scores = model.retrieve(tokens, k=k, n_threads=1, show_progress=False)
        return docids[rows], scores
    run()
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    out["qps"][str(k)] = n_queries / best
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["version"] = bm25s.__version__
print(json.dumps(out))
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


def child(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"step failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def run_size(n: int, steps: list[str], args: argparse.Namespace) -> dict[str, Any]:
    state_path = WORK / "scale" / f"state-{n}.json"
    state: dict[str, Any] = {} if args.fresh or not state_path.exists() else json.loads(
        state_path.read_text())  # fmt: skip
    corpus, mb = write_corpus(n)
    index = WORK / "scale" / f"bm25-{n}"
    state.update(passages=n, corpus_mb=round(mb, 1))

    def save() -> None:
        state_path.write_text(json.dumps(state, indent=1))

    for step in steps:
        if step in state:
            print(f"{n:,}: {step} done before (resumed)", flush=True)
            continue
        t = time.perf_counter()
        if step == "build":
            r = child(BUILD_CHILD, "index", "--corpus", corpus, "--index", str(index), "--kind",
                      "bm25", "--threads", str(args.threads), "--overwrite", "--quiet")  # fmt: skip
            matrix = json.loads((index / "matrix" / "matrix.json").read_text())
            r.update(passages_per_second=n / r["seconds"], matrix_build_seconds=matrix[
                "build_seconds"], matrix_bytes=dir_bytes(index / "matrix"),
                lucene_bytes=dir_bytes(index / "lucene"), postings=matrix["postings"],
                terms=matrix["terms"])  # fmt: skip
        elif step == "search":
            r = child(SEARCH_CHILD, str(index), str(args.queries), str(args.identity), "ram")
        elif step == "mmap":
            r = child(SEARCH_CHILD, str(index), str(args.queries), "0", "mmap")
        elif step == "bm25s":
            r = child(BM25S_CHILD, corpus, str(args.queries))
        else:
            raise SystemExit(f"unknown step {step!r}")
        r["step_seconds"] = time.perf_counter() - t
        state[step] = r
        save()
        print(f"{n:,}: {step}: {json.dumps(r)}", flush=True)
    return state


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--threads", type=int, default=2, help="indexing threads")
    ap.add_argument("--queries", type=int, default=1000, help="timed generated queries")
    ap.add_argument("--identity", type=int, default=200, help="queries compared with Lucene")
    ap.add_argument("--steps", default="build,search,mmap,bm25s")
    ap.add_argument("--fresh", action="store_true", help="ignore saved steps")
    args = ap.parse_args()
    steps = args.steps.split(",")
    results, rows = [], []
    for n in (int(s) for s in args.sizes.split(",")):
        s = run_size(n, steps, args)
        results.append(s)
        b, se, mm, bs = (s.get(x, {}) for x in ("build", "search", "mmap", "bm25s"))

        def q(d: dict[str, Any], k: str) -> str:
            return f"{d['qps'][k]:.0f}" if d.get("qps") else "-"

        ratio = {k: (f"{se['qps'][k] / bs['qps'][k]:.2f}" if se.get("qps") and bs.get("qps")
                     else "-") for k in ("10", "1000")}  # fmt: skip
        ident = se.get("identity", {})
        mib = {key: f"{b.get(key, 0) / 2**20:.0f}" for key in ("matrix_bytes", "lucene_bytes")}
        rows.append((
            f"{n:,}", f"{b.get('seconds', 0):.0f}", f"{b.get('matrix_build_seconds', 0):.0f}",
            mib["matrix_bytes"], mib["lucene_bytes"], f"{b.get('peak_rss_mb', 0):.0f}",
            q(se, "10"), q(se, "1000"), q(mm, "10"), q(mm, "1000"), q(bs, "10"), q(bs, "1000"),
            ratio["10"], ratio["1000"], f"{se.get('peak_rss_mb', 0):.0f}",
            f"{bs.get('peak_rss_mb', 0):.0f}", f"{bs.get('build_seconds', 0):.0f}",
            f"{ident.get('identical', '-')}/{ident.get('queries', '-')}",
        ))  # fmt: skip
        write_result("bm25_scale", reportable=reportable, payload={
            "command": "python benchmarks/bm25_scale.py " + " ".join(sys.argv[1:]),
            "partial": any(x not in s for x in steps),
            "results": results,
            "target": "build peak RSS < 4096 MB at 1,000,000 passages; matrix search "
                      "identical to Anserini (k=1000) and >= bm25s's q/s",
        })  # fmt: skip
    print(table(("passages", "build s", "matrix s", "matrix MiB", "lucene MiB", "build RSS",
                 "matrix q/s k10", "k1000", "mmap k10", "k1000", "bm25s k10", "k1000",
                 "ratio k10", "k1000", "search RSS", "bm25s RSS", "bm25s build s",
                 "identical"), rows))  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: queries per second of each search step per k at each corpus
    size, and the build's time and memory."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section

    qps, build = [], []
    for r in data["results"]:
        size = f"{r['passages']:,} passages"
        for step, v in r.items():
            if isinstance(v, dict) and isinstance(v.get("qps"), dict):
                qps += [M(step, f"{size}, k={k}", "queries/s", q, n=v.get("queries"))
                        for k, q in v["qps"].items()]  # fmt: skip
        b = r.get("build") or {}
        build += [M("build", size, m, b[m])
                  for m in ("seconds", "peak_rss_mb", "passages_per_second",
                            "matrix_build_seconds") if b.get(m) is not None]  # fmt: skip
    return Reportable("bm25_scale", (
        Section("bm25-scale", "BM25 at scale: search speed", tuple(qps),
                note=data.get("target", "")),
        Section("bm25-scale-build", "BM25 at scale: build", tuple(build), plot="table"),
    ), data.get("command", ""), {"partial": data.get("partial")})


if __name__ == "__main__":
    main()
