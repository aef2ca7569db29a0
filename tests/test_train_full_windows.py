"""FIRST training windows shaped like RAR-b's Full evaluation windows, built from a
multiple-choice file written here: per-source option pools, the packaged MiniLM and real
BM25 first stages, the qrels teacher, instructions, and the leakage record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rarx.errors import ConfigError
from rarx.train.data.ranking import make_windows, read_windows
from rarx.types import Document, Hit, Query, Ranking

# Two sources; each question's options name things of its own kind, so a pool holds
# plausible distractors (the question's own and its neighbours').
ITEMS = [
    ("sci/0", "sci", "train", "Which gas do plants take in from the air?",
     ["carbon dioxide from the air", "helium gas", "sand from rivers", "plastic bags"], 0),
    ("sci/1", "sci", "train", "Which planet is closest to the sun?",
     ["Mars, the red planet", "Mercury, nearest the sun", "Jupiter, the gas giant planet",
      "Neptune, a cold planet"], 1),
    ("sci/2", "sci", "train", "What is frozen water called?",
     ["steam from hot water", "lava", "ice, frozen water", "smoke"], 2),
    ("sci/3", "sci", "dev", "Which gas do animals breathe in?",
     ["oxygen gas", "neon", "argon", "chlorine"], 0),
    ("life/0", "life", "train", "Where do you keep milk cold?",
     ["in the oven", "in the refrigerator, where milk stays cold", "in the closet",
      "in the cold garden"], 1),
    ("life/1", "life", "train", "What do you use to cut paper?",
     ["scissors cut paper", "a spoon", "a pillow", "a paper bucket"], 0),
]  # fmt: skip
INSTRUCTION = "Retrieve the answer to the question."


@pytest.fixture
def toy_eval_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The leakage check against one toy evaluation set (building every packaged set takes
    seconds), which shares one question of the data among its two."""
    from rarx.eval import leakage

    keys = tuple(leakage.question_key(q) for q in ("What is frozen water called?", "unseen"))
    monkeypatch.setattr(leakage, "known_eval_sets",
                        lambda *a, **k: [leakage.EvalSet("toy-eval", keys)])  # fmt: skip


def write_mc(path: Path, items: list[tuple] = ITEMS) -> Path:
    rows = [{"id": i, "source": s, "split": sp, "instruction": INSTRUCTION, "question": q,
             "query": q, "options": o, "label": lab} for i, s, sp, q, o, lab in items]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_inserted_answer_goes_to_a_seeded_random_place_and_instructions_are_kept():
    docs = {f"d{i}": f"passage {i}" for i in range(8)}
    queries = [Query(f"q{i}", "which?") for i in range(12)]
    rankings = [Ranking(q.qid, tuple(Hit(f"d{j}", 9.0 - j) for j in range(4))) for q in queries]
    qrels = {q.qid: {"d7": 1} for q in queries}  # the answer is never retrieved
    kw: dict[str, Any] = dict(qrels=qrels, window=4, seed=3, instructions={"q0": "Do it."})
    last, _ = make_windows(queries, rankings, docs, **kw)
    rand, stats = make_windows(queries, rankings, docs, insert_at="random", **kw)
    again, _ = make_windows(queries, rankings, docs, insert_at="random", **kw)
    assert {w.docids.index("d7") for w in last} == {3}
    assert rand == again and len({w.docids.index("d7") for w in rand}) > 1
    assert stats.inserted_relevant == 12 and all(w.docids[w.order[0]] == "d7" for w in rand)
    # the window keeps the other three first-stage candidates in their order
    assert all([d for d in w.docids if d != "d7"] == ["d0", "d1", "d2"] for w in rand)
    assert [w.instruction for w in rand[:2]] == ["Do it.", ""]
    with pytest.raises(ConfigError, match="insert_at must be one of last, random"):
        make_windows(queries, rankings, docs, insert_at="first", **kw)


@pytest.mark.parametrize("stage", ["minilm", "bm25"])
def test_windows_come_from_each_sources_pool_of_training_options(
    tmp_path: Path, stage: str, toy_eval_sets: None
) -> None:
    from rarx.train.data.full_windows import build_full_windows

    data = write_mc(tmp_path / "mc.jsonl")
    out = tmp_path / "w.jsonl"
    stats = build_full_windows(str(data), out, first_stages=[stage], window=6, shuffle=0.0,
                               instruction_share=1.0, work_dir=tmp_path / "idx")  # fmt: skip
    windows = {w.qid: w for w in read_windows(out)}
    assert sorted(windows) == ["life/0", "life/1", "sci/0", "sci/1", "sci/2"]  # no dev item
    options = {i: (o, lab) for i, _, _, _, o, lab in ITEMS}
    for qid, w in windows.items():
        source_options = {x for i, s, sp, _, o, _ in ITEMS
                          if s == w.source and sp == "train" for x in o}  # fmt: skip
        assert set(w.passages) <= source_options  # the question's own source only
        if stage == "minilm":  # BM25 finds only the options that share a word
            assert len(w.passages) == min(6, len(source_options))
        opts, label = options[qid]
        assert w.passages[w.order[0]] == opts[label]  # the teacher: the correct option first
        assert w.instruction == INSTRUCTION and w.teacher == "qrels"
    assert "oxygen gas" not in {p for w in windows.values() for p in w.passages}  # a dev option
    assert stats.windows == 5 and stats.shuffled == 0
    manifest = json.loads((tmp_path / "w.manifest.json").read_text())
    assert manifest["split"] == "train" and manifest["first_stages"] == [stage]
    assert manifest["per_source"]["sci"]["pool_documents"] == 12
    assert manifest["per_source"]["sci"]["first_stages"] == {stage: 3}
    assert manifest["overlap"] == {"toy-eval": 0.5}  # measured, kept beside the file


