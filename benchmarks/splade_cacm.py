"""SPLADE (``rarx index --kind splade``, splade-tiny, quantisation 100) on CACM, beside BM25.

- Quality: MAP, P@30 and nDCG@10 over CACM's 52 judged topics (1000 hits, ir-measures)
  of splade-tiny alone, BM25 alone, and the two fused with RRF (``rarx search --index A
  --index B``), each run through the real CLI.
- Search speed: rarx's ``ImpactIndex.search_impacts`` on both its paths (the score matrix,
  the default, and Lucene) vs pyserini's own ``LuceneImpactSearcher.batch_search`` on the
  same index with the same integer query impacts (target: identical rankings, faster than
  pyserini), one process, best of interleaved rounds; query encoding (the same for all)
  is timed apart. ``--speed-only`` runs just this (and the CACM build it needs).
- Build: time, peak RSS and size on disk of the CACM index, and of generated passages
  (benchmarks/corpus_gen.py; 100,000 by default) with the BM25 index of the same corpus
  for scale. Encoding dominates: the MLM head's 30,522 logits per token.

    python benchmarks/splade_cacm.py [--quick] [--scale-size N] [--device cuda] [--speed-only]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ir_measures
from bm25_scale import BUILD_CHILD as CHILD
from bm25_scale import write_corpus
from common import WORK, data_dir, rarx_cli, table, write_result

from rarx.io.topics import read_topics

MEASURES = ("AP", "P@30", "nDCG@10")
TARGET = 0.95


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def build(corpus: Path, index: Path, kind: str, extra: list[str]) -> dict[str, Any]:
    """``rarx index`` in a fresh process: its seconds and peak RSS, and the index's size."""
    args = ["index", "--corpus", str(corpus), "--index", str(index), "--kind", kind,
            "--overwrite", "--quiet", *extra]  # fmt: skip
    out = subprocess.run([sys.executable, "-c", CHILD, *args], check=True, capture_output=True,
                         text=True)  # fmt: skip
    child = json.loads(out.stdout.strip().splitlines()[-1])
    manifest = json.loads((index / "rarx_index.json").read_text())
    sizes = {"total_mb": round(dir_mb(index), 2)}
    for part in ("lucene", "docstore.parquet"):
        if (index / part).exists():
            p = index / part
            sizes[f"{part.split('.')[0]}_mb"] = round(dir_mb(p) if p.is_dir() else
                                                      p.stat().st_size / 2**20, 2)  # fmt: skip
    return {"documents": manifest["documents"], "seconds": round(child["seconds"], 1),
            "docs_per_second": round(manifest["documents"] / child["seconds"], 1),
            "peak_rss_mb": round(child["peak_rss_mb"]), **sizes,
            "params": manifest["params"]}  # fmt: skip


def quality(cacm: Path, splade: Path, bm25: Path) -> dict[str, dict[str, float]]:
    qrels = list(ir_measures.read_trec_qrels(str(cacm / "qrels.cacm.txt")))
    measures = [ir_measures.parse_measure(m) for m in MEASURES]
    out = {}
    for name, indexes in (("splade-tiny", [splade]), ("bm25", [bm25]),
                          ("rrf(splade-tiny, bm25)", [splade, bm25])):  # fmt: skip
        run = WORK / f"cacm-{name.replace('(', '-').replace(', ', '-').rstrip(')')}.trec"
        flags = [a for p in indexes for a in ("--index", str(p))]
        rarx_cli("search", *flags, "--topics", str(cacm / "topics.cacm.txt"), "--k", "1000",
                 "--fusion-depth", "1000", "-o", str(run), "--quiet")  # fmt: skip
        agg = ir_measures.calc_aggregate(measures, qrels, ir_measures.read_trec_run(str(run)))
        out[name] = {str(m): round(v, 4) for m, v in agg.items()}
    return out


class PreEncoded:
    """A pyserini query encoder handing back rarx's integer impacts for each query text."""

    def __init__(self, impacts: dict[str, dict[str, int]]):
        self.impacts = impacts

    def encode(self, text: str) -> dict[str, int]:
        return self.impacts[text]


