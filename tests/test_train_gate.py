"""Adapt-LLM gate: data builder, <RET> as one trained token, the gate reading it, and the
evaluation's pure parts. Models and tokenizers are tiny and built here."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from rarx.eval.adaptive import calibrate, roc_auc
from rarx.eval.qa import contains_answer
from rarx.eval.splits import split_of
from rarx.stages.gate import RET, GateParams, GateStage, single_token_marker
from rarx.train.data import gate as gate_data
from rarx.train.data.gate import QAItem, build_gate_data, read_instances
from rarx.types import Document, Query, QueryState
from tests.conftest import tiny_chat_llama
from tests.fakes import ScriptedLLM

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "rock", "fish"]


def tiny_items(n: int = 40) -> list[QAItem]:
    """Questions whose answer is a colour word; even ones carry a passage."""
    items = []
    for i in range(n):
        answer = WORDS[i % len(WORDS)]
        passage = Document(f"d{i}", f"The thing number {i} is {answer}.") if i % 2 == 0 else None
        items.append(QAItem("tiny", f"t{i}", f"what is thing number {i}", (answer,), passage))
    return items


def knows(prompt: Any) -> str:
    """Closed-book answers: right for numbers divisible by 3, wrong otherwise."""
    text = prompt.messages[-1][1]
    i = int(text.rsplit("number ", 1)[1].split()[0].rstrip("?"))
    return WORDS[i % len(WORDS)] if i % 3 == 0 else "no idea"


def test_contains_answer_is_whole_words_after_normalisation() -> None:
    assert contains_answer("It is the Red one.", ["red"]) == 1.0
    assert contains_answer("Charles Darwin", ["darwin", "x"]) == 1.0
    assert contains_answer("predators", ["red"]) == 0.0  # not inside a word
    assert contains_answer("anything", [""]) == 0.0


def test_splits_are_deterministic_and_cover_all_three() -> None:
    splits = [split_of("tiny", f"t{i}") for i in range(200)]
    assert splits == [split_of("tiny", f"t{i}") for i in range(200)]
    assert {"train", "dev", "test"} == set(splits)
    assert 0.2 < splits.count("test") / 200 < 0.4


def test_gate_data_builder_produces_both_instance_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = tiny_items()
    # a training question that repeats a held-out question's text is dropped
    held = next(x for x in items if split_of("tiny", x.qid) == "test")
    dup_qid = next(f"dup{i}" for i in range(100) if split_of("tiny", f"dup{i}") == "train")
    items.append(QAItem("tiny", dup_qid, held.question.upper(), held.answers, held.passage))
    monkeypatch.setitem(gate_data.SOURCES, "tiny", lambda: items)
    llm = ScriptedLLM(reply=knows)
    s = build_gate_data(llm, "tiny", tmp_path, batch_size=7, quiet=True)

    train = read_instances(tmp_path / "train.jsonl")
    questions = [json.loads(x) for x in (tmp_path / "questions.jsonl").read_text().splitlines()]
    by_qid = {x.qid: x for x in items}
    assert s.dropped_duplicates == 1 and dup_qid not in {r["qid"] for r in train}
    assert all(split_of("tiny", r["qid"]) == "train" for r in train)
    assert all(q["split"] in ("train", "dev") for q in questions)  # test never asked
    # closed-book answers came from the reader's short-answer prompt, in batches of 7
    assert llm.calls[0].messages[-1][1].startswith("Answer the question with a short phrase")
    assert len(llm.calls) == len(questions)
    kinds: dict[str, set[str]] = {}
    for r in train:
        kinds.setdefault(r["qid"], set()).add(r["kind"])
        item = by_qid[r["qid"]]
        if r["kind"] == "answer":
            assert r["target"] == item.answers[0] and "<RET> to get" in r["messages"][0][1]
        elif r["kind"] == "retrieve":
            assert r["target"] == RET
        else:  # the gold passage and the reader's prefix
            assert item.passage is not None and item.passage.text in r["messages"][0][1]
            assert r["prefix"] == "The answer is" and r["target"] == f" {item.answers[0]}"
    for qid, ks in kinds.items():
        i = int(qid[1:])
        right = i % 3 == 0
        with_passage = i % 2 == 0
        expected = (
            {"answer"} if right else ({"retrieve", "context"} if with_passage else {"retrieve"})
        )
        assert ks == expected, qid
    assert {"answer", "retrieve", "context"} <= {r["kind"] for r in train}
    assert s.instances["train"]["retrieve"] == sum(not q["correct"] for q in questions
                                                   if q["split"] == "train")  # fmt: skip


class _StopsAfter(ScriptedLLM):
    """Answers ``limit`` questions, ``pause`` seconds per batch, then stops as an
    interrupted run does."""

    def __init__(self, limit: int, pause: float = 0.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.limit, self.pause = limit, pause

    def generate(self, prompts: Any, max_new_tokens: int = 128, stop: Any = ()) -> Any:
        if len(self.calls) >= self.limit:
            raise KeyboardInterrupt
        time.sleep(self.pause)
        return super().generate(prompts, max_new_tokens, stop)


def test_a_stopped_gate_data_build_resumes_without_asking_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(gate_data.SOURCES, "tiny", tiny_items)
    first = _StopsAfter(8, pause=0.25, reply=knows)
    with pytest.raises(KeyboardInterrupt):  # batches of 2, kept every 8 questions
        build_gate_data(first, "tiny", tmp_path, batch_size=2, quiet=True)
    assert not (tmp_path / gate_data.META_FILE).exists()
    second = ScriptedLLM(reply=knows)
    s = build_gate_data(second, "tiny", tmp_path, batch_size=2, quiet=True)
    questions = (tmp_path / "questions.jsonl").read_text().splitlines()
    assert len(first.calls) == 8 and len(second.calls) == len(questions) - 8
    # the stopped piece's 4 batches (1 s asleep) count in the build's time, not only the last
    assert s.closed_book_seconds >= 1.0 and s.seconds >= s.closed_book_seconds
    assert not (tmp_path / gate_data.PARTIAL_FILE).exists()  # a complete build keeps none


def test_adapt_gate_decides_on_the_first_token_when_ret_is_one_token() -> None:
    class OneTokenRET(ScriptedLLM):
        def tokenize(self, text: str) -> list[str]:
            return [text] if text == RET else text.split()

    def reply(prompt: Any) -> str:
        return RET if prompt.messages[-1][1].endswith("hard") else "Paris"

    llm = OneTokenRET(reply=reply)
    assert single_token_marker(llm) and not single_token_marker(ScriptedLLM())
    gate = GateStage(GateParams(mode="adapt-llm"), llm)
    out = gate.run([QueryState(Query("1", "easy")), QueryState(Query("2", "hard"))])
    assert [s.context["retrieve"] for s in out] == [False, True]
    assert out[0].context["answer"] == "Paris" and out[0].context["final"] is True


def test_roc_auc_and_dev_calibration() -> None:
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.1, 0.2], [True, True]) is None
    # questions 0-1 the reader knows closed-book; retrieval helps 2-3 only
    p = [0.1, 0.2, 0.9, 0.8, 0.3]
    nr = [1.0, 1.0, 0.0, 0.0, 0.0]
    ar = [1.0, 1.0, 1.0, 1.0, 0.0]
    t, info = calibrate(p, nr, ar, tolerance=0.0)
    assert t == 0.8 and info["dev_retrieval_rate"] == 0.4 and info["dev_accuracy"] == 0.8


def test_a_gate_that_knows_only_each_sets_failure_rate_has_no_within_set_auc() -> None:
    from rarx.train.gate import auc_by_source

    # P(<RET>) is each set's failure rate: pooled, it "predicts" failure; within a set, no
    sources = ["sciq"] * 4 + ["squad"] * 4
    failed = [True, False, True, False, True, True, True, False]
    p = [0.5] * 4 + [0.75] * 4
    assert auc_by_source(p, failed, sources) == {
        "dev_auc_p_ret": pytest.approx(9.5 / 15, abs=1e-4),  # ties count half
        "dev_auc_p_ret.sciq": 0.5, "dev_auc_p_ret.squad": 0.5,
    }  # fmt: skip
    # a question-level signal shows within each set; one set's figure needs both classes
    p = [0.9, 0.1, 0.8, 0.2, 0.7, 0.6, 0.5, 0.4]
    assert auc_by_source(p, failed, sources)["dev_auc_p_ret.sciq"] == 1.0
    one_class = auc_by_source(p, failed[:6] + [True, True], sources[:6] + ["nq"] * 2)
    assert "dev_auc_p_ret.nq" not in one_class and "dev_auc_p_ret.sciq" in one_class
    assert list(auc_by_source(p, failed, ["sciq"] * 8)) == ["dev_auc_p_ret"]


def test_a_gate_takes_the_retrieval_answer_only_where_it_retrieves() -> None:
    from rarx.eval.adaptive import Outcomes, score_system

    o = Outcomes([Query(f"q{i}", "x") for i in range(4)], [["red"], ["blue"], ["cat"], ["sun"]])
    o.nr = ["red", "no", "no", "sun"]  # closed-book: right on q0 and q3
    o.ar = ["no", "blue", "cat", "sun"]  # with retrieval: wrong on q0
    ar_ok = o.correct(o.ar)
    s = score_system(o, [False, True, True, False], ar_ok, resamples=200, seed=0)
    assert s["accuracy"] == 1.0 and s["retrieval_rate"] == 0.5
    assert s["accuracy_minus_AR"] == 0.25 and s["_answers"] == ["red", "blue", "cat", "sun"]
    low, high = s["accuracy_minus_AR_ci"]
    assert 0.0 <= low <= 0.25 <= high <= 1.0


# -- training on a tiny causal LM --------------------------------------------------------


def tiny_base(root: Path) -> Path:
    """A 2-layer Llama and a byte-level BPE tokenizer (chat template, end token), saved."""
    corpus = [f"{tiny_question(i)} the answer is {w} question help get context"
              for i, w in enumerate(WORDS * 3)]  # fmt: skip
    return tiny_chat_llama(root, corpus, vocab_size=300, max_positions=256)


def tiny_question(i: int) -> str:
    """Even: a question the model 'knows' (answer); odd: one it does not (<RET>)."""
    return f"name the word {WORDS[i % len(WORDS)]}" if i % 2 == 0 else f"what is hidden thing {i}"


def gate_dir(root: Path) -> Path:
    """The same 8 questions as train and dev data (a test of fitting, not of generalising)."""
    root.mkdir()
    rows, questions = [], []
    for i in range(8):
        item = QAItem("tiny", f"t{i}", tiny_question(i), (WORDS[i],))
        rows.extend(gate_data.instances_for(item, i % 2 == 0, None))
        questions.extend({"source": "tiny", "qid": item.qid, "split": split,
                          "question": item.question, "answers": [WORDS[i]],
                          "closed_book": "", "correct": i % 2 == 0}
                         for split in ("train", "dev"))  # fmt: skip
    for name, data in (("train.jsonl", rows), ("dev.jsonl", rows),
                       ("questions.jsonl", questions)):  # fmt: skip
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in data))
    return root


def loss_of(model_dir: Path, rows: list[dict[str, Any]]) -> float:
    """The answer-only loss of a saved model on ``rows`` (with <RET> in its vocabulary)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarx.train.gate import add_ret_token, collator, encode, mean_loss

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    add_ret_token(tokenizer, model)
    encoded = [encode(tokenizer, r, 128) for r in rows]
    return mean_loss(model, encoded, collator(tokenizer.pad_token_id))


