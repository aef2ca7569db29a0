"""``--engine ray`` at scale: dense and BM25 builds on Ray against the local build.

- Dense (MiniLM + flat faiss) on N generated passages: the local build, then Ray with
  each worker count; build time, encode throughput (the encoding phase alone), speed-up
  and scaling efficiency against 1 worker, and the Ray overhead at 1 worker (local
  build time / Ray build time; target >= 0.9). Every Ray build must equal the local one
  byte for byte (embeddings, faiss index, docstore).
- BM25: CACM built locally and as merged Ray shards must give the identical TREC run
  (52+ topics, 1000 hits, BM25 and BM25+RM3); then N generated passages (1M by default)
  built locally and on Ray, timed, with identical rankings for generated queries.

Ray starts on this machine with all its cores (the workers split them evenly; a GPU
each when there are GPUs).

    python benchmarks/ray_scale.py [--workers 1,2] [--dense-passages 100000]
                                   [--bm25-passages 1000000] [--quick]
    python benchmarks/ray_scale.py --workers 1,2,4,8        # a 16-core (GPU) machine
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bm25_scale import write_corpus
from common import WORK, data_dir, table, write_result
from corpus_gen import generate_queries

OUT = WORK / "ray_scale"
DENSE_FILES = ("embeddings.f32", "faiss.index", "docstore.parquet")


def _same_files(a: Path, b: Path, names: tuple[str, ...]) -> bool:
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def dense(n: int, workers: list[int], model: str, batch_size: int) -> dict[str, Any]:
    from rarx.distributed import RayEngine
    from rarx.distributed.corpus import iter_documents, read_blocks
    from rarx.distributed.dense import RayEncoder
    from rarx.index.dense import DenseIndex
    from rarx.io.corpus import Corpus
    from rarx.models.encoder import EncoderConfig

    corpus, _ = write_corpus(n)
    local_path = OUT / f"dense-local-{n}"
    print(f"dense: local build of {n:,} passages ...", flush=True)
    t = time.perf_counter()
    DenseIndex.build(Corpus(corpus), local_path, model=model, batch_size=batch_size,
                     overwrite=True, quiet=True)  # fmt: skip
    local_s = time.perf_counter() - t
    rows = []
    for w in workers:
        print(f"dense: Ray, {w} worker(s) ...", flush=True)
        path = OUT / f"dense-ray{w}-{n}"
        t0 = time.perf_counter()
        placement = RayEngine(w).connect()
        refs = read_blocks(corpus)  # Ray Data reads and checks the corpus
        t1 = time.perf_counter()
        encoder = RayEncoder(EncoderConfig(model=model), placement)
        encoder.pool.start()  # each worker loads the model
        t2 = time.perf_counter()
        try:
            DenseIndex.build(iter_documents(refs, release=True), path, batch_size=batch_size,
                             overwrite=True, quiet=True, encoder=encoder)  # fmt: skip
        finally:
            encoder.close()
        t3 = time.perf_counter()
        rows.append({
            "workers": w, "cpus_per_worker": placement.cpus, "gpus_per_worker": placement.gpus,
            "device": encoder.pool.info.get("device"), "build_s": t3 - t0, "read_s": t1 - t0,
            "model_load_s": t2 - t1, "encode_s": t3 - t2, "passages_per_s": n / (t3 - t2),
            "identical_to_local": _same_files(path, local_path, DENSE_FILES),
        })  # fmt: skip
        shutil.rmtree(path)
    base = rows[0]
    for r in rows:
        r["speedup"] = base["build_s"] / r["build_s"]
        r["scaling_efficiency"] = r["speedup"] * base["workers"] / r["workers"]
    one = next((r for r in rows if r["workers"] == 1), None)
    return {
        "passages": n, "model": model, "batch_size": batch_size, "faiss": "flat",
        "local_build_s": local_s, "local_passages_per_s": n / local_s, "ray": rows,
        "overhead_ratio_1_worker": local_s / one["build_s"] if one else None,
    }  # fmt: skip


def _run_text(index: Any, queries: list[Any], k: int) -> str:
    return "".join(
        f"{r.qid} Q0 {d} {i} {s:.6f} rarx\n"
        for r in index.search(queries, k)
        for i, (d, s) in enumerate(zip(r.docids, r.scores.tolist(), strict=True), 1)
    )


def bm25_cacm(workers: list[int]) -> dict[str, Any]:
    from rarx.distributed import RayEngine
    from rarx.distributed.bm25 import build_bm25
    from rarx.index.lucene import Bm25BuildParams, LuceneIndex
    from rarx.io.corpus import Corpus
    from rarx.io.topics import read_topics

    cacm = data_dir() / "cacm"
    topics = read_topics(cacm / "topics.cacm.txt")
    local = LuceneIndex.build(Corpus(cacm / "corpus.jsonl"), OUT / "cacm-local", overwrite=True,
                              quiet=True)  # fmt: skip
    out: dict[str, Any] = {"topics": len(topics), "hits": 1000}
    for w in workers:
        built = build_bm25(cacm / "corpus.jsonl", OUT / f"cacm-ray{w}", Bm25BuildParams(),
                           RayEngine(w), overwrite=True, quiet=True)  # fmt: skip
        same = {}
        for name, options in (("bm25", {}), ("bm25+rm3", {"rm3": True})):
            a = _run_text(LuceneIndex.load(local.path, **options), topics, 1000)
            b = _run_text(LuceneIndex.load(built.path, **options), topics, 1000)
            same[name] = a == b
        out[f"identical_run_{w}_workers"] = same
    return out


def bm25_scale(n: int, workers: list[int]) -> dict[str, Any]:
    from rarx.distributed import RayEngine
    from rarx.distributed.bm25 import build_bm25
    from rarx.index.lucene import Bm25BuildParams, LuceneIndex
    from rarx.io.corpus import Corpus

    corpus, mb = write_corpus(n)
    threads = os.cpu_count() or 1
    print(f"bm25: local build of {n:,} passages ({threads} threads) ...", flush=True)
    t = time.perf_counter()
    local = LuceneIndex.build(Corpus(corpus), OUT / f"bm25-local-{n}", threads=threads,
                              overwrite=True, quiet=True)  # fmt: skip
    local_s = time.perf_counter() - t
    queries = list(generate_queries(200))
    expected = local.search(queries, 100)
    rows = []
    for w in workers:
        print(f"bm25: Ray, {w} shard(s) ...", flush=True)
        t = time.perf_counter()
        built = build_bm25(corpus, OUT / f"bm25-ray{w}-{n}", Bm25BuildParams(), RayEngine(w),
                           overwrite=True, quiet=True)  # fmt: skip
        seconds = time.perf_counter() - t
        rows.append({"workers": w, "build_s": seconds, "passages_per_s": n / seconds,
                     "identical_rankings": built.search(queries, 100) == expected})  # fmt: skip
        built.close()
        shutil.rmtree(built.path)
    local.close()
    shutil.rmtree(local.path)
    return {"passages": n, "corpus_mb": round(mb, 1), "local_threads": threads,
            "local_build_s": local_s, "ray": rows}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--dense-passages", type=int, default=100_000)
    ap.add_argument("--bm25-passages", type=int, default=1_000_000)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--skip", choices=("dense", "bm25"), action="append", default=[])
    ap.add_argument("--quick", action="store_true", help="2,000 dense and 20,000 BM25 passages")
    args = ap.parse_args()
    if args.quick:
        args.dense_passages, args.bm25_passages = 2_000, 20_000
    workers = [int(w) for w in args.workers.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)

    from rarx.distributed import RayEngine
    from rarx.distributed.cluster import ray

    RayEngine(max(workers)).connect()  # one local Ray instance for every build
    cluster = {k: v for k, v in ray().cluster_resources().items() if k in ("CPU", "GPU")}
    result: dict[str, Any] = {"cluster": cluster, "workers": workers}
    if "dense" not in args.skip:
        d = dense(args.dense_passages, workers, args.model, args.batch_size)
        result["dense"] = d
        print(table(
            ("workers", "build s", "encode p/s", "load s", "speed-up", "efficiency", "identical"),
            [("local", f"{d['local_build_s']:.1f}", f"{d['local_passages_per_s']:.1f}", "-",
              "-", "-", "-")]
            + [(r["workers"], f"{r['build_s']:.1f}", f"{r['passages_per_s']:.1f}",
                f"{r['model_load_s']:.1f}", f"{r['speedup']:.2f}",
                f"{r['scaling_efficiency']:.2f}", r["identical_to_local"]) for r in d["ray"]],
        ))  # fmt: skip
        if d["overhead_ratio_1_worker"] is not None:
            print(f"Ray overhead at 1 worker: local/ray = {d['overhead_ratio_1_worker']:.3f} "
                  "(target >= 0.9)")  # fmt: skip
    if "bm25" not in args.skip:
        result["bm25_cacm"] = bm25_cacm(workers)
        print("CACM runs identical:", json.dumps(result["bm25_cacm"]))
        b = bm25_scale(args.bm25_passages, workers)
        result["bm25"] = b
        print(table(
            ("bm25", "build s", "passages/s", "identical"),
            [(f"local ({b['local_threads']} threads)", f"{b['local_build_s']:.1f}",
              f"{args.bm25_passages / b['local_build_s']:.0f}", "-")]
            + [(f"ray {r['workers']} shard(s)", f"{r['build_s']:.1f}",
                f"{r['passages_per_s']:.0f}", r["identical_rankings"]) for r in b["ray"]],
        ))  # fmt: skip
    command = " ".join(["python benchmarks/ray_scale.py", *sys.argv[1:]])
    name = "ray_scale_quick" if args.quick else "ray_scale"
    write_result(name, reportable=reportable, payload={"command": command, **result,
                        "note": "machine shared with other work: ratios are noisy"})  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: build speed locally and on Ray by worker count (dense and
    BM25), and whether every run was identical to the local one."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section

    dense, bm25 = data["dense"], data["bm25"]
    rows = [M(f"{kind} ({d['passages']:,} passages)", "local", "build seconds",
              d["local_build_s"]) for kind, d in (("dense", dense), ("bm25", bm25))]
    rows += [M(f"{kind} ({d['passages']:,} passages)", f"ray, {r['workers']} worker(s)",
               "build seconds", r["build_s"])
             for kind, d in (("dense", dense), ("bm25", bm25)) for r in d["ray"]]  # fmt: skip
    same = [M(kind, f"ray, {r['workers']} worker(s)", "identical to local (1 = yes)",
              float(r.get("identical_to_local", r.get("identical_rankings", False))))
            for kind, rs in (("dense", dense["ray"]), ("bm25", bm25["ray"])) for r in rs]
    return Reportable("ray_scale", (
        Section("ray-scale", "Ray: build time by workers", tuple(rows), plot="lines",
                note=data.get("note", "")),
        Section("ray-scale-identical", "Ray: identical results", tuple(same), plot="table"),
    ), f"dense {dense['passages']:,} passages, BM25 {bm25['passages']:,} passages",
        {"cpus": data["cluster"].get("CPU")})


if __name__ == "__main__":
    main()