def speed(index_dir: Path, cacm: Path, repeats: int, ks: list[int], threads: list[int]) -> dict:
    from rarx.index.impact import ImpactIndex

    queries = read_topics(cacm / "topics.cacm.txt")
    texts, qids = [q.text for q in queries], [q.qid for q in queries]
    ours = ImpactIndex.load(index_dir, engine="matrix")
    lucene = ImpactIndex.load(index_dir, engine="lucene", encoder=None)
    t = time.perf_counter()
    impacts = ours.encode_queries(texts)  # loads the model; timed again below
    first_encode = time.perf_counter() - t
    encode = min(_timed(lambda: ours.encode_queries(texts)) for _ in range(repeats))
    from pyserini.search.lucene import LuceneImpactSearcher  # reuses the running JVM

    by_text = dict(zip(texts, impacts, strict=True))
    theirs = LuceneImpactSearcher(str(index_dir / "lucene"), PreEncoded(by_text))
    # pyserini drops query terms with idf <= 0 (in every document); Anserini keeps them.
    dropped = sum(1 for m in impacts for t in m if t in theirs.idf and theirs.idf[t] <= 0)
    for _ in range(3):  # warm the JIT on pyserini's path, so rarx's first search is cold
        theirs.batch_search(texts, qids, k=max(ks), threads=1)
    t = time.perf_counter()
    lucene.search_impacts(qids, impacts, max(ks))
    cold = len(qids) / (time.perf_counter() - t)
    results: dict[str, Any] = {
        "queries": len(qids),
        "encode_queries_per_second": round(len(qids) / encode, 1),
        "first_encode_seconds_with_model_load": round(first_encode, 2),
        "rarx_lucene_first_search_qps": round(cold, 1),
        "query_terms_pyserini_drops": dropped,
        "mean_query_terms": round(sum(map(len, impacts)) / len(impacts), 1),
    }
    rows = []
    for k in ks:
        for n in threads:
            systems: dict[str, Callable[[], Any]] = {
                "matrix": lambda k=k: ours.search_impacts(qids, impacts, k),
                "lucene": lambda k=k, n=n: lucene.search_impacts(qids, impacts, k, threads=n),
                # Same output as rarx's: python (docid, score) pairs per query.
                "pyserini": lambda k=k, n=n: {
                    q: [(h.docid, h.score) for h in hits]
                    for q, hits in theirs.batch_search(texts, qids, k=k, threads=n).items()
                },
            }
            best = dict.fromkeys(systems, float("inf"))
            out = {name: fn() for name, fn in systems.items()}  # warm-up
            for _ in range(repeats):  # interleaved, so drift hits both alike
                for name, fn in systems.items():
                    best[name] = min(best[name], _timed(fn))
            identical = {
                name: all([(h.docid, h.score) for h in r.hits] == out["pyserini"][r.qid]
                          for r in out[name])
                for name in ("matrix", "lucene")
            }  # fmt: skip
            qps = {name: len(qids) / s for name, s in best.items()}
            ratio = {name: qps[name] / qps["pyserini"] for name in ("matrix", "lucene")}
            rows.append((k, n, f"{qps['matrix']:.1f}", f"{qps['lucene']:.1f}",
                         f"{qps['pyserini']:.1f}", f"{ratio['matrix']:.2f}",
                         f"{ratio['lucene']:.2f}", identical["matrix"],
                         identical["lucene"]))  # fmt: skip
            results[f"k={k} threads={n}"] = {
                "qps": {name: round(v, 1) for name, v in qps.items()},
                "ratio_to_pyserini": {name: round(v, 3) for name, v in ratio.items()},
                "identical_rankings": identical,
            }
    end_to_end = min(_timed(lambda: ours.search(queries, 1000)) for _ in range(repeats))
    results["rarx_encode_and_search_qps_k1000"] = round(len(qids) / end_to_end, 1)
    print(table(("k", "threads", "matrix q/s", "lucene q/s", "pyserini q/s", "matrix/pyserini",
                 "lucene/pyserini", "matrix identical", "lucene identical"), rows))  # fmt: skip
    print(
        f"query encoding (splade-tiny, batched): {results['encode_queries_per_second']} q/s; "
        f"rarx encode + search, k=1000: {results['rarx_encode_and_search_qps_k1000']} q/s"
    )
    return results


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds, 2,000 passages to scale")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scale-size", type=int, default=100_000)
    ap.add_argument("--device", default=None, help="encoding device, e.g. cuda (default: auto)")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep the CACM splade index (and its build figures) of an earlier run",
    )
    ap.add_argument(
        "--speed-only",
        action="store_true",
        help="only the search-speed comparison (builds CACM's index unless --reuse)",
    )
    args = ap.parse_args()
    repeats, scale = (2, 2000) if args.quick else (args.repeats, args.scale_size)
    device = ["--device", args.device] if args.device else []
    cacm = data_dir() / "cacm"
    splade_dir = WORK / "indexes" / "cacm-splade"
    # Every build first, from this small process: a child's peak RSS counts its parent's
    # at fork (Linux keeps the high-water mark across exec), and speed() loads torch.
    recorded = WORK / "cacm-splade-build.json"  # the figures of the build --reuse keeps
    if not (args.reuse and recorded.is_file() and (splade_dir / "rarx_index.json").is_file()):
        recorded.write_text(json.dumps(build(cacm / "corpus.jsonl", splade_dir, "splade", device)))
    builds = {"cacm splade": json.loads(recorded.read_text())}
    if args.speed_only:
        search = speed(splade_dir, cacm, repeats, [10, 1000], [1])
        write_result("splade_speed", reportable=reportable, payload={
            "command": "python benchmarks/splade_cacm.py --speed-only"
                       + (" --reuse" if args.reuse else "") + f" --repeats {repeats}",
            "model": "splade-tiny", "search": search, "build": builds["cacm splade"],
            "note": "same index and integer query impacts for all, query encoding excluded",
        })  # fmt: skip
        return
    bm25_dir = WORK / "indexes" / "cacm-bm25"
    builds["cacm bm25"] = build(cacm / "corpus.jsonl", bm25_dir, "bm25", [])
    corpus, corpus_mb = write_corpus(scale)
    print(f"building {scale:,} generated passages ({corpus_mb:.0f} MB)...", flush=True)
    for kind, extra in (("splade", device), ("bm25", [])):
        index = WORK / "scale" / f"{kind}-{scale}"
        builds[f"{scale} passages {kind}"] = build(Path(corpus), index, kind, extra)
    rows = [(name, b["documents"], f"{b['seconds']:.1f}", f"{b['docs_per_second']:.1f}",
             b["peak_rss_mb"], f"{b['total_mb']:.2f}") for name, b in builds.items()]  # fmt: skip
    print(table(("build", "docs", "seconds", "docs/s", "peak RSS MB", "size MB"), rows))
    figures = quality(cacm, splade_dir, bm25_dir)
    print(table(("system", *MEASURES), [(n, *(f[m] for m in MEASURES))
                                        for n, f in figures.items()]))  # fmt: skip
    search = speed(splade_dir, cacm, repeats, [10, 1000], [1, 2])
    flags = (" --quick" if args.quick else f" --scale-size {scale}") + (
        " --reuse" if args.reuse else ""
    )
    write_result(
        "splade_cacm",
        reportable=reportable, payload={
            "command": "python benchmarks/splade_cacm.py" + flags + " ".join([""] + device),
            "model": "splade-tiny",
            "quantization": 100,
            "quality": figures,
            "search": search,
            "builds": builds,  # with --reuse, "cacm splade" is the earlier run's build
            "scale_corpus_mb": round(corpus_mb, 1),
            "target": f"identical rankings; rarx >= {TARGET} of pyserini's impact search q/s",
            "note": "CACM: 52 judged topics, 1000 hits, ir-measures; RRF k=60 over 1000 hits "
            "each. Search speed: same index and integer query impacts for both, query encoding "
            "excluded (timed apart). Two shared cores: ratios are noisy.",
        },
    )


