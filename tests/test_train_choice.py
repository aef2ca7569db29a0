"""rarx train choice: FIRST's objective on llm-choice's prompt, with a tiny causal LM
built here (its tokenizer trained on the test's words) and data built here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rarx.eval.datasets.base import McrItem
from rarx.train.data.mc import write_mc
from tests.conftest import tiny_chat_llama

THINGS = ["cat", "dog", "sun", "moon", "tree", "rock", "fish", "bird", "rain", "snow"]


def questions(n: int, label: int, dev: int = 4) -> list[McrItem]:
    """``n`` questions whose correct option always sits at position ``label``: a rule a
    tiny model learns in a few steps. The last ``dev`` are the dev split."""
    out = []
    for i in range(n):
        options = tuple(THINGS[(i + j) % len(THINGS)] for j in range(4))
        q = f"which thing is number {i}"
        split = "dev" if i >= n - dev else "train"
        out.append(McrItem("Answer it.", q, options, label, id=f"toy/{i}", source="toy",
                           split=split, question=q))  # fmt: skip
    return out


def write_data(path: Path, items: list[McrItem]) -> Path:
    # The manifest's overlap stands in for the check against every packaged set.
    return write_mc(path, items, {"name": "toy", "overlap": {"toy-eval": 0.0}})


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rarx.eval.mcr_scorers.llm_choice import ChoicePrompt

    p = ChoicePrompt()
    texts = [*THINGS, p.footer, "Question: which thing is number", "A. B. C. D. Answer it."]
    return tiny_chat_llama(tmp_path_factory.mktemp("tiny-lm"), texts, 300, 512)


def scorer(model: str) -> Any:
    from rarx.eval.mcr_scorers import load_scorer

    return load_scorer("llm-choice", model, device="cpu")


def least_liked(model: str) -> int:
    """The option position the untrained model scores lowest: teaching that one shows
    the training, not a lucky initialisation."""
    return int(scorer(model).scores(questions(1, 0, 0), False)[0].argmin())


def test_choice_ranks_put_the_answer_first_and_follow_the_teacher():
    from rarx.train.choice import choice_ranks

    assert choice_ranks(2, 4) == [2, 2, 1, 2]  # the wrong options tie: no pair among them
    assert choice_ranks(2, 4, [0.1, 0.9, -5.0, 0.5]) == [4, 2, 1, 3]
    assert choice_ranks(0, 3, [9.0, 1.0, 1.0]) == [1, 2, 3]  # ties keep option order
    with pytest.raises(ValueError, match="label 4"):
        choice_ranks(4, 4)


def test_the_trained_position_is_the_one_llm_choice_reads(tiny_lm: Path):
    """The encoded prompt's next-token log-probabilities of the labels are exactly the
    llm-choice scores, and the reply starts with the correct label."""
    import torch

    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.train.choice import ChoiceEncoder

    item = questions(1, 2, 0)[0]
    llm = TransformersLLM(str(tiny_lm), device="cpu")
    encoder = ChoiceEncoder(llm)
    enc = encoder.encode(item)
    assert enc.input_ids[enc.prompt_len] == llm.token_id("C")
    assert enc.ranks == [2, 2, 1, 2]
    ids = torch.tensor([enc.input_ids[: enc.prompt_len]])
    with torch.no_grad():
        logp = torch.log_softmax(llm.model(input_ids=ids).logits[0, -1].float(), -1)
    mine = [float(logp[t]) for t in encoder.id_tokens(4)]
    theirs = scorer(str(tiny_lm)).scores([item], False)[0]
    assert mine == pytest.approx(list(theirs), abs=1e-4)


def test_train_choice_learns_writes_a_card_and_scores_as_llm_choice(tiny_lm: Path, tmp_path: Path):
    from click.testing import CliRunner

    from rarx.cli.main import cli
    from rarx.models.card import ModelCard

    best = least_liked(str(tiny_lm))
    data = write_data(tmp_path / "mc.jsonl", questions(12, best))
    out = tmp_path / "choice-tiny"
    args = ["train", "choice", "--data", str(data), "--base", str(tiny_lm), "--out", str(out),
            "--max-steps", "20", "--lr", "3e-3", "--batch-size", "4", "--dev", "4",
            "--seed", "0", "-q"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    card = ModelCard.read(out)
    assert card is not None and card.objective == "choice" and card.steps == 20
    assert card.options["train_questions"] == 8 and card.options["dev_questions"] == 4
    assert card.overlap == {"toy-eval": 0.0}
    losses = card.options["loss_history"]
    assert sum(losses[-4:]) < 0.75 * sum(losses[:4])
    # dev accuracy is the llm-choice scorer's (rarx eval mcr's), before and after training
    assert card.metrics["base_dev_accuracy"] == 0.0 and card.metrics["dev_accuracy"] == 1.0
    assert card.metrics["dev_questions"] == 4 and card.metrics["dev_accuracy/toy"] == 1.0
    dev = [it for it in questions(12, best) if it.split == "dev"]
    assert [int(s.argmax()) for s in scorer(str(out)).scores(dev, False)] == [best] * 4

    # The directory is an llm-choice model: new questions get the taught position.
    new = questions(30, best, 0)[20:]
    for model, taught in ((str(tiny_lm), False), (str(out), True)):
        picks = [int(s.argmax()) for s in scorer(model).scores(new, False)]
        assert (picks == [best] * len(new)) is taught


def test_teacher_scores_choose_the_questions_and_must_match_the_options(
    tiny_lm: Path, tmp_path: Path
):
    from rarx.errors import InputError
    from rarx.models.card import ModelCard
    from rarx.train.choice import ChoiceSettings
    from rarx.train.common import TrainOptions
    from rarx.train.driver import run as train

    items = questions(12, 1)
    data = write_data(tmp_path / "mc.jsonl", items)
    teacher = tmp_path / "teacher.jsonl"
    rows = [{"id": it.id, "scores": [0.0, 1.0, 0.5, 0.2]} for it in items[:3]]
    teacher.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def run(out: str) -> Any:
        opts = TrainOptions(data=str(data), base=str(tiny_lm), out=tmp_path / out,
                            max_steps=1, batch_size=2, seed=0, quiet=True)  # fmt: skip
        return train("choice", opts, ChoiceSettings(teacher_scores=teacher, dev=0))

    card = run("t")
    assert card.options["train_questions"] == 3
    assert card.options["teacher_scores"]["checksum"].startswith("sha256:")
    assert ModelCard.read(tmp_path / "t") == card

    rows[1]["scores"] = [0.0, 1.0]
    teacher.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match="toy/1: 2 for 4 options"):
        run("bad")


def test_limit_keeps_that_many_training_questions_with_each_source_its_share(
    tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from rarx.train import choice
    from rarx.train.common import TrainOptions
    from rarx.train.driver import run as train

    # 12 training questions: 8 of source "a", then 4 of source "b"; --limit 6 keeps 4 + 2.
    items = [McrItem(it.instruction, it.query, it.options, it.label, id=it.id,
                     source="a" if i < 8 else "b", split="train", question=it.question)
             for i, it in enumerate(questions(12, 1, 0))]  # fmt: skip
    data = write_data(tmp_path / "mc.jsonl", items)
    opts = TrainOptions(data=str(data), base=str(tiny_lm), out=tmp_path / "m", max_steps=1,
                        batch_size=2, seed=0, quiet=True)  # fmt: skip
    encoded: list[str] = []  # the sources of the questions that reach the trainer
    encode = choice.ChoiceEncoder.encode

    def recorded(self: Any, it: McrItem, teacher: Any = None) -> Any:
        encoded.append(it.source)
        return encode(self, it, teacher)

    monkeypatch.setattr(choice.ChoiceEncoder, "encode", recorded)
    card = train("choice", opts, choice.ChoiceSettings(limit=6, dev=0))
    assert card.options["train_questions"] == 6 and card.options["limit"] == 6
    assert sorted(encoded) == ["a"] * 4 + ["b"] * 2


@pytest.mark.slow
def test_a_resumed_run_scores_the_dev_set_before_training_once(
    tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The base model's dev figures are computed by the first piece, stored under OUT
    and reused by ``--resume``; a changed dev set is scored again."""
    from click.testing import CliRunner

    from rarx.cli.main import cli
    from rarx.models.card import ModelCard
    from rarx.train.data import mc

    scored: list[int] = []  # the number of dev questions of each scoring, in order
    real = mc.scorer_accuracy

    def counted(scorer: Any, items: list, *args: Any, **kw: Any) -> Any:
        scored.append(len(items))
        return real(scorer, items, *args, **kw)

    monkeypatch.setattr(mc, "scorer_accuracy", counted)
    data = write_data(tmp_path / "mc.jsonl", questions(12, 1))
    out = tmp_path / "choice-pieces"

    def piece(*extra: str) -> ModelCard:
        args = ["train", "choice", "--data", str(data), "--base", str(tiny_lm), "--out",
                str(out), "--max-steps", "4", "--lr", "3e-3", "--batch-size", "4", "--seed",
                "0", "-q", *extra]  # fmt: skip
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        card = ModelCard.read(out)
        assert card is not None
        return card

    first = piece("--dev", "4", "--max-minutes", "1e-6")  # stops after its first step
    assert first.steps == 1 and first.stopped_early and scored == [4, 4]  # before, after
    assert first.options["before_training"]["reused"] is False
    second = piece("--dev", "4", "--resume")
    assert second.steps == 4 and scored == [4, 4, 4]  # after training only
    before = second.options["before_training"]
    assert before["reused"] is True
    assert before["computed"] == first.options["before_training"]["computed"]
    assert second.metrics["base_dev_accuracy"] == first.metrics["base_dev_accuracy"]
    # another dev set: its figures before training are its own
    third = piece("--dev", "3", "--resume", "--max-steps", "5")
    assert scored == [4, 4, 4, 3, 3] and third.options["before_training"]["reused"] is False
    assert third.metrics["dev_questions"] == 3


