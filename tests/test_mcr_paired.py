"""benchmarks/mcr_paired.py: two scorers on the packaged SmolLM2 over tiny MCR files
written here, paired on the same seeded questions, stopped and resumed chunk by chunk."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# float32: CTranslate2 int8 logits depend on which prompts share a batch
SYSTEMS = ("choice=llm-choice@ctranslate2:smollm2-135m,"
           "likelihood=llm-likelihood@ctranslate2:smollm2-135m")
COLORS = [  # (question, options, label)
    ("What color is the sky on a clear day?", ["green", "blue", "red"], 1),
    ("What color is fresh grass?", ["green", "purple", "black"], 0),
    ("What color is snow?", ["orange", "brown", "white"], 2),
    ("What color is a ripe banana?", ["yellow", "blue", "grey"], 0),
    ("What color is coal?", ["pink", "black", "white"], 1),
]
ANIMALS = [
    ("Which animal barks?", ["dog", "cat"], 0),
    ("Which animal has a trunk?", ["mouse", "elephant"], 1),
    ("Which animal lives in water?", ["fish", "horse"], 0),
    ("Which animal says moo?", ["sheep", "cow"], 1),
]


def write_mcr(path: Path, rows: list[tuple[str, list[str], int]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["instructions", "queries", "documents", "labels"])
        for q, options, label in rows:
            w.writerow(["Retrieve the answer to the question.", q, repr(options), label])
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import mcr_paired

    return mcr_paired


@pytest.fixture(scope="module")
def load(bench: Any) -> Any:
    """A fresh scorer per run, as a new process has (llm-likelihood keeps what it scored),
    on the LLM the script's own loader loaded once for the module."""
    from rarx.eval.mcr_scorers import load_scorer

    llms: dict[Any, Any] = {}

    def get(system: Any, args: Any) -> Any:
        if (system.model, args.dtype) not in llms:
            llms[system.model, args.dtype] = bench.load_system(system, args).llm
        return load_scorer(system.scorer, llms[system.model, args.dtype])

    return get


@pytest.fixture
def files(tmp_path: Path) -> str:
    return ",".join(str(write_mcr(tmp_path / f"{name}.csv", rows))
                    for name, rows in (("colors", COLORS), ("animals", ANIMALS)))  # fmt: skip


def run(bench: Any, load: Any, out: Path, files: str, *extra: str) -> dict[str, Any]:
    args = bench.parser().parse_args(["--systems", SYSTEMS, "--files", files, "--n", "0",
                                      "--chunk", "2", "--out", str(out), "--tag", "t",
                                      "--dtype", "float32", *extra])  # fmt: skip
    return bench.run(args, load=load)