def reportable(data: dict) -> object:
    """The report section of ``splade_cacm.json`` (quality on CACM, search speed against
    pyserini) and ``splade_speed.json`` (search speed of the matrix and Lucene paths)."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section

    search = data["search"]
    qps = []
    for setting, v in search.items():
        if isinstance(v, dict) and isinstance(v.get("qps"), dict):
            qps += [M(engine, setting, "queries/s", q, n=search["queries"])
                    for engine, q in v["qps"].items()]  # fmt: skip
    sections = []
    if data.get("quality"):
        sections.append(Section("splade-cacm", "SPLADE-tiny, BM25 and their fusion on CACM",
                                tuple(M(system, "CACM", m, v) for system, figs in
                                      data["quality"].items() for m, v in figs.items())))
    sections.append(Section(f"{data['benchmark'].replace('_', '-')}-search",
                            "SPLADE search speed (query encoding excluded)", tuple(qps)))
    builds = data.get("builds") or ({"cacm splade": data["build"]} if data.get("build") else {})
    if builds:
        sections.append(Section(f"{data['benchmark'].replace('_', '-')}-builds", "SPLADE and "
                                "BM25 builds", tuple(M(name, "build", m, b[m]) for name, b in
                                builds.items() for m in ("seconds", "docs_per_second",
                                "peak_rss_mb", "total_mb") if b.get(m) is not None), plot="table"))
    return Reportable(data["benchmark"], tuple(sections), f"{data['model']}",
                      {"command": data.get("command")})


if __name__ == "__main__":
    main()
