"""What issue 25's three evaluations cost per question before and after the changes that
make them cheaper, measured side by side (interleaved rounds) with one LLM through the
ctranslate2 backend; and how often the results differ.

    nice -n 5 .venv/bin/python benchmarks/eval_speed.py [--n 32] [--rounds 2] \
        [--llm ctranslate2:smollm2-135m]

- **adaptive** (``rarx eval adaptive``): NR, AR, Adapt and P(<RET>) of both models on n
  test and n dev questions of SciQ (the one LLM as gate and base). Before: every prompt
  forwarded whole (``prefix_cache=0``) and the dev split's unused Adapt decisions made;
  after: the shared prefix cached, no dev decisions.
- **demos** (``reader_demos.py``): the multiple-choice label log-probabilities of n
  ARC-Easy questions with 2 demonstrations (other questions of the task). Before/after:
  the prefix cache off/on.
- **arr** (``pipeline_arr.py``): arr (draft) then arr (query+draft) on n SciQ questions.
  Before: query+draft drafts again; after: it reads arr (draft)'s drafts, with the prefix
  cache on.

Agreement: per evaluation, how many answers / decisions (or argmax labels) the after run
gives identically to the before run of the same round.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from common import WORK, table, write_result
from pipeline_common import bm25_index, qa_set, subset

from rarx.eval.adaptive import AdaptiveConfig, outcomes
from rarx.eval.mc_reader import label_logprobs, lettered, reader_prompt
from rarx.eval.splits import select
from rarx.llm import load_llm
from rarx.pipeline import Pipeline, Resources
from rarx.stages.common import DRAFT
from rarx.types import QueryState


def adaptive(llm: str, n: int, after: bool) -> tuple[float, list[Any]]:
    from rarx.eval.adaptive import _pipelines

    folder, queries = qa_set("sciq")
    config = AdaptiveConfig("sciq", llm, llm, limit=n, dev_limit=n, batch_size=16)
    resources = Resources(llm_options={"batch_size": 16, "prefix_cache": 16 if after else 0})
    pipes = {k: Pipeline.from_dict(v, resources=resources)
             for k, v in _pipelines(config, str(bm25_index(folder))).items()}  # fmt: skip
    llms = {"gate": resources.llm(llm), "base": resources.llm(llm)}
    start = time.perf_counter()
    dev = outcomes(config, select(queries, "sciq", "dev", limit=n), str(folder), pipes, llms,
                   True, decisions=not after)  # fmt: skip
    test = outcomes(config, select(queries, "sciq", "test", limit=n), str(folder), pipes, llms,
                    True)  # fmt: skip
    seconds = time.perf_counter() - start
    return seconds / n, [dev.nr, dev.ar, test.nr, test.ar, test.adapt,
                         [p > 0.5 for p in test.p_gate + dev.p_gate]]  # fmt: skip


def demos(llm: str, n: int, after: bool) -> tuple[float, list[Any]]:
    from rarx.eval.datasets.olmo import read_arrow
    from rarx.train.data.mc import SOURCES

    rel, make = SOURCES["arc-easy"]
    items = list(make(read_arrow(rel)))
    random.Random(0).shuffle(items)
    asked, bank = items[:n], items[n:]
    rng = random.Random(1)
    prompts, n_opts = [], []
    for it in asked:
        shown = [{"question": lettered(d.query, d.options), "answer": "ABCDE"[d.label]}
                 for d in rng.sample(bank, 2)]  # fmt: skip
        prompts.append(reader_prompt(lettered(it.query, it.options), shown))
        n_opts.append(len(it.options))
    model = load_llm(llm, batch_size=8, prefix_cache=16 if after else 0)
    start = time.perf_counter()
    rows = label_logprobs(model, prompts, n_opts)
    seconds = time.perf_counter() - start
    return seconds / n, [[max(range(len(r)), key=r.__getitem__) for r in rows]]


def arr(llm: str, n: int, after: bool) -> tuple[float, list[Any]]:
    folder, queries = qa_set("sciq")
    index = str(bm25_index(folder))
    qs = subset(queries, n, seed=1)
    resources = Resources(llm_options={"batch_size": 8, "prefix_cache": 16 if after else 0})
    budget = {"max_new_tokens": 8, "passage_tokens": 64, "draft_llm": llm, "revise_llm": llm}
    start = time.perf_counter()
    answers: list[list[str]] = []
    drafts: dict[str, str] = {}
    for form in ("draft", "query+draft"):
        stage = {"arr": {"index": index, "k": 2, "query": form, **budget}}
        pipe = Pipeline.from_dict({"stages": [stage]}, resources=resources)
        got = []
        for i in range(0, n, 16):
            part = [QueryState(q).with_context(**{DRAFT: drafts[q.qid]})
                    if after and q.qid in drafts else q for q in qs[i : i + 16]]  # fmt: skip
            for s in pipe.run(part):
                drafts.setdefault(s.query.qid, s.context[DRAFT])
                got.append(s.context.get("answer") or "")
        answers.append(got)
    return (time.perf_counter() - start) / n, answers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32, help="questions per evaluation (and dev)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved before/after rounds")
    ap.add_argument("--llm", default="ctranslate2:smollm2-135m")
    ap.add_argument("--only", default="adaptive,demos,arr")
    ap.add_argument("--result", default="eval_speed")
    args = ap.parse_args()
    runs = {"adaptive": adaptive, "demos": demos, "arr": arr}
    names = args.only.split(",")
    seconds: dict[str, dict[str, list[float]]] = {k: {"before": [], "after": []} for k in names}
    agree: dict[str, list[list[int]]] = {k: [] for k in names}
    t0 = time.perf_counter()
    for r in range(args.rounds):
        for name in names:
            got = {}
            for when in ("before", "after") if r % 2 == 0 else ("after", "before"):
                s, got[when] = runs[name](args.llm, args.n, when == "after")
                seconds[name][when].append(round(s, 3))
                print(f"round {r + 1} {name} {when}: {s:.3f} s/question", flush=True)
            pairs = zip(got["before"], got["after"], strict=True)
            agree[name].append([sum(a == b for a, b in zip(x, y, strict=True)) for x, y in pairs])
    rows, results = [], {}
    for name in names:
        b, a = (sum(v) / len(v) for v in (seconds[name]["before"], seconds[name]["after"]))
        results[name] = {"seconds_per_question": seconds[name], "before_mean": round(b, 3),
                         "after_mean": round(a, 3), "after_over_before": round(a / b, 3),
                         "identical": agree[name]}  # fmt: skip
        rows.append([name, f"{b:.3f}", f"{a:.3f}", f"{a / b:.2f}", str(agree[name])])
    print(table(["evaluation", "before s/q", "after s/q", "after/before",
                 "identical per round (per measurement)"], rows))  # fmt: skip
    write_result(args.result, reportable=reportable, payload={
        "setup": {"llm": args.llm, "questions": args.n, "rounds": args.rounds,
                  "identical": {"adaptive": "dev NR, dev AR, test NR, test AR, test Adapt "
                                "decisions, P(<RET>) > 0.5 (test+dev)",
                                "demos": "argmax label", "arr": "draft, query+draft answers"},
                  "note": "2 shared CPU cores, other work running: times are noisy"},
        "results": results, "seconds": round(time.perf_counter() - t0, 1),
    })  # fmt: skip


def reportable(data: dict[str, Any]) -> Any:
    """The report section: seconds per question before and after for each evaluation (a
    bar per round mean) and the share of results that stayed identical."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, scalars

    setup = data["setup"]
    n = setup["questions"]
    speed, same = [], []
    for name, r in data["results"].items():
        for when in ("before", "after"):
            speed.append(Measurement(when, name, "seconds per question", r[f"{when}_mean"], n=n))
        speed.append(Measurement("after / before", name, "ratio", r["after_over_before"], n=n))
        for i, counts in enumerate(r.get("identical") or []):
            for j, c in enumerate(counts):
                same.append(Measurement(f"round {i + 1}", name, f"identical, measurement {j + 1}",
                                        c))  # fmt: skip
    return Reportable(data["benchmark"], (
        Section("eval-speed", f"Evaluation cost before and after ({setup['llm']})", tuple(speed)),
        Section("eval-speed-identical", "Results identical before and after (counts; see the "
                "file's setup for what each measurement is)", tuple(same), plot="table"),
    ), "the adaptive-RAG evaluations before and after batching, the prefix cache and draft "
       "reuse", scalars(setup, "llm", "questions", "rounds", "note"))  # fmt: skip


if __name__ == "__main__":
    WORK.mkdir(parents=True, exist_ok=True)
    main()
