"""Correctness against a published anchor: BM25 and BM25+RM3 on CACM vs Anserini's
regression figures (MAP, P@30 over the 52 judged topics, 1000 hits).

    python benchmarks/bm25_cacm.py
"""

from __future__ import annotations

import ir_measures
from common import WORK, cacm_bm25_index, data_dir, rarx_cli, table, write_result

ANSERINI = {"bm25": {"AP": 0.3123, "P@30": 0.1942}, "bm25+rm3": {"AP": 0.3648, "P@30": 0.2224}}


def main() -> None:
    cacm = data_dir() / "cacm"
    index = cacm_bm25_index()
    qrels = list(ir_measures.read_trec_qrels(str(cacm / "qrels.cacm.txt")))
    measures = [ir_measures.parse_measure("AP"), ir_measures.parse_measure("P@30")]
    rows, results = [], {}
    for name, extra in (("bm25", []), ("bm25+rm3", ["--rm3"])):
        run = WORK / f"cacm-{name}.trec"
        rarx_cli(
            "search",
            "--index",
            str(index),
            "--topics",
            str(cacm / "topics.cacm.txt"),
            "--k",
            "1000",
            "-o",
            str(run),
            "--quiet",
            *extra,
        )
        agg = ir_measures.calc_aggregate(measures, qrels, ir_measures.read_trec_run(str(run)))
        got = {str(m): round(v, 4) for m, v in agg.items()}
        results[name] = {"rarx": got, "anserini": ANSERINI[name]}
        for m in ("AP", "P@30"):
            ref = ANSERINI[name][m]
            rows.append((name, m, got[m], ref, f"{got[m] - ref:+.4f}"))
    print(table(("system", "measure", "rarx", "anserini", "diff"), rows))
    write_result(
        "bm25_cacm",
        reportable=reportable, payload={
            "command": "python benchmarks/bm25_cacm.py",
            "results": results,
            "note": "1000 hits, 52 judged topics, ir-measures (trec_eval)",
        },
    )


def reportable(data: dict) -> object:
    """The report section: AP and P@30 of rarx and Anserini per system on CACM."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section

    rows = [M(engine, system, m, v) for system, by in data["results"].items()
            for engine, figs in by.items() for m, v in figs.items()]  # fmt: skip
    return Reportable("bm25_cacm", (Section("bm25-cacm", "BM25 on CACM: rarx and Anserini",
                                            tuple(rows), note=data.get("note", "")),),
                      "CACM, 52 judged topics", {"command": data.get("command")})


if __name__ == "__main__":
    main()
