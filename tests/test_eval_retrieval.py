"""`rarx eval retrieval`: systems side by side on a tiny BEIR folder, significance,
results file; exact dense top-k; paired t-test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rarx.cli.main import cli
from rarx.errors import RarxError
from rarx.eval.significance import paired_t_test
from tests.conftest import TINY_DOCS


def _tiny_beir(root: Path) -> Path:
    root.mkdir()
    with open(root / "corpus.jsonl", "w") as f:
        for d in TINY_DOCS:
            f.write(json.dumps({"_id": d["id"], "title": d["title"], "text": d["text"]}) + "\n")
    queries = {"q1": ("why do volcanoes erupt", "d4"), "q2": ("what powers a cell", "d2"),
               "q3": ("how do clouds form", "d6"), "q4": ("what carries genes", "d8"),
               "q5": ("what makes reactions faster in the body", "d7")}  # fmt: skip
    with open(root / "queries.jsonl", "w") as f:
        for qid, (text, _) in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, (_, d) in queries.items())
    )
    (root / "instruction.txt").write_text("Retrieve the passage that answers the question.\n")
    return root


def test_paired_t_test_matches_scipy() -> None:
    from scipy.stats import ttest_rel

    a = {"1": 0.1, "2": 0.4, "3": 0.35, "4": 0.8}
    b = {"1": 0.2, "2": 0.5, "3": 0.3, "4": 0.9, "5": 1.0}  # "5" is not shared
    p, n = paired_t_test(a, b)
    assert n == 4
    assert p == ttest_rel([0.2, 0.5, 0.3, 0.9], [0.1, 0.4, 0.35, 0.8]).pvalue
    assert paired_t_test({"1": 0.5}, {"1": 0.7}) == (None, 1)  # one query: no test


def test_paired_t_test_of_identical_systems_is_one() -> None:
    a = {"1": 0.1, "2": 0.4, "3": 0.35, "4": 0.8}
    # scipy's ttest_rel answers NaN here; the systems are the same on every query.
    assert paired_t_test(a, a) == (1.0, 4)
    # equal up to float rounding (two ways of summing the same gains) is still identical
    assert paired_t_test({"1": 0.1 + 0.2, "2": 0.5}, {"1": 0.3, "2": 0.5}) == (1.0, 2)


def _sign_flip_p(diffs: list[float]) -> float:
    """The exact two-sided paired permutation test: every assignment of signs."""
    import itertools

    observed = abs(sum(diffs))
    flips = list(itertools.product((1, -1), repeat=len(diffs)))
    extreme = sum(abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) >= observed - 1e-12
                  for signs in flips)  # fmt: skip
    return extreme / len(flips)


@pytest.mark.parametrize("n", [2, 3, 10])
def test_paired_t_test_of_a_constant_difference_is_the_exact_sign_flip_test(n: int) -> None:
    from scipy.stats import ttest_rel

    # The other system right on every query the base gets wrong: scipy says t = inf, p = 0,
    # "certain" on two queries; the permutation test says how often signs alone do that.
    base = {str(i): 0.0 for i in range(n)}
    other = {str(i): 1.0 for i in range(n)}
    assert ttest_rel(list(other.values()), list(base.values())).pvalue == 0.0
    p, m = paired_t_test(base, other)
    assert m == n
    assert p == pytest.approx(_sign_flip_p([1.0] * n))
    assert p == paired_t_test(other, base)[0]  # two-sided
    # a difference equal but for float rounding (0.1 + x - x): not p ~ 1e-32
    a = {str(i): 0.1 * i for i in range(n)}
    b = {q: v + 0.1 for q, v in a.items()}
    assert paired_t_test(a, b)[0] == pytest.approx(_sign_flip_p([0.1] * n))


def test_rounded_p_keeps_a_small_p_small() -> None:
    from rarx.eval.significance import rounded_p

    assert rounded_p(3.2149e-6) == 3.21e-6  # round(p, 4) wrote 0.0, read as certainty
    assert rounded_p(0.04999) == 0.05
    assert rounded_p(None) is None


def test_each_measure_carries_a_bootstrap_interval_over_every_judged_query() -> None:
    from rarx.eval.retrieval import compare
    from rarx.eval.significance import mean_ci
    from rarx.eval.systems import SystemRun
    from rarx.types import Ranking

    qrels = {f"q{i}": {f"d{i}": 1} for i in range(6)}
    # The relevant document first for q0..q3, nothing at all for q4 and q5.
    rankings = [Ranking.from_arrays(f"q{i}", [f"d{i}", "x"], [2.0, 1.0]) for i in range(4)]
    (result,) = compare([SystemRun("s", rankings, {})], qrels, ["nDCG@10"])
    assert result.evaluation.aggregate["nDCG@10"] == pytest.approx(4 / 6)
    low, high = result.ci95["nDCG@10"]
    # The queries the run left out count as 0, as in the mean the interval goes with.
    assert (low, high) == mean_ci([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    assert low < 4 / 6 < high  # not (1.0, 1.0): the four queries the run answered alone
    assert result.as_dict()["ci95"] == {"nDCG@10": (low, high)}


def test_needs_a_system(tmp_path: Path) -> None:
    with pytest.raises(RarxError, match="nothing to evaluate"):
        cli.main(["eval", "retrieval", "--dataset", str(_tiny_beir(tmp_path / "ds"))],
                 standalone_mode=False)  # fmt: skip


@pytest.mark.slow
def test_systems_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = _tiny_beir(tmp_path / "ds")
    args = ["eval", "retrieval", "--dataset", str(ds), "--bm25", "--model", "minilm", "--hybrid",
            "--instructions", "-m", "nDCG@10", "-m", "R@10", "-k", "5", "--work-dir",
            str(tmp_path / "work"), "--run-dir", str(tmp_path / "runs"), "--results",
            str(tmp_path / "results.json"), "--json", "-q"]  # fmt: skip
    cli.main(args, standalone_mode=False)
    out = json.loads(capsys.readouterr().out)
    names = [s["system"] for s in out["systems"]]
    assert names == ["bm25", "minilm", "minilm +inst", "rrf(bm25 + minilm)",
                     "rrf(bm25 + minilm +inst)"]  # fmt: skip
    dense = out["systems"][1]
    assert dense["measures"]["R@10"] > 0.5
    assert dense["measures"]["nDCG@10"] > 0.8
    assert set(dense["p_value_vs_first"]) == {"nDCG@10", "R@10"}
    assert out["systems"][0]["p_value_vs_first"] == {}
    assert out["dataset"]["instruction"].startswith("Retrieve the passage")
    assert out["versions"]["ir_measures"] and out["systems"][1]["settings"]["max_seq_length"] == 512
    assert json.loads((tmp_path / "results.json").read_text())["systems"] == out["systems"]
    assert len(list((tmp_path / "runs").glob("*.trec"))) == 5
    # The dense index over the corpus was built once and is reused by the next evaluation.
    (built,) = (tmp_path / "work" / "embeddings").iterdir()
    assert json.loads((built / "rarx_index.json").read_text())["kind"] == "dense"
    cli.main(args, standalone_mode=False)
    again = json.loads(capsys.readouterr().out)
    assert again["systems"][1]["seconds"]["encode_docs"] == 0.0
    assert again["systems"][1]["measures"] == dense["measures"]


def test_a_pipeline_scores_like_the_index_it_wraps(
    tmp_path: Path, tiny_bm25, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _tiny_beir(tmp_path / "ds")
    pipeline = tmp_path / "bm25.yaml"
    pipeline.write_text(f"name: bm25\nstages:\n  - retrieve: {{index: {tiny_bm25.path}, k: 5}}\n")
    cli.main(["eval", "retrieval", "--dataset", str(ds), "--index", str(tiny_bm25.path),
              "--pipeline", str(pipeline), "-m", "nDCG@10", "-m", "R@5", "-k", "5", "--json"],
             standalone_mode=False)  # fmt: skip
    index_system, pipeline_system = json.loads(capsys.readouterr().out)["systems"]
    assert pipeline_system["settings"] == {"kind": "pipeline", "pipeline": str(pipeline),
                                           "name": "bm25"}  # fmt: skip
    assert pipeline_system["measures"] == index_system["measures"]
    assert index_system["measures"]["R@5"] > 0.5


def test_evaluate_retrieval_is_a_library_call(
    tmp_path: Path, tiny_bm25, caplog: pytest.LogCaptureFixture
) -> None:
    from rarx.eval.retrieval import RetrievalSystems, evaluate_retrieval

    ds = _tiny_beir(tmp_path / "ds")
    with open(ds / "qrels" / "test.tsv", "a") as f:
        f.write("q1\td99\t1\n")  # a judged document the corpus lacks: a warning, not an error
    systems = RetrievalSystems(indexes=(tiny_bm25.path,))
    result = evaluate_retrieval(str(ds), systems, measures=["R@5"], depth=5)
    assert result.queries == 5 and [s.run.name for s in result.systems] == [str(tiny_bm25.path)]
    assert result.systems[0].evaluation.aggregate["R@5"] > 0.5
    assert result.as_dict()["systems"][0]["measures"] == result.systems[0].evaluation.aggregate
    assert any("not in corpus.jsonl" in r.getMessage() for r in caplog.records)
    with pytest.raises(RarxError, match="--hybrid fuses BM25 with a dense or SPLADE model"):
        evaluate_retrieval(str(ds), RetrievalSystems(bm25=True, hybrid=True))