@pytest.mark.slow
def test_train_gate_learns_ret_as_one_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner
    from transformers import AutoTokenizer

    from rarx.cli.main import cli
    from rarx.eval import leakage
    from rarx.llm import load_llm
    from rarx.models.card import ModelCard

    base = tiny_base(tmp_path / "base")
    data = gate_dir(tmp_path / "data")
    evals = [leakage.EvalSet("tiny-eval", (leakage.question_key(tiny_question(1)), "other"))]
    monkeypatch.setattr(leakage, "known_eval_sets", lambda *a, **k: evals)
    before = AutoTokenizer.from_pretrained(base).encode(RET, add_special_tokens=False)
    assert len(before) > 1  # not a token of the base vocabulary
    out = tmp_path / "gate"
    result = CliRunner().invoke(cli, ["train", "gate", "--data", str(data), "--base", str(base),
                                      "--out", str(out), "--max-steps", "60", "--lr", "2e-2",
                                      "--batch-size", "8", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output

    card = ModelCard.read(out)
    assert card is not None
    rows = read_instances(data / "train.jsonl")  # the dev rows are the same 8
    trained_loss = loss_of(out, rows)
    assert trained_loss < 0.5 * loss_of(base, rows)
    assert card.metrics["dev_loss"] == pytest.approx(trained_loss, rel=1e-4)
    tokenizer = AutoTokenizer.from_pretrained(out)  # saved and loaded back
    (ret_id,) = tokenizer.encode(RET, add_special_tokens=False)
    assert tokenizer.convert_ids_to_tokens(ret_id) == RET and RET in tokenizer.all_special_tokens
    assert card.objective == "gate" and card.steps == 60
    assert card.options["ret_token_id"] == ret_id and card.data[0].rows == 8
    assert card.overlap == {"tiny-eval": 0.5}  # one of its two questions is trained on
    assert card.metrics["dev_auc_p_ret"] == 1.0  # P(<RET>) separates the two kinds

    # the directory is an LLM the adapt-llm gate reads the token of
    llm = load_llm(str(out), device="cpu")
    assert llm.tokenize(RET) == [RET]
    gate = GateStage(GateParams(mode="adapt-llm", max_new_tokens=4), llm)
    states = gate.run([QueryState(Query(str(i), tiny_question(i))) for i in range(4)])
    assert [s.context["retrieve"] for s in states] == [False, True, False, True]
    # the decision is the first generated token, which the decoded text keeps
    assert [s.context["gate"]["output"] == RET for s in states] == [False, True, False, True]


def test_the_probe_alone_makes_the_resized_ret_row_decide(tmp_path: Path) -> None:
    from rarx.llm import load_llm
    from rarx.train.causal import load_causal_lm
    from rarx.train.gate import GateTrainSettings, add_ret_token, encode, probe_ret_row

    base = tiny_base(tmp_path / "base")
    rows = read_instances(gate_dir(tmp_path / "data") / "train.jsonl")
    tokenizer, model = load_causal_lm(str(base))
    ret_id = add_ret_token(tokenizer, model)
    encoded = [encode(tokenizer, r, 128) for r in rows]
    fit = probe_ret_row(model, ret_id, encoded, tokenizer.pad_token_id, GateTrainSettings(),
                        0).metrics
    assert fit["probe_examples"] == 8 and fit["probe_positives"] == 4
    assert fit["probe_accuracy_before"] == 0.5  # the resized row is never the greedy pick
    assert fit["probe_accuracy_after"] == 1.0
    assert fit["probe_margin_positive"] > 0 > fit["probe_margin_negative"]

    # no fine-tuning at all: the gate, reading greedy output, now retrieves where it should
    model.save_pretrained(tmp_path / "probed")
    tokenizer.save_pretrained(tmp_path / "probed")
    gate = GateStage(GateParams(mode="adapt-llm", max_new_tokens=4),
                     load_llm(str(tmp_path / "probed"), device="cpu"))  # fmt: skip
    states = gate.run([QueryState(Query(str(i), tiny_question(i))) for i in range(4)])
    assert [s.context["retrieve"] for s in states] == [False, True, False, True]


@pytest.mark.slow
def test_lora_merges_into_a_plain_model_with_a_trained_ret_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from rarx.eval import leakage
    from rarx.train.causal import load_causal_lm
    from rarx.train.common import TrainOptions, seed_everything
    from rarx.train.driver import run
    from rarx.train.gate import GateTrainSettings, add_ret_token

    monkeypatch.setattr(leakage, "known_eval_sets", lambda *a, **k: [])  # no packaged sets
    base = tiny_base(tmp_path / "base")
    data = gate_dir(tmp_path / "data")
    opts = TrainOptions(data=str(data), base=str(base), out=tmp_path / "lora", max_steps=4,
                        lr=1e-2, batch_size=8, lora=True, quiet=True)  # fmt: skip
    # no probe: the row must move by LoRA training alone
    settings = GateTrainSettings(lora_r=4, lora_alpha=8, dev_eval=False, probe_init=False)
    card = run("gate", opts, settings)
    ret_id = card.options["ret_token_id"]
    assert not (opts.out / "adapter_config.json").exists()  # merged: a plain model
    merged = AutoModelForCausalLM.from_pretrained(opts.out)
    # the <RET> row moved away from its initialisation (mean resizing is deterministic)
    seed_everything(opts.seed)  # the trainer's own sequence: seed, load, add the token
    tokenizer, start = load_causal_lm(str(base))
    add_ret_token(tokenizer, start)
    row = merged.get_input_embeddings().weight[ret_id]
    assert merged.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert not torch.allclose(row, start.get_input_embeddings().weight[ret_id])
    assert card.options["lora"]["merged"] is True


def test_probe_states_of_a_padded_batch_are_each_prompts_own(tmp_path: Path) -> None:
    import torch

    from rarx.train.causal import load_causal_lm
    from rarx.train.gate import add_ret_token, encode
    from rarx.train.token_probe import reply_states

    tokenizer, model = load_causal_lm(str(tiny_base(tmp_path / "base")))
    ret_id = add_ret_token(tokenizer, model)
    rows = read_instances(gate_dir(tmp_path / "data") / "train.jsonl")
    prompts = [encode(tokenizer, r, 128)["input_ids"][:-3] for r in rows]
    assert len({len(p) for p in prompts}) > 1  # the batch is padded
    batched = reply_states(model, prompts, ret_id, tokenizer.pad_token_id, batch_size=8)
    alone = reply_states(model, prompts, ret_id, tokenizer.pad_token_id, batch_size=1)
    for b, a in zip(batched, alone, strict=True):
        assert torch.allclose(b, a, atol=1e-4)


def test_on_cached_states_the_probe_fits_once_and_is_reused(tmp_path: Path) -> None:
    import torch

    from rarx.train.causal import load_causal_lm, trainable
    from rarx.train.common import seed_everything
    from rarx.train.frozen_states import cached_training
    from rarx.train.gate import (
        GateTrainSettings,
        add_ret_token,
        collator,
        encode,
        probe_as_written,
        probe_ret_row,
    )
    from rarx.train.token_probe import probe_figures, reply_states

    base = tiny_base(tmp_path / "base")
    rows = read_instances(gate_dir(tmp_path / "data") / "train.jsonl")
    out = tmp_path / "out"

    def fresh() -> tuple[Any, Any, int, list[dict[str, list[int]]]]:
        seed_everything(0)  # the resized row's initialisation
        tokenizer, model = load_causal_lm(str(base))
        ret_id = add_ret_token(tokenizer, model)
        return tokenizer, model, ret_id, [encode(tokenizer, r, 128) for r in rows]

    tokenizer, model, ret_id, encoded = fresh()
    pad = tokenizer.pad_token_id
    probe = probe_ret_row(model, ret_id, encoded, pad, GateTrainSettings(), 0, out, rounds=1)
    assert probe.metrics["probe_as_written"] == 0.0  # one round: the fit's own states
    assert (out / "checkpoints" / "ret-probe.json").is_file()
    row = model.get_output_embeddings().weight[ret_id].detach().clone()

    # the row as written, through the top layer on cached states == a full pass
    model = trainable(model, train_layers=1)
    cached = cached_training(model, encoded, collator(pad), 1, "memory", out,
                             cache_dtype="float32")  # bfloat16 would differ by its rounding
    assert cached is not None
    written = probe_as_written(cached, probe, ret_id, pad)
    prompts = [encoded[k]["input_ids"][:n] for k, n in zip(probe.rows, probe.lengths, strict=True)]
    _, best, own = reply_states(model, prompts, ret_id, pad)
    full = probe_figures(model, ret_id, probe.labels, best, own, 0.0).metrics()
    assert written["probe_as_written"] == 1.0
    assert written["probe_accuracy_after"] == full["probe_accuracy_after"]
    for k in ("probe_margin_positive", "probe_margin_negative"):
        assert written[k] == pytest.approx(full[k], abs=1e-3)

    # the same run again (a --resume piece): the row is read back, no pass of the model
    _, again, ret_again, encoded_again = fresh()
    assert not torch.equal(again.get_output_embeddings().weight[ret_again], row)
    reused = probe_ret_row(again, ret_again, encoded_again, pad, GateTrainSettings(), 0, out,
                           rounds=1)  # fmt: skip
    assert reused.metrics["probe_reused"] == 1.0
    assert torch.equal(again.get_output_embeddings().weight[ret_again], row)
    assert again.get_input_embeddings().weight[ret_again].equal(row)  # tied: the prompts see it


@pytest.mark.slow
def test_top_layer_gate_training_probes_once_and_reports_the_row_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rarx.eval import leakage
    from rarx.llm import load_llm
    from rarx.train.common import TrainOptions
    from rarx.train.driver import run
    from rarx.train.gate import GateTrainSettings

    monkeypatch.setattr(leakage, "known_eval_sets", lambda *a, **k: [])
    base = tiny_base(tmp_path / "base")
    opts = TrainOptions(data=str(gate_dir(tmp_path / "data")), base=str(base),
                        out=tmp_path / "top", max_steps=4, lr=1e-4, batch_size=8, quiet=True)
    settings = GateTrainSettings(train_layers=1, state_cache="memory", cache_dtype="float32",
                                 dev_eval=False)  # fmt: skip
    card = run("gate", opts, settings)
    assert card.metrics["probe_as_written"] == 1.0  # from the cache, not the fit's states
    assert card.metrics["probe_accuracy_after"] == 1.0
    assert "probe_reused" not in card.metrics and card.options["state_cache"]["examples"] == 8
    # the same command again: the row is read back instead of fitted, the figures agree
    again = run("gate", opts, settings)
    assert again.metrics["probe_reused"] == 1.0
    for k in ("probe_accuracy_after", "probe_margin_positive", "probe_margin_negative"):
        assert again.metrics[k] == card.metrics[k]
    assert load_llm(str(opts.out)).tokenize(RET) == [RET]