def mixed(n: int) -> list[McrItem]:
    """``n`` questions of 4 options whose answers sit at every letter in turn."""
    return [McrItem("Answer it.", f"which thing is number {i}",
                    tuple(THINGS[(i + j) % len(THINGS)] for j in range(4)), i % 4,
                    id=f"toy/{i}", source="toy", split="train") for i in range(n)]  # fmt: skip


def test_option_orders_are_distinct_seeded_and_keep_the_answer():
    from rarx.train.data.mc import option_orders, reordered

    for it in mixed(12):
        orders = option_orders(it, 4, seed=7)
        assert orders[0] == (0, 1, 2, 3)  # the question's own order first
        assert len(set(orders)) == 4 and all(sorted(o) == [0, 1, 2, 3] for o in orders)
        assert orders == option_orders(it, 4, seed=7)  # seeded: the same again
        shown = [reordered(it, o) for o in orders]
        assert all(s.positive == it.positive for s in shown)  # the gold's text kept
        assert sorted(s.label for s in shown) == [0, 1, 2, 3]  # the gold at each letter once
        assert sorted(shown[1].options) == sorted(it.options)
    it = mixed(1)[0]
    assert {option_orders(it, 3, seed=s)[1] for s in range(8)} != {option_orders(it, 3, 0)[1]}
    # fewer orders than asked where the options have fewer (2 options: 2 orders)
    two = McrItem("", "q", ("yes", "no"), 1, id="t")
    assert option_orders(two, 5) == [(0, 1), (1, 0)]
    assert len(set(option_orders(mixed(1)[0], 40))) == 24  # every order of 4, none twice


