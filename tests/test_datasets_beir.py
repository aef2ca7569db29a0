"""BEIR / RAR-b Full folders from a local path, and the offline download error."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest

from rarx.errors import InputError, RarxError
from rarx.eval.datasets import load_beir
from rarx.eval.datasets.download import download_dataset
from rarx.eval.retrieval import resolve_dataset


def make_beir(root: Path, instruction: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    docs = [("d1", "Volcanoes", "Magma erupts as lava."), ("d2", "", "Cells make ATP.")]
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs)
    )
    (root / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "why lava", "answers": ["magma"]}) + "\n"
        + json.dumps({"_id": "q2", "text": "energy of cells"}) + "\n"
    )  # fmt: skip
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n")
    if instruction:
        (root / "instruction.txt").write_text(instruction + "\n")
    return root


def test_reads_a_rarb_full_folder(tmp_path: Path) -> None:
    data = load_beir(make_beir(tmp_path / "full" / "task", "Retrieve the answer."))
    assert [d.docid for d in data.corpus] == ["d1", "d2"]
    assert data.corpus[0].title == "Volcanoes"
    assert list(data.queries[0].meta["answers"]) == ["magma"]
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert data.instruction == "Retrieve the answer."
    assert data.warnings == ()
    assert resolve_dataset(str(tmp_path / "full" / "task")).path == data.path


def test_missing_queries_names_the_file_and_layout(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "ds")
    (root / "queries.jsonl").unlink()
    with pytest.raises(InputError, match=r"missing queries\.jsonl; a BEIR folder holds"):
        load_beir(root)


def test_missing_split_lists_the_splits_found(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "ds")
    with pytest.raises(InputError, match=r"missing qrels/dev\.tsv \(qrels splits found: test\.tsv"):
        load_beir(root, split="dev")


def test_unknown_query_ids_in_qrels_are_a_warning(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "ds")
    with open(root / "qrels" / "test.tsv", "a") as f:
        f.write("q9\td1\t1\nq8\td9\t1\n")
    data = load_beir(root)
    assert any("2 of 4 judged query ids are not in queries.jsonl" in w for w in data.warnings)
    assert any("1 judged documents are not in corpus.jsonl" in w for w in data.warnings)
    assert [q.qid for q in data.judged_queries] == ["q1", "q2"]


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(RarxError, match="neither a dataset folder nor a packaged dataset"):
        resolve_dataset(str(tmp_path / "nope"))


def test_offline_download_says_where_to_put_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    target = tmp_path / "beir" / "scifact"
    with pytest.raises(RarxError) as err:
        download_dataset("beir/scifact", target)
    msg = str(err.value)
    assert "scifact.zip" in msg and "5f7d1de60b170fc8027bb7898e2efca1" in msg
    assert f"put the folder at {target}" in msg and "corpus.jsonl" in msg
    assert not target.exists() and list((tmp_path / "beir").iterdir()) == []


def test_download_specs() -> None:
    with pytest.raises(RarxError, match="unknown download 'beir/nosuch'; known: beir/scifact"):
        download_dataset("beir/nosuch")
    with pytest.raises(RarxError, match=r"unknown RAR-b task 'nosuch'; RAR-b's Full sets are"):
        download_dataset("rarb/nosuch")
