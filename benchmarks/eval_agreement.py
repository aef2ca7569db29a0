"""`rarx eval run` against ir_measures and pytrec_eval on BM25 over CACM: every figure
must be identical to the last digit.

    python benchmarks/eval_agreement.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ir_measures
import pytrec_eval
from common import shared_data, with_report

from rarx.eval.results import envelope, write_results
from rarx.index.lucene import LuceneIndex
from rarx.io import read_corpus, read_topics, write_run

DATA = shared_data() / "cacm"  # RARX_DATA, else ../shared/data
WORK = Path(__file__).parent / "work" / "eval_agreement"
OUT = Path(__file__).parent / "results" / "eval_agreement.json"
MEASURES = ["AP", "P@30", "nDCG@10", "R@100", "R@1000", "P@5", "RR", "nDCG"]
TREC_EVAL = {
    "AP": "map",
    "P@30": "P_30",
    "nDCG@10": "ndcg_cut_10",
    "R@100": "recall_100",
    "R@1000": "recall_1000",
    "P@5": "P_5",
    "RR": "recip_rank",
    "nDCG": "ndcg",
}


def reportable(data: dict) -> object:
    """The report section: each measure as rarx, ir-measures and pytrec_eval compute it
    on the same run (a table: the point is that they are identical)."""
    from rarx.eval.report_schema import Measurement, Reportable, Section

    rows = [Measurement(tool, "CACM BM25 run", f["measure"], f[tool], n=data["queries"])
            for f in data["figures"] for tool in ("rarx", "ir_measures", "pytrec_eval")]
    same = all(f["identical"] for f in data["figures"])
    return Reportable("eval_agreement", (Section("eval-agreement", "Evaluation measures: rarx, "
                      f"ir-measures and pytrec_eval ({'identical' if same else 'DIFFERENT'})",
                      tuple(rows), plot="table"),), f"{data['run']} against {data['qrels']}")


def main() -> None:
    run_path, qrels_path = WORK / "bm25.trec", DATA / "qrels.cacm.txt"
    if not run_path.is_file():
        index = LuceneIndex.build(
            read_corpus(DATA / "corpus.jsonl"), WORK / "index", overwrite=True, quiet=True
        )
        write_run(run_path, index.search(read_topics(DATA / "topics.cacm.txt"), 1000), tag="bm25")
    cmd = [
        sys.executable,
        "-m",
        "rarx.cli.main",
        "eval",
        "run",
        "--run",
        str(run_path),
        "--qrels",
        str(qrels_path),
        "--json",
        *(a for m in MEASURES for a in ("-m", m)),
    ]
    rarx = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    irm = ir_measures.calc_aggregate(
        [ir_measures.parse_measure(m) for m in MEASURES],
        ir_measures.read_trec_qrels(str(qrels_path)),
        ir_measures.read_trec_run(str(run_path)),
    )
    irm = {str(k): v for k, v in irm.items()}
    qrels = {}
    for q in ir_measures.read_trec_qrels(str(qrels_path)):
        qrels.setdefault(q.query_id, {})[q.doc_id] = q.relevance
    run = {}
    for s in ir_measures.read_trec_run(str(run_path)):
        run.setdefault(s.query_id, {})[s.doc_id] = s.score
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(TREC_EVAL.values())).evaluate(run)
    judged = [q for q in per_query]
    te = {m: sum(per_query[q][TREC_EVAL[m]] for q in judged) / len(judged) for m in MEASURES}
    rows = []
    for m in MEASURES:
        rows.append(
            {
                "measure": m,
                "rarx": rarx["measures"][m],
                "ir_measures": irm[m],
                "pytrec_eval": te[m],
                "identical": rarx["measures"][m] == irm[m] == te[m],
            }
        )
        print(
            f"{m:8s} rarx={rarx['measures'][m]!r:22} ir_measures={irm[m]!r:22} "
            f"pytrec_eval={te[m]!r:22} {'identical' if rows[-1]['identical'] else 'DIFFERENT'}"
        )
    write_results(
        OUT,
        with_report(
            envelope(
                "eval_agreement",
                run=str(run_path),
                qrels=str(qrels_path),
                queries=rarx["queries"],
                figures=rows,
            ),
            reportable,
        ),
    )
    print(f"wrote {OUT}")
    if not all(r["identical"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
