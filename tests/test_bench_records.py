"""Per-query records and guards of the issue-25 benchmarks: pipeline_memory.py's query log
(resume keeps the records of the same settings only) and its paired summary, and
reader_demos.py's refusal of a reader trained on the task it is evaluated on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rarx.models.card import ModelCard
from rarx.train.data.manifest import write_manifest

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"llm": "smollm2-135m", "queries": ["q1", "q2", "q3"], "batch": 2}


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import pipeline_memory
    import reader_demos

    return pipeline_memory, reader_demos


def rec(arm: str, qid: str, em: float, seconds: float, hit: bool = False) -> dict:
    return {"arm": arm, "qid": qid, "kind": "unseen", "hit": hit, "retrieved": not hit,
            "answer": "x", "em": em, "f1": em, "seconds": seconds, "error": None}  # fmt: skip


def test_query_log_resumes_its_own_records_and_drops_a_torn_line(bench, tmp_path: Path) -> None:
    pm, _ = bench
    path = tmp_path / "run.queries.jsonl"
    log = pm.QueryLog(path, SETTINGS, resume=False)
    log.add([rec("with memory", "q1", 1.0, 0.5), rec("with memory", "q2", 0.0, 0.5)])
    with path.open("a") as f:
        f.write('{"arm": "with memory", "qid": "q3", "e')  # killed mid-write
    again = pm.QueryLog(path, SETTINGS, resume=True)
    assert sorted(again.done) == [("with memory", "q1"), ("with memory", "q2")]
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"settings": SETTINGS} and len(lines) == 3
    fresh = pm.QueryLog(path, SETTINGS, resume=False)  # without --resume: start over
    assert fresh.done == {} and len(path.read_text().splitlines()) == 1


def test_query_log_refuses_to_resume_records_of_other_settings(bench, tmp_path: Path) -> None:
    pm, _ = bench
    path = tmp_path / "run.queries.jsonl"
    pm.QueryLog(path, SETTINGS, resume=False).add([rec("with memory", "q1", 1.0, 0.5)])
    with pytest.raises(SystemExit, match=r"other settings.*rerun without --resume"):
        pm.QueryLog(path, {**SETTINGS, "llm": "ctranslate2:qwen2.5-coder-1.5b"}, resume=True)
    assert len(path.read_text().splitlines()) == 2  # nothing lost


def test_summary_pairs_the_arms_query_by_query(bench, tmp_path: Path) -> None:
    """Memory hits answer right and fast, misses go the same way in both arms: the
    difference is all on the hits, and the report section carries the paired p-value."""
    pm, _ = bench
    qids = [f"q{i}" for i in range(8)]
    without = [rec("without memory", q, 0.0, 2.0 + i % 2 * 0.1) for i, q in enumerate(qids)]
    with_mem = [rec("with memory", q, 1.0, 0.1, hit=True) if i < 4
                else rec("with memory", q, 0.0, 2.0 + i % 2 * 0.1)
                for i, q in enumerate(qids)]  # fmt: skip
    lat = pm.summarize({"without memory": without, "with memory": with_mem}, 0.7, 2,
                       ROOT / "benchmarks" / "results" / "x.queries.jsonl")  # fmt: skip
    assert lat["memory_hits"] == 4
    assert lat["quality_with_memory"]["em"] == 0.5 and lat["quality_without_memory"]["em"] == 0
    hits, misses = lat["paired"]["memory hits"], lat["paired"]["memory misses"]
    assert hits["em"]["diff"] == 1.0 and hits["seconds"]["diff"] < -1.8
    assert misses["em"]["diff"] == 0.0 and misses["em"]["p"] == 1.0  # no difference at all
    # right on all 4 hits: the exact sign-flip p (2 / 2**4), not scipy's p = 0 of t = inf
    assert hits["em"]["p"] == 0.125
    assert lat["paired"]["all"]["seconds"]["p"] is not None
    sections = pm.pipeline_sections(json.loads(json.dumps(lat)))
    with_rows = [m for m in sections[0].measurements if m.system == "with memory"]
    assert {m.measure for m in with_rows if m.p_value is not None} >= {"f1", "seconds_per_query"}
    assert all(m.baseline == "without memory" for m in with_rows if m.p_value is not None)


def trained_reader(tmp_path: Path, sources: dict[str, int]) -> Path:
    """A model directory with the card `rarx train reader` writes, naming a data folder
    whose manifest counts ``sources``' training instances."""
    data = tmp_path / "data"
    data.mkdir()
    write_manifest(data, {"name": "reader", "settings": {"held_out": "arc-easy"},
                          "instances": {"train": sources}, "demo_sources": sources})  # fmt: skip
    model = tmp_path / "reader"
    model.mkdir()
    ModelCard("qwen2.5-coder-1.5b", "reader", [], 0,
              options={"data_dir": str(data), "demos": {"held_out": "arc-easy"}}).write(model)
    return model


def test_reader_demos_refuses_a_reader_trained_on_the_evaluated_task(
    bench, tmp_path: Path
) -> None:
    _, rd = bench
    model = trained_reader(tmp_path, {"openbookqa": 400, "sciq": 900})
    rd.check_held_out(f"ctranslate2:{model}", "arc-easy")  # left out: passes
    with pytest.raises(SystemExit, match=r"trained on openbookqa.*--held-out openbookqa"):
        rd.check_held_out(f"ctranslate2:{model}", "openbookqa")
    rd.check_held_out("smollm2-135m", "openbookqa")  # a base model has no card


def test_adapt_llm_reports_the_training_time_its_gate_card_records(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run of adapt_llm.py that reuses the trained gate (or resumed its training) reports
    the seconds the card holds for every piece, not the 0 its own step took."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import adapt_llm

    from rarx.train.common import FitResult, TrainOptions, write_card

    # the last of two pieces (600 s) resumed one that trained 3000 s; the caching pass
    # (1200 s), the probe and the dev scoring were made by the first piece and reused
    result = FitResult(steps=40, epochs=0.5, seconds=3600.0, started="", stopped_early=False,
                       loss_history=[], resumed_from=25, piece_seconds=600.0,
                       seconds_before=3000.0)  # fmt: skip
    opts = TrainOptions(data="d", base="b", out=tmp_path, resume=True)
    write_card(opts, "gate", [], result, {"probe_seconds": 90.5},
               state_cache={"seconds": 1200.0, "reused": True},
               before_training={"seconds": 45.0, "reused": True})  # fmt: skip
    card = json.loads((tmp_path / "rarx_model.json").read_text())
    assert card["options"]["seconds_before_resume"] == 3000.0
    got = adapt_llm.training_seconds(card)
    assert got == {"training_loop": 3600.0, "caching_pass": 1200.0, "probe": 90.5,
                   "dev_before_training": 45.0, "total": 4935.5}  # fmt: skip
    # a card without those parts (full fine-tuning, no probe): the loop alone
    assert adapt_llm.training_seconds({"seconds": 607.7}) == {"training_loop": 607.7,
                                                              "total": 607.7}  # fmt: skip
