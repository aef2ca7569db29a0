"""`rarx eval run` must give exactly what ir-measures / pytrec_eval give."""

from __future__ import annotations

import json
from pathlib import Path

import ir_measures
import pytest
import pytrec_eval

from rarx.cli.main import cli
from rarx.errors import InputError, RarxError
from rarx.eval.metrics import evaluate, read_run_scores
from rarx.io.trec import write_qrels, write_run
from rarx.types import Query


def main(args: list[str]) -> None:
    """The CLI without main()'s exit handling, so errors reach the test."""
    cli.main(args=args, standalone_mode=False)


MEASURES = ["nDCG@10", "R@100", "AP", "P@5", "RR@10"]

# Ties on purpose (trec_eval orders tied hits by docid, not by file order), a query
# without qrels, and a judged query missing from the run.
RUN = """\
q1 Q0 d3 1 2.0 t
q1 Q0 d1 2 2.0 t
q1 Q0 d2 3 1.5 t
q1 Q0 d9 4 0.5 t
q2 Q0 d5 1 3.0 t
q2 Q0 d4 2 1.0 t
q2 Q0 d7 3 1.0 t
q3 Q0 d1 1 1.0 t
"""
QRELS = """\
q1 0 d1 1
q1 0 d2 2
q2 0 d7 1
q2 0 d8 1
q4 0 d1 1
"""


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    main(["eval", "run", *args, "--json"])
    return json.loads(capsys.readouterr().out)


def test_equals_ir_measures_and_pytrec_eval(tmp_path: Path, capsys) -> None:
    run_path, qrels_path = tmp_path / "run.trec", tmp_path / "qrels.txt"
    run_path.write_text(RUN)
    qrels_path.write_text(QRELS)
    args = ["--run", str(run_path), "--qrels", str(qrels_path), "--per-query"]
    out = _cli_json(capsys, *args, *(a for m in MEASURES for a in ("-m", m)))
    qrels = list(ir_measures.read_trec_qrels(str(qrels_path)))
    run = list(ir_measures.read_trec_run(str(run_path)))
    expected = ir_measures.calc_aggregate(
        [ir_measures.parse_measure(m) for m in MEASURES], qrels, run
    )
    assert out["measures"] == {str(k): v for k, v in expected.items()}
    # ir-measures averages over every judged query; q4 (not in the run) counts as 0.
    assert out["queries"] == 3 and out["per_query"]["q4"]["AP"] == 0.0
    # pytrec_eval directly, per query, for two trec_eval measures.
    te = pytrec_eval.RelevanceEvaluator(
        {"q1": {"d1": 1, "d2": 2}, "q2": {"d7": 1, "d8": 1}, "q4": {"d1": 1}},
        {"map", "ndcg_cut_10"},
    )
    by_query = te.evaluate(read_run_scores(run_path).run)
    for qid in ("q1", "q2"):
        assert out["per_query"][qid]["AP"] == by_query[qid]["map"]
        assert out["per_query"][qid]["nDCG@10"] == by_query[qid]["ndcg_cut_10"]
    # trec_eval puts tied d3 before d1 (docid descending), whatever the file order.
    assert out["per_query"]["q1"]["P@5"] == 0.4 and out["per_query"]["q1"]["AP"] == (
        (1 / 2 + 2 / 3) / 2
    )


def test_warns_about_unjudged_and_duplicate_pairs(tmp_path: Path, capsys) -> None:
    run_path, qrels_path = tmp_path / "run.trec", tmp_path / "qrels.txt"
    run_path.write_text(RUN + "q1 Q0 d2 5 0.1 t\n")
    qrels_path.write_text(QRELS)
    main(["eval", "run", "--run", str(run_path), "--qrels", str(qrels_path), "-m", "AP"])
    err = capsys.readouterr().err
    assert "1 repeated (query, document) pairs" in err
    assert "1 of 3 run queries have no qrels" in err
    assert "1 judged queries are missing from the run" in err


@pytest.mark.slow
def test_real_bm25_run_equals_ir_measures(tiny_bm25, tmp_path: Path, capsys) -> None:
    queries = [
        Query("1", "volcanoes lava magma"),
        Query("2", "cell energy ATP"),
        Query("3", "water clouds sun"),
        Query("4", "genetic information"),
    ]
    run_path, qrels_path = tmp_path / "bm25.trec", tmp_path / "qrels.txt"
    write_run(run_path, tiny_bm25.search(queries, k=8), tag="bm25")
    write_qrels(
        qrels_path,
        {"1": {"d4": 1, "d3": 1}, "2": {"d2": 2, "d7": 1}, "3": {"d6": 1, "d1": 1}, "4": {"d8": 1}},
    )
    out = _cli_json(
        capsys,
        "--run",
        str(run_path),
        "--qrels",
        str(qrels_path),
        *(a for m in MEASURES for a in ("-m", m)),
    )
    expected = ir_measures.calc_aggregate(
        [ir_measures.parse_measure(m) for m in MEASURES],
        ir_measures.read_trec_qrels(str(qrels_path)),
        ir_measures.read_trec_run(str(run_path)),
    )
    assert out["measures"] == {str(k): v for k, v in expected.items()}
    assert 0 < out["measures"]["AP"] <= 1


def test_unknown_measure_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(RarxError, match=r"unknown measure 'nDCG@x'.*Known measures: .*nDCG"):
        evaluate({"q": {"d": 1.0}}, {"q": {"d": 1}}, ["nDCG@x"])
    with pytest.raises(RarxError, match="unknown measure 'Bogus@10'"):
        main(
            [
                "eval",
                "run",
                "--run",
                str(tmp_path / "r"),
                "--qrels",
                str(tmp_path / "q"),
                "-m",
                "Bogus@10",
            ]
        )


def test_missing_qrels_and_malformed_run_name_the_file(tmp_path: Path) -> None:
    run_path = tmp_path / "run.trec"
    run_path.write_text(RUN)
    with pytest.raises(InputError, match=r"qrels\.txt: file not found"):
        main(["eval", "run", "--run", str(run_path), "--qrels", str(tmp_path / "qrels.txt")])
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1 1.0 t\nq1 d2 2 0.5\n")
    with pytest.raises(InputError, match=r"bad\.trec:2: expected 6 columns"):
        read_run_scores(bad)


def test_disjoint_query_ids_are_an_error() -> None:
    with pytest.raises(RarxError, match="same query ids"):
        evaluate({"a": {"d": 1.0}}, {"b": {"d": 1}}, ["AP"])