@pytest.mark.slow
def test_the_leakage_record_covers_the_sets_first_is_evaluated_on(tmp_path: Path) -> None:
    from rarx.train.data.full_windows import build_full_windows

    out = tmp_path / "w.jsonl"
    build_full_windows(str(write_mc(tmp_path / "mc.jsonl")), out, first_stages=["bm25"],
                       window=4, work_dir=tmp_path / "idx")  # fmt: skip
    overlap = json.loads((tmp_path / "w.manifest.json").read_text())["overlap"]
    for name in ("arc-challenge", "piqa", "siqa", "sciq", "boolq"):
        assert overlap[name] == 0.0


@pytest.mark.slow
def test_a_mix_of_first_stages_and_of_instructions_is_seeded_per_question(
    tmp_path: Path, toy_eval_sets: None
) -> None:
    from rarx.train.data.full_windows import build_full_windows, first_stage_of

    data = write_mc(tmp_path / "mc.jsonl")
    out = tmp_path / "w.jsonl"
    build_full_windows(str(data), out, first_stages=["minilm", "bm25"], window=4,
                       instruction_share=0.5, seed=7, work_dir=tmp_path / "idx")  # fmt: skip
    manifest = json.loads((tmp_path / "w.manifest.json").read_text())
    picks = {q: first_stage_of(q, ["minilm", "bm25"], 7)
             for q in ["sci/0", "sci/1", "sci/2", "life/0", "life/1"]}  # fmt: skip
    got = {k: v for s in manifest["per_source"].values() for k, v in s["first_stages"].items()}
    for stage in ("minilm", "bm25"):
        assert sum(v for s in manifest["per_source"].values()
                   for k, v in s["first_stages"].items() if k == stage) == sum(
            p == stage for p in picks.values())  # fmt: skip
    assert set(got) <= {"minilm", "bm25"}
    windows = read_windows(out)
    with_inst = {w.qid for w in windows if w.instruction}
    assert 0 < len(with_inst) < len(windows)  # half the prompts open with it (5 questions)
    again = tmp_path / "again.jsonl"
    build_full_windows(str(data), again, first_stages=["minilm", "bm25"], window=4,
                       instruction_share=0.5, seed=7, work_dir=tmp_path / "idx")  # fmt: skip
    assert read_windows(again) == windows


def test_evaluation_sources_and_unknown_first_stages_are_refused(tmp_path: Path):
    from rarx.train.data.full_windows import build_full_windows

    data = write_mc(tmp_path / "mc.jsonl",
                    [("piqa/0", "piqa", "train", "How to boil eggs?", ["heat", "freeze"], 0),
                     *ITEMS])  # fmt: skip
    with pytest.raises(ConfigError, match="piqa of .* are evaluation data"):
        build_full_windows(str(data), tmp_path / "w.jsonl", work_dir=tmp_path / "idx")
    with pytest.raises(ConfigError, match="first stages must be among minilm, bm25"):
        build_full_windows(str(data), tmp_path / "w.jsonl", sources=["sci"],
                           first_stages=["splade"])  # fmt: skip
    assert not (tmp_path / "w.jsonl").exists()


def test_data_ranking_cli_builds_full_windows_from_a_multiple_choice_file(
    tmp_path: Path, toy_eval_sets: None
) -> None:
    from click.testing import CliRunner

    from rarx.cli.main import cli

    data = write_mc(tmp_path / "mc.jsonl")
    out = tmp_path / "w.jsonl"
    args = ["train", "data", "ranking", "--dataset", str(data), "--out", str(out), "--window",
            "4", "--sources", "sci", "--first-stage", "bm25", "--work-dir",
            str(tmp_path / "idx"), "-q"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "wrote 3 windows" in res.output
    assert {w.source for w in read_windows(out)} == {"sci"}
    res = CliRunner().invoke(cli, [*args, "--index", str(tmp_path)])
    assert isinstance(res.exception, ConfigError)
    assert "--index, --teacher-run and --no-insert-relevant" in str(res.exception)


def test_a_window_with_an_instruction_is_prompted_as_first_with_that_instruction(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.rerank.listwise import FirstReranker
    from rarx.train.data.ranking import RankingWindow
    from rarx.train.first import WindowEncoder
    from tests.conftest import TINY_DOCS, tiny_chat_llama

    model = tiny_chat_llama(tmp_path / "lm", [d["text"] for d in TINY_DOCS] * 4, 300, 512)
    llm = TransformersLLM(str(model), device="cpu")
    texts = ("lava flows", "ice melts", "cells divide")
    w = RankingWindow("q", "what erupts?", ("a", "b", "c"), texts, (0, 1, 2),
                      instruction=INSTRUCTION)  # fmt: skip
    q = Query("q", w.query)
    pairs = enumerate(zip(w.docids, texts, strict=True))
    r = Ranking("q", tuple(Hit(d, 3.0 - i, Document(d, t)) for i, (d, t) in pairs))
    res = FirstReranker(llm, k=3, window=3, stride=2, instruction=INSTRUCTION).rerank_detailed(
        [q], [r]
    )[0]
    sent = next(d for e, d in res.events if e == "llm_call")["prompt"]
    assert llm.render(WindowEncoder(llm).prompt(w)) == sent
    assert INSTRUCTION in sent
