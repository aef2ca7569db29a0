"""Baselines on the packaged sets: BM25, minilm dense (without and with the dataset's
instruction, document embeddings shared) and RRF hybrids; nDCG@10, R@10, R@100 and
queries/second. Datasets are prepared under $RARX_WORK (default benchmarks/work/eval).

    python benchmarks/baselines.py [dataset ...]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from common import with_report

from rarx.eval.datasets import DATASETS, load_beir, prepare_dataset
from rarx.eval.datasets.beir import is_beir_folder
from rarx.eval.results import envelope, write_results
from rarx.eval.retrieval import compare
from rarx.eval.systems import DenseModel, bm25_run, hybrid_run
from rarx.io.table import table

WORK = Path(os.environ.get("RARX_WORK", Path(__file__).parent / "work" / "eval"))
OUT = Path(__file__).parent / "results" / "baselines.json"
MEASURES = ["nDCG@10", "R@10", "R@100"]
ORDER = ["sciq", "boolq", "squad", "arc-challenge", "piqa", "siqa", "winogrande", "code",
         "hellaswag", "math"]  # fmt: skip


def run_dataset(name: str) -> dict:
    folder = WORK / "data" / name
    if not is_beir_folder(folder):
        prepare_dataset(name, folder, overwrite=True)
    data = load_beir(folder)
    queries = data.judged_queries
    t = time.perf_counter()
    bm25 = bm25_run(data, queries, 100, WORK / "indexes", quiet=True)
    dense = DenseModel("minilm", data, cache_dir=WORK / "embeddings")
    plain = dense.search(queries, 100)
    inst = dense.search(queries, 100, data.instruction)
    runs = [bm25, plain, inst, hybrid_run([bm25, plain], 100), hybrid_run([bm25, inst], 100)]
    scored = compare(runs, data.qrels, MEASURES)
    wall = time.perf_counter() - t
    print(
        f"\n{name} ({DATASETS[name].kind}): {len(queries)} queries, {len(data.corpus)} docs, "
        f"{wall:.0f}s; document encoding {dense.seconds['encode_docs']:.1f}s"
    )
    rows = [
        [
            s.run.name,
            *(s.evaluation.aggregate[m] for m in MEASURES),
            s.p_values.get("nDCG@10", "-") if s.p_values else "-",
            int(round(s.run.queries_per_second or 0)),
        ]
        for s in scored
    ]
    print(table(["system", *MEASURES, "p nDCG@10 vs bm25", "q/s"], rows), flush=True)
    return {"dataset": name, "kind": DATASETS[name].kind, "queries": len(queries),
            "documents": len(data.corpus), "instruction": data.instruction,
            "encode_docs_seconds": dense.seconds["encode_docs"], "wall_seconds": wall,
            "systems": [s.as_dict() for s in scored]}  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: every measure of every system per dataset, with intervals and
    paired tests against BM25 (rarx.eval.report_kinds reads the systems as `rarx eval
    retrieval` writes them)."""
    from rarx.eval.report_kinds import retrieval_measurements
    from rarx.eval.report_schema import Reportable, Section

    rows = []
    for i, d in enumerate(data["datasets"]):
        rows += retrieval_measurements(d["dataset"], d["systems"], f"datasets[{i}].")
    return Reportable("baselines", (Section("baselines", "Retrieval baselines (BM25, MiniLM, "
                                            "hybrid) on RAR-b-recipe Full sets", tuple(rows),
                                            average=True),),
                      ", ".join(d["dataset"] for d in data["datasets"]),
                      {"depth": data.get("depth"), **data.get("settings", {})})


def main() -> None:
    names = sys.argv[1:] or ORDER
    # Datasets not rerun keep their earlier figures, so the table can be filled in parts.
    results = []
    if OUT.is_file():
        results = [d for d in json.loads(OUT.read_text())["datasets"] if d["dataset"] not in names]
    for name in names:
        results.append(run_dataset(name))
        results.sort(key=lambda d: ORDER.index(d["dataset"]))
        # Written after each dataset, so an interrupted run keeps what it finished.
        write_results(OUT, with_report(envelope(
            "baselines", measures=MEASURES, depth=100,
            settings={"bm25": "Lucene k1=0.9 b=0.4", "dense": "minilm, 512 tokens, exact cosine",
                      "hybrid": "RRF k=60", "significance": "paired t-test vs bm25"},
            datasets=results), reportable))  # fmt: skip
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
