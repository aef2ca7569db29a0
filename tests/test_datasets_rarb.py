"""RAR-b's Full sets in their published layout (one hub repository per task), the
instruction per task, and `rarx datasets download rarb/<task>` with the hub faked."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from rarx.cli.main import cli
from rarx.errors import RarxError
from rarx.eval.datasets import load_beir
from rarx.eval.datasets.download import download_dataset
from rarx.eval.datasets.rarb import TASKS, rarb_task

PIQA = TASKS["piqa"].instruction

CORPUS = [  # as the hub's files have them: integer ids, titles empty or absent, metadata
    {"_id": 0, "title": "", "text": "Put the egg in boiling water for ten minutes."},
    {"_id": 1, "text": "Keep the bread in a sealed plastic bag."},
    {"_id": 2, "title": "", "text": "Paint the fence with a wide brush.", "metadata": {}},
    {"_id": 3, "title": "", "text": "Water the tomato plants every morning."},
]
QUERIES = [
    {"_id": "0", "title": "", "text": "How do I hard boil an egg?"},
    {"_id": "1", "title": "", "text": "How can I keep bread from going stale?"},
    {"_id": "2", "title": "", "text": "an unjudged query"},
]


def published_layout(root: Path, script: str = "piqa.py") -> Path:
    """A folder exactly as `git clone https://huggingface.co/datasets/RAR-b/piqa` leaves it
    (data files, loading script, card), under a name that is not the task's."""
    (root / "qrels").mkdir(parents=True)
    for name, rows in (("corpus.jsonl", CORPUS), ("queries.jsonl", QUERIES)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    # pandas' to_csv(sep="\t", index=False): a header row, then integer ids and scores
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n0\t0\t1\n1\t1\t1\n")
    if script:
        (root / script).write_text('_DESCRIPTION = "RAR-b piqa Dataset"\n')
    (root / "README.md").write_text("---\nlicense: mit\n---\n")
    return root


def test_published_layout_evaluates_with_the_task_instruction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = published_layout(tmp_path / "clone")
    data = load_beir(folder)
    assert [d.docid for d in data.corpus] == ["0", "1", "2", "3"]
    assert [d.title for d in data.corpus] == ["", "", "", ""]
    assert data.qrels == {"0": {"0": 1}, "1": {"1": 1}}
    assert [q.qid for q in data.judged_queries] == ["0", "1"]
    assert data.instruction == PIQA  # from the loading script's name: no instruction.txt
    assert data.warnings == ()

    args = [
        "eval",
        "retrieval",
        "--dataset",
        str(folder),
        "--model",
        "minilm",
        "--instructions",
        "-m",
        "nDCG@10",
        "-k",
        "4",
        "--work-dir",
        str(tmp_path / "w"),
        "--json",
        "-q",
    ]
    cli.main(args, standalone_mode=False)
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"]["queries"] == 2 and out["dataset"]["instruction"] == PIQA
    plain, inst = out["systems"]
    assert (plain["system"], inst["system"]) == ("minilm", "minilm +inst")
    assert plain["settings"]["instruction"] == "" and inst["settings"]["instruction"] == PIQA
    assert plain["measures"]["nDCG@10"] == 1.0  # each query's own answer ranks first


def test_task_from_folder_name_and_instruction_file(tmp_path: Path) -> None:
    by_name = published_layout(tmp_path / "arc-challenge", script="")
    assert load_beir(by_name).instruction == "Retrieve the answer to the question."
    own = published_layout(tmp_path / "mine")
    (own / "instruction.txt").write_text("My instruction.")
    assert load_beir(own).instruction == "My instruction."
    assert load_beir(published_layout(tmp_path / "other", script="")).instruction == ""


def test_offline_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def offline(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", offline)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    target = tmp_path / "rarb" / "piqa"
    with pytest.raises(RarxError) as err:
        download_dataset("rarb/piqa", target)
    msg = str(err.value)
    assert msg.startswith("cannot download RAR-b/piqa from the Hugging Face hub ([Errno -2]")
    assert "datasets/RAR-b/piqa` and `git checkout bb30be7e" in msg
    assert f"copy the folder to {target}" in msg and "qrels/<split>.tsv" in msg
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_download_writes_the_folder_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    hub_files = ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "piqa.py", "README.md"]
    calls = {}

    def info(self, repo, revision=None):  # noqa: ANN001, ANN202
        calls["info"] = (repo, revision)
        return SimpleNamespace(
            sha="c0ffee", siblings=[SimpleNamespace(rfilename=f) for f in hub_files]
        )

    def snapshot(repo, **kw):  # noqa: ANN001, ANN003, ANN202
        calls["snapshot"] = (repo, kw["revision"], kw["allow_patterns"])
        published_layout(Path(kw["local_dir"]), script="")
        (Path(kw["local_dir"]) / ".cache").mkdir()
        return str(kw["local_dir"])

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    target = download_dataset("rarb/PIQA", tmp_path / "got")
    assert calls["info"] == ("RAR-b/piqa", TASKS["piqa"].revision)
    repo, revision, patterns = calls["snapshot"]
    assert (repo, revision) == ("RAR-b/piqa", "c0ffee") and "piqa.py" not in patterns
    assert sorted(p.name for p in target.iterdir()) == [
        "README.md",
        "corpus.jsonl",
        "instruction.txt",
        "qrels",
        "queries.jsonl",
        "rarx_source.json",
    ]
    assert json.loads((target / "rarx_source.json").read_text())["revision"] == "c0ffee"
    assert load_beir(target).instruction == PIQA
    assert [p.name for p in tmp_path.iterdir()] == ["got"]  # no staging folder left


def test_unknown_task_lists_the_tasks() -> None:
    with pytest.raises(RarxError, match=r"unknown RAR-b task 'nosuch'; .*rarb/ARC-Challenge"):
        rarb_task("nosuch")
    assert len(TASKS) == 17 and rarb_task("tempreason-L1").name == "TempReason-l1"
