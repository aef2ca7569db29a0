"""RAR-b's MCR file kinds: every kind read from a tiny file in its own layout and place,
and C-STS built as RAR-b's create_csts.py builds it."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from rarx.errors import InputError
from rarx.eval.datasets.base import McrItem
from rarx.eval.mcr import read_mcr_csv
from rarx.eval.mcr_kinds import BY_NAME, KINDS, build_csts, load_mcr, mcr_kind, write_csts

# One question per kind, shaped as that kind's file holds it (query construction and
# option count read from RAR-b's files and code); the instruction comes from the kind.
SHAPES: dict[str, tuple[str, list[str], int]] = {
    "arc-challenge": ("Which gas do plants take in to make food?",
                      ["oxygen", "carbon dioxide", "nitrogen", "helium"], 1),
    "alphanli": ("start: Tom planted seeds. end: Tom ate fresh tomatoes.",
                 ["Tom's seeds grew well.", 'He said "no" to water.'], 0),
    "hellaswag": ("A man is standing on a ladder. He",
                  ["paints the wall.", "eats the ladder.", "flies away.", "sleeps."], 0),
    "piqa": ("To open a jar, you can", ["twist the lid.", "shake the floor."], 0),
    "quail": ("Anna had a cat named Tom. Tom liked milk. Why did Anna buy milk?",
              ["for Tom", "for a dog", "not enough information", "to bake"], 0),
    "siqa": ("Context: Kai gave Sam a gift. Question: How would Sam feel?",
             ["happy", "angry", "bored"], 0),
    "spartqa": ("We have two blocks, A and B. A is above B. Is B below A?",
                ["Yes", "No", "Do not know", "Both"], 0),
    "winogrande": ("The cup fell off the table because _ was tilted.", ["cup", "table"], 1),
    **{f"tempreason-{lv}-{st}": (f"Who owned the mill in {lv}/{st}, 1970?",
                                  [f"Owner {i}" for i in range(7)], 0)
       for lv in ("l2", "l3") for st in ("pure", "fact", "context")},
    "csts-easy": ("A red car on a road.",
                  ['In terms of "The color", retrieve a sentence similar to the following. '
                   "A blue car parked.",
                   'In terms of "The vehicle", retrieve a sentence similar to the following. '
                   "A blue car parked."], 0),
    "csts-hard": ("Sentence1: A red car on a road.; Sentence2: A blue car parked.",
                  ["The vehicle.", "The color."], 0),
}  # fmt: skip


def _write_rarb(path: Path, rows: list[tuple[str, str, list[str], int]]) -> None:
    """A file as RAR-b wrote it: pandas' to_csv of a frame whose documents column holds
    Python lists (so the cell is the list's str())."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["instructions", "queries", "documents", "labels"])
        for inst, q, docs, label in rows:
            w.writerow([inst, q, str(docs), label])


def test_every_rarb_kind_is_read_from_its_place_in_mcr(tmp_path: Path) -> None:
    root = tmp_path / "mcr"
    for kind in KINDS:
        q, docs, label = SHAPES[kind.name]
        _write_rarb(root / kind.path, [(kind.instruction, q, docs, label)])
    sets = load_mcr(root)
    assert sorted(s.label for s in sets) == sorted(k.name for k in KINDS)
    assert len(KINDS) == 16  # 8 tasks, 6 TempReason variants, 2 C-STS sets
    for s in sets:
        q, docs, label = SHAPES[s.kind.name]
        assert s.items == [McrItem(s.kind.instruction, q, tuple(docs), label)]
        assert s.path.as_posix().endswith(s.kind.path)


def test_instructions_are_rarbs() -> None:
    # task_to_instruction in RAR-b's rarb/dataset_utils.py; C-STS's from create_csts.py
    assert BY_NAME["piqa"].instruction == "Given the following goal, retrieve a possible solution."
    assert BY_NAME["tempreason-l3-fact"].instruction == (
        "Given the following question and facts, retrieve the correct answer.")  # fmt: skip
    assert BY_NAME["siqa"].instruction == BY_NAME["quail"].instruction
    assert BY_NAME["csts-hard"].instruction == (
        "Retrieve a condition under which the following two sentences are similar.")  # fmt: skip


def test_kind_from_file_name() -> None:
    assert mcr_kind("ARC-Challenge-test.csv").name == "arc-challenge"
    assert mcr_kind("/x/mcr/physicaliqa-test.csv").name == "piqa"
    assert mcr_kind("/x/mcr/TempReason/test-l3-context.csv").name == "tempreason-l3-context"
    assert mcr_kind("/x/test-l2-pure.csv") is None  # TempReason files live in TempReason/
    assert mcr_kind("/x/mcr/my-arc.csv") is None


def test_a_rarb_row_with_quotes_in_options(tmp_path: Path) -> None:
    # alphanli and csts-easy cells mix quote styles, as pandas wrote them
    path = tmp_path / "alphanli-test.csv"
    path.write_text(
        "instructions,queries,documents,labels\n"
        '"Given the following start and end of a story, retrieve a possible reason that leads '
        'to the end.",start: A. end: B.,"[""Ron\'s boss left."", \'It rained.\']",1\n',
        encoding="utf-8",
    )
    (s,) = load_mcr(path)
    assert s.kind.name == "alphanli"
    assert s.items[0].options == ("Ron's boss left.", "It rained.") and s.items[0].label == 1


def test_a_different_instruction_is_noted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_rarb(tmp_path / "winogrande-test.csv", [("Fill the gap.", "A _ B", ["x", "y"], 0)])
    with caplog.at_level(logging.WARNING, logger="rarx.eval.mcr_kinds"):
        (s,) = load_mcr(tmp_path / "winogrande-test.csv")
    assert s.items[0].instruction == "Fill the gap."  # kept: RAR-b invites custom ones
    assert "1 of 1 rows carry an instruction other than RAR-b's for winogrande" in caplog.text


CSTS = [  # sentence1, sentence2, condition, label (C-STS's csts_validation.csv layout)
    ("Two dogs run.", "A dog sleeps.", "The number of dogs.", 1),
    ("Two dogs run.", "A dog sleeps.", "The animal.", 5),
    ("A red car.", "A blue car.", "The vehicle.", 5),
    ("A red car.", "A blue car.", "The color.", 1),
    ("A man sings.", "A man talks.", "The person.", 4),  # one condition: dropped
    ("A cat eats.", "A cat naps.", "The animal.", 3),  # repeats (s1, s2, label): both dropped
    ("A cat eats.", "A cat naps.", "The food.", 3),
]


def _write_csts(path: Path, rows: list[tuple[str, str, str, int]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["sentence1", "sentence2", "condition", "label"])
        w.writerows(rows)
    return path


def test_csts_built_as_rarb_builds_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = _write_csts(tmp_path / "csts_validation.csv", CSTS)
    with caplog.at_level(logging.WARNING, logger="rarx.eval.mcr_kinds"):
        built = build_csts(source)
    # pairs in sorted (sentence1, sentence2) order; conditions in file order; label 0
    easy_inst = "Retrieve an aspect and a sentence which are similar to the following sentence."
    assert built["csts-easy"] == [
        McrItem(easy_inst, "A red car.", (
            'In terms of "The vehicle", retrieve a sentence similar to the following. A blue car.',
            'In terms of "The color", retrieve a sentence similar to the following. A blue car.',
        ), 0),
        McrItem(easy_inst, "Two dogs run.", (
            'In terms of "The number of dogs", retrieve a sentence similar to the following. '
            "A dog sleeps.",
            'In terms of "The animal", retrieve a sentence similar to the following. '
            "A dog sleeps.",
        ), 0),
    ]  # fmt: skip
    hard = built["csts-hard"]
    assert [(it.query, it.options, it.label) for it in hard] == [
        ("Sentence1: A red car.; Sentence2: A blue car.", ("The vehicle.", "The color."), 0),
        ("Sentence1: Two dogs run.; Sentence2: A dog sleeps.",
         ("The number of dogs.", "The animal."), 0),
    ]  # fmt: skip
    assert hard[0].instruction == BY_NAME["csts-hard"].instruction
    # the dogs pair lists its less similar condition first: RAR-b's label 0 is noted
    assert "1 of 2 pairs do not list their most similar condition first" in caplog.text


def test_csts_source_read_as_two_sets_and_written_as_rarb_files(tmp_path: Path) -> None:
    source = _write_csts(tmp_path / "csts_validation.csv", CSTS)
    assert [s.label for s in load_mcr(source)] == ["csts-easy", "csts-hard"]
    paths = write_csts(source, tmp_path / "mcr")
    assert [p.name for p in paths] == ["csts-easy-test.csv", "csts-hard-test.csv"]
    assert read_mcr_csv(paths[1]) == build_csts(source)["csts-hard"]
    assert [s.label for s in load_mcr(tmp_path / "mcr")] == ["csts-easy", "csts-hard"]


def test_csts_errors(tmp_path: Path) -> None:
    bad = tmp_path / "c.csv"
    bad.write_text("sentence1,sentence2,condition\na,b,c\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"c\.csv:1: missing column\(s\) label"):
        build_csts(bad)
    single = _write_csts(tmp_path / "s.csv", CSTS[4:5])
    with pytest.raises(InputError, match="no sentence pair has two conditions"):
        build_csts(single)