def records(out: Path) -> dict[tuple, dict[str, Any]]:
    lines = (out / "mcr_paired-t.questions.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines[1:]]
    return {(r["file"], r["i"], r["system"], r["setting"]): r for r in rows if "system" in r}


def check_pairing(res: dict[str, Any], got: dict[tuple, dict[str, Any]]) -> None:
    """The pooled difference is the mean of the per-question differences, over every
    question of both files; each record is its question's."""
    pooled = res["files"][-1]
    assert pooled["name"] == "pooled" and pooled["scored"] == 6  # 3 of each file
    keys = {k[:2] for k in got}
    diff = [got[(*q, "likelihood", "without")]["correct"]
            - got[(*q, "choice", "without")]["correct"] for q in keys]  # fmt: skip
    d = pooled["paired"]["likelihood"]["without"]
    assert d["baseline"] == "choice" and d["n"] == len(keys) == pooled["scored"]
    assert d["diff"] == pytest.approx(sum(diff) / len(diff), abs=1e-4)
    assert (d["better"], d["worse"]) == (diff.count(1), diff.count(-1))
    by_file = {e["name"]: e for e in res["files"]}
    assert by_file["animals"]["chance"] == 0.5
    assert by_file["colors"]["chance"] == pytest.approx(1 / 3, abs=1e-4)
    for r in got.values():  # the file's label and option count
        rows = COLORS if r["file"] == "colors" else ANIMALS
        assert r["label"] == rows[r["i"]][2] and len(r["scores"]) == len(rows[r["i"]][1])
        assert r["correct"] == int(r["pred"] == r["label"])


@pytest.mark.slow  # the same 2 x 6 questions scored twice
def test_a_run_stopped_and_resumed_gives_the_records_of_one_run(bench, load, files, tmp_path):
    whole = run(bench, load, tmp_path / "whole", files, "--n", "3")
    assert whole["complete"] and whole["sessions"] == 1
    check_pairing(whole, records(tmp_path / "whole"))
    out = tmp_path / "pieces"
    first = run(bench, load, out, files, "--n", "3", "--chunks", "1")
    assert not first["complete"]
    (colors,) = [e for e in first["files"] if e["name"] == "colors"]
    assert colors["scored"] == 2 and not colors["complete"]
    saved = json.loads((out / "mcr_paired-t.json").read_text())
    assert saved["complete"] is False and saved["report"]["sections"]  # readable while partial
    # the stop left both systems on the same questions: the chunk is paired
    got = records(out)
    assert {k[:2] for k in got if k[2] == "choice"} == {k[:2] for k in got if k[2] == "likelihood"}
    run(bench, load, out, files, "--n", "3", "--resume", "--chunks", "2")  # files take turns
    last = run(bench, load, out, files, "--n", "3", "--resume")
    assert last["complete"] and last["sessions"] == 3
    one, pieces = records(tmp_path / "whole"), records(out)
    assert one.keys() == pieces.keys() and len(one) == 2 * 6
    for k, r in one.items():
        assert pieces[k]["pred"] == r["pred"], k
        assert pieces[k]["scores"] == pytest.approx(r["scores"], abs=1e-3), k
    for a, b in zip(last["files"], whole["files"], strict=True):  # the same figures
        for name in ("choice", "likelihood"):
            x, y = a["systems"][name]["without"], b["systems"][name]["without"]
            assert (x["accuracy"], x["ci95"]) == (y["accuracy"], y["ci95"])
        assert a["paired"] == b["paired"]


def test_the_sample_is_seeded_and_a_larger_n_extends_it(bench, load, tmp_path):
    assert bench.sample(10, 4, 0) == bench.sample(10, 8, 0)[:4]
    assert sorted(bench.sample(10, 0, 0)) == list(range(10))
    assert bench.sample(10, 4, 0) != bench.sample(10, 4, 1)
    path = str(write_mcr(tmp_path / "colors.csv", COLORS))
    run(bench, load, tmp_path, path, "--n", "3")  # chunks of 2: the second is cut short
    first = records(tmp_path)
    want = set(bench.sample(len(COLORS), 3, 0))
    for system in ("choice", "likelihood"):
        assert {k[1] for k in first if k[2] == system} == want
    res = run(bench, load, tmp_path, path, "--n", "5", "--resume")
    grown = records(tmp_path)
    assert {k[1] for k in grown} == set(bench.sample(len(COLORS), 5, 0))
    assert all(grown[k] == r for k, r in first.items())  # kept, not scored again
    assert res["files"][0]["scored"] == 5 and res["complete"]


def test_a_resume_with_other_settings_is_refused_and_keeps_the_records(
    bench, load, files, tmp_path
):
    from rarx.eval.mcr_scorers import load_scorer
    from rarx.eval.mcr_scorers.llm_choice import ChoicePrompt

    run(bench, load, tmp_path, files, "--chunks", "1")
    path = tmp_path / "mcr_paired-t.questions.jsonl"
    before = path.read_text()
    with pytest.raises(SystemExit, match=r"pass --resume to continue it, --fresh"):
        run(bench, load, tmp_path, files)
    with pytest.raises(SystemExit, match=r"other settings \(seed: 0 there, 1 now\)"):
        run(bench, load, tmp_path, files, "--resume", "--seed", "1")
    with pytest.raises(SystemExit, match=r"system likelihood: .*llm-likelihood.* there, .*"
                       r"'llm-choice'.* now"):  # fmt: skip
        other = SYSTEMS.replace("likelihood=llm-likelihood", "likelihood=llm-choice")
        args = bench.parser().parse_args(["--systems", other, "--files", files, "--n", "0",
                                          "--chunk", "2", "--out", str(tmp_path), "--tag", "t",
                                          "--dtype", "float32", "--resume"])  # fmt: skip
        bench.run(args, load=load)
    changed = tmp_path / "colors.csv"
    text = changed.read_bytes()
    changed.write_bytes(text.replace(b"fresh grass", b"dry grass"))
    with pytest.raises(SystemExit, match=r"other settings \(file colors: .*'sha256'"):
        run(bench, load, tmp_path, files, "--resume")
    changed.write_bytes(text)

    def reworded(system: Any, args: Any) -> Any:  # the same model, another prompt
        scorer = load(system, args)
        if system.name != "choice":
            return scorer
        return load_scorer("llm-choice", scorer.llm, prompt=ChoicePrompt(footer="Pick one."))

    with pytest.raises(SystemExit, match=r"other scorer settings \(choice: .*Pick one\."):
        bench.run(bench.parser().parse_args(["--systems", SYSTEMS, "--files", files, "--n", "0",
                                             "--chunk", "2", "--out", str(tmp_path), "--tag",
                                             "t", "--dtype", "float32", "--resume"]),
                  load=reworded)  # fmt: skip
    assert path.read_text() == before  # nothing lost, nothing added
    res = run(bench, load, tmp_path, files, "--resume", "--chunks", "1")
    assert [e["scored"] for e in res["files"]] == [2, 2, 4]  # the same settings go on


def test_the_folded_scripts_results_file_is_still_read(bench) -> None:
    import reportable

    from rarx.eval.report_schema import parse

    path = ROOT / "benchmarks" / "results" / "mcr_ct2_arc-ctranslate2-qwen2.5-coder-1.5b.json"
    assert reportable.script_of(path) == "mcr_paired"
    data = json.loads(path.read_text())
    section = bench.reportable({k: v for k, v in data.items() if k != "report"}).as_json()
    parse(section, path)
    assert section == data["report"]  # the same section its own script wrote


@pytest.mark.slow  # trains a tiny model (20 steps) and converts it and its base to CTranslate2
def test_a_directory_rarx_train_wrote_is_a_system_through_ctranslate2(
    bench, tmp_path, monkeypatch
):
    """``rarx train choice``'s output scored as ``llm-choice@ctranslate2:DIR`` beside its
    base: converted into rarx's cache on first use, fingerprinted apart from the base, and
    the position it was taught wins question by question."""
    from click.testing import CliRunner
    from transformers import AutoTokenizer

    from rarx.cli.main import cli
    from tests.conftest import tiny_chat_llama
    from tests.test_train_choice import THINGS, least_liked, questions, write_data

    monkeypatch.setenv("RARX_CACHE", str(tmp_path / "cache"))
    texts = [*THINGS, "Answer with the letter of the correct option.",
             "Question: which thing is number", "A. B. C. D. Answer it."]  # fmt: skip
    base = tiny_chat_llama(tmp_path / "base", texts, 300, 512)
    tok = AutoTokenizer.from_pretrained(base)  # CTranslate2's Llama config needs a BOS token
    tok.bos_token = tok.eos_token
    tok.save_pretrained(base)
    best = least_liked(str(base))  # taught the position the base likes least
    trained = tmp_path / "trained"
    res = CliRunner().invoke(cli, [
        "train", "choice", "--data", str(write_data(tmp_path / "mc.jsonl", questions(12, best))),
        "--base", str(base), "--out", str(trained), "--max-steps", "20", "--lr", "3e-3",
        "--batch-size", "4", "--dev", "0", "--seed", "0", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    new = [(it.query, list(it.options), it.label) for it in questions(30, best, 0)[20:]]
    path = write_mcr(tmp_path / "toy.csv", new)
    args = bench.parser().parse_args([
        "--systems", f"base=llm-choice@ctranslate2:{base},trained=llm-choice@ctranslate2:"
        f"{trained}", "--files", str(path), "--n", "0", "--chunk", "5", "--dtype", "float32",
        "--out", str(tmp_path / "results"), "--tag", "toy"])  # fmt: skip
    out = bench.run(args)
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "ct2").iterdir()) == [
        "base", "trained"]  # fmt: skip
    systems = out["settings"]["systems"]
    assert systems["base"]["weights"] != systems["trained"]["weights"]
    toy = out["files"][0]
    assert toy["systems"]["trained"]["without"]["accuracy"] == 1.0
    d = toy["paired"]["trained"]["without"]
    assert d["worse"] == 0 and d["better"] >= 1 and d["diff"] > 0
    assert out["scorers"]["trained"]["model"] == f"ctranslate2:{trained}"
