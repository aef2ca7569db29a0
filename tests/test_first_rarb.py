"""benchmarks/first_rarb.py's cross-encoder system, resumed into a results name that an
LLM run wrote: a tiny set in the BEIR layout, the packaged MiniLM first stage and a tiny
cross-encoder, all built here."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

DOCS = {
    "d0": "Put the eggs in boiling water for ten minutes.",
    "d1": "Fold the paper in half and crease it with a ruler.",
    "d2": "Water the seedlings every morning before the sun is high.",
    "d3": "Sand the board before painting it so the paint sticks.",
    "d4": "Wrap the sandwich in foil to keep it fresh.",
}
QUERIES = {"q0": "How do I hard boil eggs?", "q1": "How do I make paint stick to wood?",
           "q2": "How do I keep a sandwich fresh?"}  # fmt: skip
GOLD = {"q0": "d0", "q1": "d3", "q2": "d4"}


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """first_rarb with its data and results folders under tmp_path, a set named ``piqa``
    (a MiniLM first stage) written there."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import common
    import first_rarb

    folder = tmp_path / "eval" / "data" / "piqa"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in DOCS.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in GOLD.items())
    )
    (folder / "instruction.txt").write_text("Given the following goal, retrieve a solution.\n")
    monkeypatch.setattr(common, "ROOT", tmp_path)
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(first_rarb, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(first_rarb, "DATA", tmp_path / "eval")
    return first_rarb  # fmt: skip


def run(bench: Any, monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["first_rarb.py", "--dataset", "piqa", "--queries", "3",
                                      "--k", "4", "--name", "t", *args])  # fmt: skip
    bench.main()


@pytest.mark.slow
def test_cross_encoder_resumes_into_an_llm_run_without_loading_the_llm_or_touching_its_records(
    bench: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_cross_encoder: str
) -> None:
    jsonl, before, cands = earlier_llm_run(bench, tmp_path)

    run(bench, monkeypatch, "--llm", "no-such-llm", "--resume", "--systems", "cross-encoder",
        "--cross-encoder", tiny_cross_encoder)  # fmt: skip

    text = jsonl.read_text()
    assert text.startswith(before)  # appended only
    added = [json.loads(x) for x in text[len(before) :].splitlines()]
    assert sorted(r["qid"] for r in added) == sorted(QUERIES)
    assert {r["system"] for r in added} == {"cross-encoder"}
    for r in added:  # the recorded candidates, reordered
        assert sorted(r["docids"]) == sorted(next(c.docids for c in cands if c.qid == r["qid"]))
        assert r["model"].startswith(f"{tiny_cross_encoder}@sha256:")
    summary = json.loads((tmp_path / "results" / "t.json").read_text())
    s = summary["datasets"]["piqa"]
    assert list(s["systems"]) == ["first-stage", "first", "cross-encoder"]
    assert s["systems"]["cross-encoder"]["model"] == added[0]["model"]
    assert s["systems"]["first"]["queries"] == 3
    pairs = {(t["system"], t["against"]) for t in s["paired_tests_nDCG@10"]}
    assert {("cross-encoder", "first-stage"), ("cross-encoder", "first")} <= pairs
    assert summary["partial"] is False
    labels = {m["system"] for sec in summary["report"]["sections"] for m in sec["measurements"]}
    assert "cross-encoder" in labels

    # another folder (here a copy of the same weights) may not join those records
    other = tmp_path / "other-ce"
    shutil.copytree(tiny_cross_encoder, other)
    with pytest.raises(SystemExit, match="holds cross-encoder records"):
        run(bench, monkeypatch, "--llm", "no-such-llm", "--resume", "--systems",
            "cross-encoder", "--cross-encoder", str(other))  # fmt: skip
    assert jsonl.read_text() == text


def test_cross_encoder_system_needs_its_model(
    bench: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        run(bench, monkeypatch, "--systems", "cross-encoder")
    assert "--systems cross-encoder needs --cross-encoder PATH" in capsys.readouterr().err


def earlier_llm_run(bench: Any, tmp_path: Path) -> tuple[Path, str, list[Any]]:
    """A results name an untrained-FIRST run wrote (with an LLM that cannot load here:
    loading it would fail the test): the first stage's candidates and FIRST's order."""
    settings = {"llm": "no-such-llm", "llm_options": {}, "k": 4, "seed": 0, "queries": 3,
                "orders": 2, "position_seeds": 3, "passage_tokens": 300}  # fmt: skip
    data = bench.load_set("piqa")
    _, cands, _ = bench.first_stage(data, "piqa", bench.sample(data, 3, 0), 4)
    earlier = []
    for r in cands:
        base = {"dataset": "piqa", "qid": r.qid, "seconds": 1.0, "forward_passes": 1}
        earlier.append({**base, "system": "first-stage", "docids": list(r.docids)})
        earlier.append({**base, "system": "first", "docids": list(reversed(r.docids))})
    jsonl = tmp_path / "results" / "t.queries.jsonl"
    jsonl.parent.mkdir()
    before = "".join(json.dumps(x) + "\n" for x in [{"settings": settings}, *earlier])
    jsonl.write_text(before)
    return jsonl, before, cands


@pytest.mark.slow
def test_trained_first_joins_an_untrained_run_on_its_candidates_with_its_fingerprint(
    bench: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from rarx.models.cache import causal_lm_dir
    from rarx.models.registry import resolve_model

    jsonl, before, cands = earlier_llm_run(bench, tmp_path)
    trained = str(causal_lm_dir(resolve_model("smollm2-135m")))  # a model folder, as trained
    run(bench, monkeypatch, "--llm", "no-such-llm", "--resume", "--systems", "first-trained",
        "first-trained+inst", "--trained-llm", trained)  # fmt: skip

    text = jsonl.read_text()
    assert text.startswith(before)  # appended only
    added = [json.loads(x) for x in text[len(before) :].splitlines()]
    assert sorted((r["system"], r["qid"]) for r in added) == sorted(
        (s, q) for s in ("first-trained", "first-trained+inst") for q in QUERIES)  # fmt: skip
    for r in added:  # the recorded candidates, reordered by the folder's model
        assert sorted(r["docids"]) == sorted(next(c.docids for c in cands if c.qid == r["qid"]))
        assert r["model"].startswith(f"{trained}@") and r["forward_passes"] == 1
    summary = json.loads((tmp_path / "results" / "t.json").read_text())
    s = summary["datasets"]["piqa"]
    assert list(s["systems"]) == ["first-stage", "first", "first-trained", "first-trained+inst"]
    assert s["systems"]["first-trained"]["model"] == added[0]["model"]
    pairs = {(t["system"], t["against"]) for t in s["paired_tests_nDCG@10"]}
    assert {("first-trained", "first-stage"), ("first-trained", "first"),
            ("first-trained+inst", "first-trained")} <= pairs  # fmt: skip
    assert summary["partial"] is False
    labels = {m["system"] for sec in summary["report"]["sections"] for m in sec["measurements"]}
    assert {"trained FIRST", "trained FIRST +inst"} <= labels
    report = json.loads((tmp_path / "results" / "report" / "t-piqa.json").read_text())
    inst = next(x for x in report["systems"] if x["system"] == "trained FIRST +inst")
    assert inst["settings"]["llm"] == added[0]["model"]
    assert inst["settings"]["instruction"] == "Given the following goal, retrieve a solution."

    # another model may not join those records
    with pytest.raises(SystemExit, match="holds trained FIRST records"):
        run(bench, monkeypatch, "--llm", "no-such-llm", "--resume", "--systems",
            "first-trained", "--trained-llm", f"ctranslate2:{trained}")  # fmt: skip
    assert jsonl.read_text() == text


def test_trained_first_system_needs_its_model(
    bench: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        run(bench, monkeypatch, "--systems", "first-trained")
    assert "--systems first-trained needs --trained-llm SPEC" in capsys.readouterr().err


@pytest.mark.slow
def test_calibrated_systems_share_one_prior_and_record_their_code(
    bench: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """first+cal and position+cal with SmolLM2: the content-free prior is read once for
    the set (the two share the reranker) and charged to the first window that used it;
    every record names the code that made it."""
    run(bench, monkeypatch, "--llm", "smollm2-135m", "--systems", "first+cal", "position+cal",
        "--position-seeds", "1")  # fmt: skip
    lines = (tmp_path / "results" / "t.queries.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines[1:]]
    cal = [r for r in records if r["system"] in ("first+cal", "position+cal-s0")]
    assert len(cal) == 6  # three queries, one window of four each
    assert sorted(r["forward_passes"] for r in cal) == [1, 1, 1, 1, 1, 2]
    codes = {r["code"] for r in cal}  # the commit when the run started (one run, one code)
    assert len(codes) == 1 and all(codes)
    s = json.loads((tmp_path / "results" / "t.json").read_text())["datasets"]["piqa"]
    assert list(s["systems"]) == ["first-stage", "first+cal"]
    assert s["systems"]["first+cal"]["code_revisions"] == sorted(codes)
    assert s["position_calibrated"]["windows"] == 3 and not s["position"]
    assert sum(s["position_calibrated"]["top_pick_histogram"]) == 3
    assert ("first+cal", "first-stage") in {(t["system"], t["against"])
                                            for t in s["paired_tests_nDCG@10"]}  # fmt: skip


@pytest.mark.slow
def test_first_stage_records_say_where_the_gold_passage_sat_in_the_first_stage_list(
    bench: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_cross_encoder: str
) -> None:
    run(bench, monkeypatch, "--systems", "cross-encoder", "--cross-encoder", tiny_cross_encoder)

    lines = (tmp_path / "results" / "t.queries.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines[1:]]
    stage = {r["qid"]: r for r in records if r["system"] == "first-stage"}
    ce = {r["qid"]: r for r in records if r["system"] == "cross-encoder"}
    assert sorted(stage) == sorted(ce) == sorted(QUERIES)
    # MiniLM puts each query's own step among its top 4 of the 5 passages
    for q, r in stage.items():
        assert GOLD[q] in r["docids"]
        assert r["gold_positions"] == [r["docids"].index(GOLD[q])]
        # the cross-encoder reranked the same list: the same positions
        assert ce[q]["gold_positions"] == r["gold_positions"]