def test_option_orders_spread_the_answer_over_the_letters():
    """Even where every answer is A, K = 4 orders put it at each letter equally often; with
    K = 2 over a set whose answers are spread, every letter gets about a quarter."""
    from collections import Counter

    from rarx.train.choice import with_orders

    all_a = [McrItem(it.instruction, it.query, it.options, 0, id=it.id, source="toy",
                     split="train") for it in mixed(20)]  # fmt: skip
    assert Counter(it.label for _, it, _ in with_orders(all_a, None, 4, 0)) == {
        0: 20, 1: 20, 2: 20, 3: 20}  # fmt: skip
    rows = with_orders(mixed(40), None, 2, 0)
    letters = Counter(it.label for _, it, _ in rows)
    assert len(rows) == 80 and all(15 <= letters[x] <= 25 for x in range(4))
    assert [q for q, _, _ in rows] == [q for q in range(40) for _ in range(2)]


def test_teacher_scores_follow_their_options_in_every_order():
    from rarx.train.choice import with_orders

    it = mixed(3)[2]
    teacher = {it.id: [0.1, 0.2, 0.3, 0.4]}  # scores named by option text below
    by_text = dict(zip(it.options, teacher[it.id], strict=True))
    for _, shown, t in with_orders([it], teacher, 4, 1):
        assert t == [by_text[o] for o in shown.options]


def test_one_option_order_encodes_exactly_the_rows_of_before(tiny_lm: Path):
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.train.choice import ChoiceEncoder, with_orders

    items = mixed(6)
    teacher = {it.id: [0.5, 0.1, 0.9, 0.2] for it in items}
    encoder = ChoiceEncoder(TransformersLLM(str(tiny_lm), device="cpu"))
    for scores in (None, teacher):
        before = [encoder.encode(it, None if scores is None else scores[it.id]) for it in items]
        now = [encoder.encode(it, t) for _, it, t in with_orders(items, scores, 1, 42)]
        assert now == before


def test_option_orders_train_each_order_as_its_own_cached_row(tiny_lm: Path, tmp_path: Path):
    """--option-orders 3: three rows per question reach the trainer, each cached apart
    (the card's cache counts them) and the card records K and the rows."""
    from rarx.train.choice import ChoiceSettings
    from rarx.train.common import TrainOptions
    from rarx.train.driver import run as train

    data = write_data(tmp_path / "mc.jsonl", questions(10, 1))  # 6 train, 4 dev
    opts = TrainOptions(data=str(data), base=str(tiny_lm), out=tmp_path / "m", max_steps=1,
                        batch_size=2, seed=0, quiet=True)  # fmt: skip
    card = train("choice", opts, ChoiceSettings(option_orders=3, dev=4, train_layers=1))
    o = card.options
    assert o["option_orders"] == 3 and o["train_questions"] == 6 and o["train_rows"] == 18
    assert o["state_cache"]["examples"] == 18 and o["state_cache"]["bytes"] > 0
    assert card.metrics["dev_questions"] == 4
    one = train("choice", TrainOptions(data=str(data), base=str(tiny_lm), out=tmp_path / "one",
                                       max_steps=1, batch_size=2, seed=0, quiet=True),
                ChoiceSettings(dev=0, train_layers=1))  # fmt: skip
    assert one.options["train_rows"] == 6 and one.options["state_cache"]["examples"] == 6
    # three times the rows, each its own prompt: about three times the cached tokens
    assert 2.5 < o["state_cache"]["tokens"] / one.options["state_cache"]["tokens"] < 3.5
