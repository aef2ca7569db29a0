"""MCR files and RAR-b's scoring rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rarx.cli.main import cli
from rarx.errors import InputError
from rarx.eval.datasets.base import McrItem
from rarx.eval.mcr import (
    mcr_files,
    predict,
    rarb_max_seq_length,
    rarb_query,
    read_mcr_csv,
    score_mcr,
    write_mcr_csv,
)

HEADER = "instructions,queries,documents,labels\n"


def _csv(tmp_path: Path, body: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_reads_rarb_layout_with_quotes_and_commas(tmp_path: Path) -> None:
    path = _csv(tmp_path, '"Pick one.","Why, then?","[\'a, b\', ""it\'s c""]",1\n,q2,"[\'x\']",0\n')
    items = read_mcr_csv(path)
    assert items == [McrItem("Pick one.", "Why, then?", ("a, b", "it's c"), 1),
                     McrItem("", "q2", ("x",), 0)]  # fmt: skip


def test_round_trip(tmp_path: Path) -> None:
    items = [McrItem("Inst.", 'q "quoted", with comma', ("o'1", 'o"2', "o,3"), 2)]
    write_mcr_csv(tmp_path / "x.csv", items)
    assert read_mcr_csv(tmp_path / "x.csv") == items


def test_malformed_list_literal_names_file_and_row(tmp_path: Path) -> None:
    path = _csv(tmp_path, "i,q,\"['a', 'b']\",0\ni,q,\"['a', 'b'\",0\n")
    with pytest.raises(InputError, match=r"t\.csv:3: documents is not a Python list literal"):
        read_mcr_csv(path)


def test_code_in_documents_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _csv(tmp_path, f"i,q,\"__import__('pathlib').Path('{marker}').touch()\",0\n")
    with pytest.raises(InputError, match=r"t\.csv:2:"):
        read_mcr_csv(path)
    assert not marker.exists()


def test_label_out_of_range_and_not_a_list(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"t\.csv:2: label 2 is out of range for 2 options"):
        read_mcr_csv(_csv(tmp_path, "i,q,\"['a', 'b']\",2\n"))
    with pytest.raises(InputError, match=r"t\.csv:2: label 'x' is not an integer"):
        read_mcr_csv(_csv(tmp_path, "i,q,\"['a', 'b']\",x\n"))
    with pytest.raises(InputError, match=r"t\.csv:2: documents must be a non-empty list"):
        read_mcr_csv(_csv(tmp_path, "i,q,\"'just a string'\",0\n"))


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("queries,documents,labels\nq,\"['a']\",0\n")
    with pytest.raises(InputError, match=r"bad\.csv:1: missing column\(s\) instructions"):
        read_mcr_csv(path)


def test_files_of_a_folder(tmp_path: Path) -> None:
    _csv(tmp_path, "i,q,\"['a']\",0\n", "b.csv")
    _csv(tmp_path, "i,q,\"['a']\",0\n", "a.csv")
    (tmp_path / "TempReason").mkdir()
    _csv(tmp_path / "TempReason", "i,q,\"['a']\",0\n", "l2.csv")
    assert [p.name for p in mcr_files(tmp_path)] == ["a.csv", "b.csv", "l2.csv"]
    with pytest.raises(InputError, match="no such MCR file"):
        mcr_files(tmp_path / "missing")


def test_query_text_as_rarb_builds_it() -> None:
    assert rarb_query("  q ", None) == "  q "  # without instructions: as is
    assert rarb_query("q ", " Inst.") == "Inst. q"  # with: joined by a space, stripped
    assert rarb_query(" q", "") == "q"
    assert rarb_max_seq_length("minilm") == 512
    assert rarb_max_seq_length("BAAI/bge-small-en-v1.5") is None


def test_ties_go_to_the_first_option() -> None:
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    opts = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [3.0, 0.0]], dtype=np.float32)
    assert predict(q, [opts]) == [1]  # cosine ignores length: 1, 2 and 3 tie; 1 is first


class _Lookup:
    """An encoder with fixed vectors, to test scoring without a model."""

    def __init__(self, table: dict[str, list[float]]):
        self.table = table
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size: int = 64):  # noqa: ANN001, ANN201
        self.calls.append(list(texts))
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_scoring_uses_instruction_only_for_queries_and_caches_options() -> None:
    table = {"q": [1, 0], "Inst. q": [0, 1], "A": [1, 0.1], "B": [0.1, 1]}
    enc = _Lookup(table)
    items = [McrItem("Inst.", "q", ("A", "B"), 1)]
    cache: dict = {}
    assert score_mcr(items, enc, False, option_cache=cache) == (0.0, [0])
    assert score_mcr(items, enc, True, option_cache=cache) == (1.0, [1])
    assert enc.calls == [["A", "B"], ["q"], ["Inst. q"]]  # options encoded once


@pytest.mark.slow
def test_real_minilm_ties_and_batching(tmp_path: Path) -> None:
    from rarx.eval.mcr import mcr_encoder

    enc = mcr_encoder("minilm")
    assert enc.model.max_seq_length == 512
    items = [
        McrItem("", "What do plants need for photosynthesis?", ("sunlight", "sunlight"), 1),
        McrItem("", "What do plants need for photosynthesis?", ("sunlight", "sunlight"), 0),
        McrItem("Answer it.", "Which animal barks?", ("a cat", "a dog", "a fish"), 1),
        McrItem("Answer it.", "Where do fish live?", ("in trees", "in deserts", "in water"), 2),
    ]
    for inst in (False, True):
        acc, preds = score_mcr(items, enc, inst)
        # Identical options tie exactly: the first wins, so item 0 is wrong, item 1 right.
        assert preds[:2] == [0, 0]
        assert preds[2:] == [1, 2] and acc == 0.75
        # RAR-b's loop encodes the options of a question as one batch; there two copies of
        # one string need not get bit-identical vectors, so only distinct options compare.
        assert score_mcr(items[2:], enc, inst, per_question=True)[1] == preds[2:]


@pytest.mark.slow
def test_cli_mcr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    write_mcr_csv(tmp_path / "a.csv", [McrItem("Answer it.", "Which animal barks?",
                                               ("a cat", "a dog"), 1)])  # fmt: skip
    cli.main(["eval", "mcr", "--data", str(tmp_path), "--instructions", "--json",
              "--results", str(tmp_path / "r.json")], standalone_mode=False)  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    (row,) = out["files"]
    assert row["questions"] == 1 and row["accuracy_without_instructions"] == 1.0
    assert out["settings"]["max_seq_length"] == 512
    assert json.loads((tmp_path / "r.json").read_text())["versions"]["rarx"]
