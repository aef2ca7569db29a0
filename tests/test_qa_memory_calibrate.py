"""Calibrating the QA memory's threshold on a dev split, and the cross-encoder rerank:
a real MiniLM memory and a tiny cross-encoder built in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rarx.errors import ConfigError
from rarx.eval.qa_memory import is_correct, pick_threshold
from rarx.pipeline import Pipeline, Resources

PAIRS = [
    {"id": "m1", "question": "What gas do plants take in for photosynthesis?",
     "answer": "carbon dioxide"},
    {"id": "m2", "question": "What is the powerhouse of the cell?", "answer": "mitochondria"},
    {"id": "m3", "question": "What molecule carries genetic information?", "answer": "DNA"},
    {"id": "m4", "question": "What force pulls objects toward the Earth?", "answer": "gravity"},
    {"id": "m5", "question": "What erupts from volcanoes?", "answer": "lava"},
]  # fmt: skip
# Paraphrases of stored questions (the memory answers them right) and unseen questions
# whose nearest stored question has another answer (it answers them wrong).
DEV = [
    {"question": "Which gas do plants absorb for photosynthesis?", "answer": "Carbon dioxide."},
    {"question": "What organelle is the powerhouse of the cell?", "answer": "the mitochondria"},
    {"question": "Which molecule carries the genetic information?", "answer": "DNA"},
    {"question": "What force pulls things toward Earth?", "answer": "gravity"},
    {"question": "What comes out of volcanoes when they erupt?", "answer": "lava"},
    {"question": "What gas do animals breathe in?", "answer": "oxygen"},
    {"question": "What is the control center of the cell?", "answer": "nucleus"},
    {"question": "What molecule carries amino acids to the ribosome?", "answer": "tRNA"},
    {"question": "How fast does light travel?", "answer": "300,000 km per second"},
    {"question": "What melts ice?", "answer": "heat"},
]  # fmt: skip


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("faiss")
    from rarx.index.qa_memory import QAMemoryIndex

    root = tmp_path_factory.mktemp("calibrate")
    QAMemoryIndex.build(_jsonl(root / "pairs.jsonl", PAIRS), root / "memory", quiet=True)
    return root / "memory", _jsonl(root / "dev.jsonl", DEV)


def _cli(*args: str) -> None:
    from rarx.cli.main import cli

    cli.main(["qa-memory", "calibrate", *args, "--quiet"], standalone_mode=False)


def test_pick_threshold_is_the_lowest_reaching_the_target() -> None:
    scored = [(0.95, True), (0.9, True), (0.85, False), (0.8, True), (0.8, True), (0.3, False)]
    # at 0.8: 4 of 5 right (0.8); at 0.3: 4 of 6; ties at 0.8 are taken together
    assert pick_threshold(scored, 0.8) == (0.8, 0.8, 5)
    assert pick_threshold(scored, 0.9) == (0.9, 1.0, 2)
    with pytest.raises(ConfigError, match=r"no threshold reaches precision 0.9 .*best reached "
                       r"is 0.800.*lower --precision"):  # fmt: skip
        pick_threshold(scored, 0.9, min_hits=3)
    assert is_correct("The Mitochondria", ["mitochondria"]) and not is_correct("DNA", ["RNA"])


@pytest.mark.slow
def test_calibrated_threshold_meets_its_precision_in_the_pipeline(
    built: tuple[Path, Path],
) -> None:
    memory, dev = built
    _cli("--memory", str(memory), "--dev", str(dev), "--precision", "0.9")
    manifest = json.loads((memory / "rarx_index.json").read_text())
    cal = manifest["params"]["calibration"]
    assert cal["rerank_model"] is None and cal["target"] == 0.9 and cal["questions"] == 10
    assert manifest["params"]["dense"] == "dense"  # the rest of the manifest is kept
    # the stage picks the calibrated threshold up by itself
    pipe = Pipeline.from_dict({"stages": [{"qa_memory": {"index": str(memory), "k": 1}}]},
                              resources=Resources())  # fmt: skip
    states = pipe.run([d["question"] for d in DEV])
    rows = []
    for s, d in zip(states, DEV, strict=True):
        (event,) = s.trace
        assert event.data["threshold"] == cal["threshold"]
        assert event.data["threshold_from"] == "calibration"
        right = is_correct(s.context["memory"][0]["answer"], [d["answer"]])
        rows.append((event.data["best_score"], right, event.event == "hit"))
    hits = [r for r in rows if r[2]]
    assert len(hits) == cal["hits"] >= 1
    assert sum(r[1] for r in hits) / len(hits) >= 0.9
    # lowest: letting in any question scoring below the threshold drops precision under 0.9
    for score, _, hit in rows:
        if not hit:
            taken = [r for r in rows if r[0] >= score]
            assert sum(r[1] for r in taken) / len(taken) < 0.9
    # an explicit threshold still wins
    pipe = Pipeline.from_dict({"stages": [{"qa_memory": {"index": str(memory),
                              "threshold": 0.99}}]}, resources=Resources())  # fmt: skip
    (state,) = pipe.run([DEV[0]["question"]])
    assert state.trace[0].data["threshold_from"] == "params" and state.trace[0].event == "miss"


@pytest.mark.slow
def test_calibration_error_when_no_threshold_reaches(built: tuple[Path, Path], tmp_path: Path):
    memory, _ = built
    before = (memory / "rarx_index.json").read_text()
    wrong = _jsonl(tmp_path / "wrong.jsonl", [{**d, "answer": "nothing"} for d in DEV])
    with pytest.raises(ConfigError, match="no threshold reaches precision 0.9 on 10 dev"):
        _cli("--memory", str(memory), "--dev", str(wrong))
    assert (memory / "rarx_index.json").read_text() == before  # nothing written


@pytest.mark.slow
def test_cross_encoder_rerank_decides_on_its_own_calibrated_scores(
    built: tuple[Path, Path], tiny_cross_encoder: str, tmp_path: Path
) -> None:
    from sentence_transformers import CrossEncoder

    from rarx.index.qa_memory import QAMemoryIndex

    memory, dev = built
    stage = {"index": str(memory), "k": 2, "rerank_model": tiny_cross_encoder, "rerank_k": 3}
    # a cosine calibration is no threshold for a cross-encoder's scores
    with pytest.raises(ConfigError, match="needs a threshold on that model's scores.*"
                       "--rerank-model"):  # fmt: skip
        Pipeline.from_dict({"stages": [{"qa_memory": stage}]}, resources=Resources())
    # the low target is reachable with a random tiny model: what is tested is the plumbing
    _cli("--memory", str(memory), "--dev", str(dev), "--precision", "0.2",
         "--rerank-model", tiny_cross_encoder, "--rerank-k", "3")  # fmt: skip
    cal = json.loads((memory / "rarx_index.json").read_text())["params"]["calibration"]
    assert cal["rerank_model"] == tiny_cross_encoder and cal["rerank_k"] == 3
    pipe = Pipeline.from_dict({"stages": [{"qa_memory": stage}]}, resources=Resources())
    query = "What organelle is the powerhouse of the cell?"
    (state,) = pipe.run([query])
    data = state.trace[0].data
    assert data["threshold"] == cal["threshold"] and data["threshold_from"] == "calibration"
    # the decision uses the cross-encoder's scores over the 3 nearest stored questions
    from rarx.types import Query

    nearest = QAMemoryIndex.load(memory).nearest([Query("q", query)], 3)[0]
    direct = CrossEncoder(tiny_cross_encoder).predict([(query, p.question) for p, _ in nearest])
    expected = sorted(direct.tolist(), reverse=True)[:2]
    got = [m["score"] for m in state.context["memory"]]
    assert got == pytest.approx(expected, abs=1e-4)
    assert (state.trace[0].event == "hit") == (data["best_score"] >= cal["threshold"])
