"""Meta-training a reader on retrieved demonstrations: the data builder (demonstrations
never the question itself nor the held-out task), answer-label choice, and a few training
steps of a tiny causal LM built here, loaded back as an LLM in a demos pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rarx.eval.datasets.base import McrItem
from rarx.eval.mc_reader import choose, letter_counts, lettered
from rarx.train.data.reader import ReaderDataSettings, build_reader_data, read_rows
from tests.conftest import tiny_chat_llama

THINGS = ["cat", "dog", "sun", "moon", "tree", "rock", "fish", "bird", "rain", "snow"]
HELD_OUT_Q = "which thing is held out number 3"


def tiny_items() -> list[McrItem]:
    """Two training tasks, the held-out task (ARC-Easy) and its family (ARC-Challenge);
    one SciQ question repeats a held-out question's text, another repeats a training
    question's text under another id."""
    items = []
    for i in range(12):
        for src in ("sciq", "openbookqa"):
            opts = tuple(THINGS[(i + j) % 10] for j in range(4))
            q = f"{src} asks which thing is number {i}"
            items.append(McrItem("", q, opts, 0, id=f"{src}/{i}", source=src,
                                 split="dev" if i >= 10 else "train", question=q))  # fmt: skip
    for src in ("arc-easy", "arc-challenge-val"):
        for i in range(4):
            q = f"which thing is held out number {i}" if src == "arc-easy" else f"arc thing {i}"
            items.append(McrItem("", q, ("cat", "dog", "sun", "moon"), 1, id=f"{src}/{i}",
                                 source=src, split="train", question=q))  # fmt: skip
    items.append(McrItem("", HELD_OUT_Q.upper(), ("cat", "dog", "sun", "moon"), 2, id="sciq/leak",
                         source="sciq", split="train", question=HELD_OUT_Q.upper()))  # fmt: skip
    twin = items[0]
    items.append(McrItem("", twin.query, twin.options, 0, id="openbookqa/twin",
                         source="openbookqa", split="train", question=twin.question))  # fmt: skip
    return items


@pytest.fixture(scope="module")
def reader_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rarx.eval import leakage

    out = tmp_path_factory.mktemp("reader") / "data"
    with pytest.MonkeyPatch.context() as mp:  # no packaged evaluation sets to read here
        mp.setattr(leakage, "known_eval_sets", lambda *a, **k: [])
        build_reader_data(out, ReaderDataSettings(held_out="arc-easy", k=2), tiny_items())
    return out


def test_demonstrations_are_never_the_question_nor_the_held_out_task(reader_data: Path) -> None:
    train = read_rows(reader_data / "train.jsonl")
    dev = read_rows(reader_data / "dev.jsonl")
    summary = json.loads((reader_data / "manifest.json").read_text())
    items = {it.id: it for it in tiny_items()}
    assert {r["source"] for r in train + dev} == {"sciq", "openbookqa"}
    assert "sciq/leak" not in {r["id"] for r in train} and summary["dropped_held_out"] == 1
    assert summary["bank"] == 2 * 10 + 1  # the training split of both tasks, with the twin
    for r in train + dev:
        assert len(r["demo_ids"]) == 2 and r["id"] not in r["demo_ids"]
        assert not {"arc-easy", "arc-challenge-val"} & set(r["demo_sources"])
        text = "\n".join(c for _, c in r["messages"]).lower()
        assert "held out" not in text and "arc thing" not in text
        own = items[r["id"]].question
        demo_turns = [c for role, c in r["messages"][:-1] if role == "user"]
        assert len(demo_turns) == 2  # nor its twin (the same question under another id)
        assert not any(f"Question: {own}\n" in c for c in demo_turns)
        # the target is the label of the correct option in the shown (shuffled) order
        label = r["target"].strip()
        answer = items[r["id"]].options[items[r["id"]].label]
        assert f"\n{label}. {answer}\n" in r["messages"][-1][1] + "\n"
    assert len({r["target"] for r in train}) >= 3  # shuffled: no single favourite label
    shown = {d for r in train + dev for d in r["demo_ids"]}
    assert dev and not shown & {r["id"] for r in dev}  # the bank is the training split


def test_choice_reads_labels_and_calibration_removes_a_label_prior() -> None:
    # a reader that prefers C by 2 nats everywhere, and knows the answer by 1 nat
    gold = [0, 1, 3, 2, 0, 1]
    rows = [[-3.0 + (i == g) + 2 * (i == 2) for i in range(4)] for g in gold]
    assert letter_counts(choose(rows)) == {"C": 6}
    picks = choose(rows, calibrated=True)
    assert picks == gold
    assert lettered("Q?", ["x", "y"]) == "Q?\nA. x\nB. y"


def tiny_lm(root: Path, texts: list[str]) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on ``texts`` (so option
    labels are single tokens) and a plain chat template, saved."""
    return tiny_chat_llama(root, texts, vocab_size=400, max_positions=512)


def answer_loss(model_dir: Path, rows: list[dict[str, Any]]) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarx.train.gate import collator, encode, mean_loss

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    encoded = [encode(tokenizer, r, 512) for r in rows]
    return mean_loss(model, encoded, collator(tokenizer.pad_token_id))


def test_train_reader_lowers_the_loss_and_works_in_a_demos_pipeline(
    reader_data: Path, tmp_path: Path
) -> None:
    import math

    from click.testing import CliRunner

    from rarx.cli.main import cli
    from rarx.eval.mc_reader import label_logprobs, reader_prompt
    from rarx.models.card import ModelCard
    from rarx.pipeline import Pipeline, Resources
    from rarx.types import Query

    train = read_rows(reader_data / "train.jsonl")
    texts = ["\n".join(c for _, c in r["messages"]) + " A B C D Answer: A" for r in train]
    base = tiny_lm(tmp_path / "base", texts)
    out = tmp_path / "reader"
    result = CliRunner().invoke(cli, ["train", "reader", "--demos", "--data", str(reader_data),
                                      "--base", str(base), "--out", str(out), "--max-steps",
                                      "25", "--lr", "1e-2", "--batch-size", "8",
                                      "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output

    card = ModelCard.read(out)
    assert card is not None and card.objective == "reader" and card.steps == 25
    assert card.data[0].rows == len(train) and card.options["demos"]["k"] == 2
    assert card.metrics["dev_loss"] < card.metrics["dev_loss_before"]
    assert answer_loss(out, train) < 0.5 * answer_loss(base, train)

    # loaded as rarx loads any LLM: the first reply token is an option label
    from rarx.llm import load_llm

    llm = load_llm(str(out), device="cpu")
    question = lettered("sciq asks which thing is number 3", ["cat", "dog", "sun", "moon"])
    (row,) = label_logprobs(llm, [reader_prompt(question)], [4])
    assert sum(math.exp(v) for v in row) > 0.5
    # and as the reader of a demos + generate pipeline over the data's bank
    pipe = Pipeline.from_dict({"stages": [
        {"demos": {"index": str(reader_data / "bank"), "k": 2}},
        {"generate": {"llm": str(out), "top_docs": 0, "template": "multiple-choice",
                      "max_new_tokens": 2}},
    ]}, resources=Resources(llm_options={"device": "cpu"}), strict=True)  # fmt: skip
    (state,) = pipe.run([Query("q", question)])
    demos = state.context["demonstrations"]
    assert len(demos) == 2 and isinstance(state.context["answer"], str)
    (row,) = label_logprobs(llm, [reader_prompt(question, demos)], [4])
    assert sum(math.exp(v) for v in row) > 0.5  # with demonstrations too
