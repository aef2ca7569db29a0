"""benchmarks/train_fit.py: a tiny causal LM trained here by `rarx train choice` on a rule
that holds on its training questions and not on its dev questions, scored against its
base on both splits, stopped and resumed chunk by chunk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rarx.eval.datasets.base import McrItem
from tests.test_train_choice import THINGS, least_liked, write_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Any:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import train_fit

    return train_fit


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rarx.eval.mcr_scorers.llm_choice import ChoicePrompt
    from tests.conftest import tiny_chat_llama

    texts = [*THINGS, ChoicePrompt().footer, "Question: which thing is number",
             "A. B. C. D. Answer it."]  # fmt: skip
    return tiny_chat_llama(tmp_path_factory.mktemp("tiny-lm"), texts, 300, 512)


def items(best: int) -> list[McrItem]:
    """12 training questions of two sources whose answer is always at ``best``, 6 dev
    questions whose answer never is: what training teaches fits the training split only."""
    out = []
    for i in range(18):
        dev = i >= 12
        label = (best + 1 + i % 3) % 4 if dev else best
        options = tuple(THINGS[(i + j) % len(THINGS)] for j in range(4))
        q = f"which thing is number {i}"
        out.append(McrItem("Answer it.", q, options, label, id=f"toy/{i}",
                           source="even" if i % 2 == 0 else "odd",
                           split="dev" if dev else "train", question=q))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def trained(tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from click.testing import CliRunner

    from rarx.cli.main import cli

    root = tmp_path_factory.mktemp("fit")
    best = least_liked(str(tiny_lm))
    data = write_data(root / "mc.jsonl", items(best))
    out = root / "choice-tiny"
    res = CliRunner().invoke(cli, [
        "train", "choice", "--data", str(data), "--base", str(tiny_lm), "--out", str(out),
        "--max-steps", "20", "--lr", "3e-3", "--batch-size", "4", "--dev", "0",
        "--limit", "8", "--seed", "0", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    return {"model": out, "data": data, "best": best}


def run(bench: Any, model: Path, out: Path, *extra: str) -> dict[str, Any]:
    args = bench.parser().parse_args(["--model", str(model), "--n", "0", "--chunk", "4",
                                      "--out", str(out), "--tag", "t", "--device", "cpu",
                                      *extra])  # fmt: skip
    return bench.run(args)


def test_the_gap_of_two_samples_and_its_interval(bench: Any):
    far = bench.gap([1.0] * 30, [0.0] * 25 + [1.0] * 5)
    assert far["diff"] == pytest.approx(5 / 6, abs=1e-4) and far["n"] == [30, 30]
    assert far["ci95"][0] > 0.6 and far["p_value"] < 1e-6
    near = bench.gap([1.0, 0.0] * 20, [0.0, 1.0] * 20)
    assert near["diff"] == 0.0 and near["ci95"][0] < 0 < near["ci95"][1]
    assert near["p_value"] == pytest.approx(1.0)
    assert bench.gap([], [1.0])["diff"] is None


def test_the_training_questions_are_those_training_chose(bench: Any, trained: dict[str, Any]):
    from rarx.models.card import ModelCard
    from rarx.train.data.mc import spread

    setup = bench.training_setup(trained["model"])
    every = [it for it in items(trained["best"]) if it.split == "train"]
    assert [it.id for it in setup["train"]] == [it.id for it in spread(every, 8)]
    assert len(setup["train"]) == ModelCard.read(trained["model"]).options["train_questions"]
    assert [it.id for it in setup["dev"]] == [f"toy/{i}" for i in range(12, 18)]
    assert setup["scorer"] == "llm-choice" and setup["instructions"] is False


def test_a_changed_training_file_is_refused(bench: Any, trained: dict[str, Any], tmp_path: Path):
    moved = tmp_path / "mc.jsonl"
    moved.write_text(trained["data"].read_text().replace("number 3", "number three"))
    with pytest.raises(bench.FitError, match=r"is not the file .* was trained on"):
        bench.training_setup(trained["model"], moved)
    with pytest.raises(bench.FitError, match="has no rarx_model.json"):
        bench.training_setup(tmp_path)


def test_fit_without_generalisation_shows_as_a_gain_gap_and_resumes(
    bench: Any, trained: dict[str, Any], tmp_path: Path
):
    """The trained model picks the taught letter: right on every training question, wrong
    on every dev one; its base is wrong on the training ones. A first piece stops after one
    chunk; --resume scores only what is missing and gives the figures of one whole run."""
    from rarx.eval.report import read_file

    first = run(bench, trained["model"], tmp_path, "--chunks", "1")
    assert first["complete"] is False
    with pytest.raises(SystemExit, match="--resume"):
        run(bench, trained["model"], tmp_path)
    res = run(bench, trained["model"], tmp_path, "--resume")
    assert res["complete"] is True
    lines = (tmp_path / "train_fit-t.questions.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines[1:] if '"system"' in x]
    assert len(recs) == 2 * (8 + 6)  # every question once per model: none scored twice
    by = {e["name"]: e for e in res["splits"]}
    assert by["train"]["scored"] == 8 and by["dev"]["scored"] == 6
    acc = {(e["name"], s): v["without"]["accuracy"] for e in res["splits"]
           for s, v in e["systems"].items()}  # fmt: skip
    assert acc["train", "base"] == 0.0 and acc["train", "trained"] == 1.0
    assert acc["dev", "trained"] == 0.0
    assert acc["train/even", "trained"] == acc["train/odd", "trained"] == 1.0
    assert by["train/even"]["scored"] + by["train/odd"]["scored"] == 8
    assert by["train"]["paired"]["trained"]["without"]["better"] == 8
    gaps = res["gaps"]
    assert gaps["trained"]["diff"] == 1.0 and gaps["trained"]["n"] == [8, 6]
    gain_gap = 1.0 - (0.0 - acc["dev", "base"])  # gained on train, lost on dev
    assert gaps["trained - base"]["diff"] == pytest.approx(gain_gap, abs=1e-4)
    assert gaps["trained - base"]["ci95"][0] > 0
    saved = json.loads((tmp_path / "train_fit-t.json").read_text())
    assert saved["training"]["train_questions"] == 8 and saved["settings"]["seed"] == 0
    rep, _ = read_file(tmp_path / "train_fit-t.json")
    keys = [s.key for s in rep.sections]
    assert keys == ["train-fit", "train-fit-sources", "train-fit-gap", "train-fit-seconds"]
    shown = {(m.system, m.dataset): m.value for m in rep.sections[0].measurements}
    assert shown["trained", "train"] == 1.0 and shown["trained", "dev"] == 0.0


def test_both_models_through_ctranslate2_give_the_same_picks(
    bench: Any, trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """--backend ctranslate2 (the lead's runs: base by name, the trained directory converted
    into rarx's cache) scores as the transformers backend does, float32."""
    monkeypatch.setenv("RARX_CACHE", str(tmp_path / "cache"))
    picks = {}
    for backend in ("transformers", "ctranslate2"):
        res = run(bench, trained["model"], tmp_path, "--tag", backend, "--backend", backend,
                  "--dtype", "float32")  # fmt: skip
        assert res["settings"]["backend"] == backend
        lines = (tmp_path / f"train_fit-{backend}.questions.jsonl").read_text().splitlines()
        picks[backend] = sorted((r["file"], r["i"], r["system"], r["pred"])
                                for r in map(json.loads, lines[1:]) if "system" in r)  # fmt: skip
    assert len(picks["ctranslate2"]) == 28 and picks["ctranslate2"] == picks["transformers"]
