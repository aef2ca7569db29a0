"""MCR scorers: the registry, ties, and each scorer on real small models."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest

from rarx.cli.main import cli
from rarx.errors import ConfigError, RarxError
from rarx.eval.datasets.base import McrItem
from rarx.eval.mcr import score_mcr, write_mcr_csv
from rarx.eval.mcr_scorers import evaluate_mcr, load_scorer, run_scorer

ITEMS = [
    McrItem("Answer the question.", "What is the capital of France?",
            ("Berlin", "Paris", "Madrid"), 1),
    McrItem("Answer the question.", "What do bees make?", ("honey", "milk"), 0),
    McrItem("Pick the ending.", "The sun rises in the", ("east", "west", "sky", "sea"), 0),
]  # fmt: skip


class _Fixed:
    """A scorer with set scores, to test what evaluation does with them."""

    name: ClassVar[str] = "fixed"
    OPTIONS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, rows: list[list[float]]):
        self.rows = rows
        self.calls: list[bool] = []

    def scores(self, items: Any, with_instructions: bool) -> list[np.ndarray]:
        self.calls.append(with_instructions)
        return [np.asarray(r) for r in self.rows]

    def settings(self) -> dict[str, Any]:
        return {"scorer": self.name}


def test_ties_go_to_the_first_option_and_both_settings_run() -> None:
    items = [McrItem("", "q", ("a", "b", "c"), 1), McrItem("", "q", ("a", "b"), 0)]
    fixed = _Fixed([[0.0, 2.0, 2.0], [-math.inf, -math.inf]])
    score = evaluate_mcr(fixed, items)
    assert score.predictions == [1, 0] and score.accuracy == 1.0
    result = run_scorer("f.csv", items, fixed, instructions=True)
    assert fixed.calls == [False, False, True]
    assert (result.accuracy_without, result.accuracy_with) == (1.0, 1.0)


def test_registry_errors() -> None:
    with pytest.raises(ConfigError, match="unknown MCR scorer 'svm'; expected one of bi-encoder"):
        load_scorer("svm")
    with pytest.raises(ConfigError, match="scorer 'bi-encoder' takes no option.s. normalize"):
        load_scorer("bi-encoder", normalize="pmi")
    with pytest.raises(ConfigError, match="cross-encoder scorer needs --model"):
        load_scorer("cross-encoder")
    with pytest.raises(ConfigError, match="gives no raw logits"):
        load_scorer("llm-likelihood", _Fixed([]))
    with pytest.raises(RarxError, match="returned scores that do not match the options"):
        evaluate_mcr(_Fixed([[1.0]]), ITEMS[:1])


class _Lookup:
    def __init__(self, table: dict[str, list[float]]):
        self.table = table

    def encode(self, texts: Any, batch_size: int = 64) -> np.ndarray:
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_bi_encoder_scorer_is_rarbs_scoring() -> None:
    table = {"q": [1, 0], "Inst. q": [0, 1], "A": [1, 0.1], "B": [0.1, 1]}
    items = [McrItem("Inst.", "q", ("A", "B"), 1)]
    scorer = load_scorer("bi-encoder", _Lookup(table))
    for inst in (False, True):
        assert evaluate_mcr(scorer, items, inst).predictions == score_mcr(
            items, _Lookup(table), inst)[1]  # fmt: skip
    assert evaluate_mcr(scorer, items, True).scores[0] == pytest.approx(
        [0.1 / math.hypot(1, 0.1), 1 / math.hypot(1, 0.1)])  # fmt: skip


# -- cross-encoder: a tiny BERT built here ---------------------------------------------


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    root = tmp_path_factory.mktemp("ce")
    words = {w.strip("?.").lower() for it in ITEMS for t in (it.instruction, it.query, *it.options)
             for w in t.split()}  # fmt: skip
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", ".", *sorted(words)]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(root / "vocab.txt")).save_pretrained(root)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=1,
                        max_position_embeddings=64)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(root)
    return root


def test_cross_encoder_scores_pairs_as_rarb(tiny_cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    scorer = load_scorer("cross-encoder", str(tiny_cross_encoder), device="cpu", batch_size=3)
    reference = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    for inst in (False, True):
        got = evaluate_mcr(scorer, ITEMS, inst)
        # RAR-b: one predict call per question; "instruction + ' ' + query" with them
        for it, row, pred in zip(ITEMS, got.scores, got.predictions, strict=True):
            q = it.instruction + " " + it.query if inst else it.query
            want = reference.predict([[q, o] for o in it.options])
            assert row == pytest.approx(want.tolist(), abs=1e-6)
            assert pred == int(np.argmax(want))
    assert scorer.settings()["max_length"] == 512


def test_cross_encoder_with_two_labels_is_refused() -> None:
    nli_like = SimpleNamespace(num_labels=2)  # e.g. an NLI CrossEncoder
    with pytest.raises(ConfigError, match="has 2 output labels; an MCR cross-encoder gives one"):
        load_scorer("cross-encoder", nli_like)


def test_cli_cross_encoder(
    tmp_path: Path, tiny_cross_encoder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_mcr_csv(tmp_path / "ARC-Challenge-test.csv", ITEMS)
    cli.main(["eval", "mcr", "--scorer", "cross-encoder", "--model", str(tiny_cross_encoder),
              "--data", str(tmp_path / "ARC-Challenge-test.csv"), "--instructions", "--json",
              "--device", "cpu"], standalone_mode=False)  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    (row,) = out["files"]
    assert out["scorer"] == "cross-encoder" and out["settings"]["model"] == str(tiny_cross_encoder)
    assert row["kind"] == "arc-challenge" and row["questions"] == 3
    scorer = load_scorer("cross-encoder", str(tiny_cross_encoder), device="cpu")
    assert row["accuracy_with_instructions"] == evaluate_mcr(scorer, ITEMS, True).accuracy


# -- LLM scorers on SmolLM2 -------------------------------------------------------------


def _naive_logprob(llm: Any, context: str, continuation: str) -> list[float]:
    """One unpadded forward pass over context + continuation."""
    import torch

    a = llm.tokenizer.encode(context, add_special_tokens=False)
    b = llm.tokenizer.encode(continuation, add_special_tokens=False)
    with torch.inference_mode():
        logits = llm.model(input_ids=torch.tensor([a + b])).logits[0].float()
    lps = torch.log_softmax(logits, dim=-1)
    return [lps[len(a) - 1 + j, t].item() for j, t in enumerate(b)]


def test_llm_likelihood_sum_mean_pmi_batched(smol: Any, resources: Any) -> None:
    from rarx.llm.likelihood import raw_model

    # the pipelines' shared (lock-wrapped) LLM gives its transformers model
    assert raw_model(resources.llm("smollm2-135m")) is smol
    items = [
        McrItem("Answer the question.", "What do bees make?",
                ("sweet honey", "cold milk and bread"), 0),
        McrItem("", "Two plus two is", ("four", "four"), 1),
    ]  # fmt: skip
    # contexts of two lengths (left padding), options of 1 to 4 tokens (right padding)
    got = evaluate_mcr(load_scorer("llm-likelihood", smol, batch_size=4), items, True)
    one = evaluate_mcr(load_scorer("llm-likelihood", smol, batch_size=1), items, True)
    assert one.scores == [pytest.approx(r, abs=1e-4) for r in got.scores]
    assert got.predictions[1] == one.predictions[1] == 0  # identical options: the first wins
    # sum is log P(" option" | "{instruction}\nQuestion: q\nAnswer:"), as one unpadded pass
    # over context + option computes it; mean divides by its tokens; pmi subtracts the
    # option's log-probability after "Answer:"
    it = items[0]
    context = f"{it.instruction}\nQuestion: {it.query}\nAnswer:"
    lps = [_naive_logprob(smol, context, f" {o}") for o in it.options]
    assert [len(x) for x in lps] == [2, 4]
    assert got.scores[0] == pytest.approx([sum(x) for x in lps], abs=1e-3)
    scorer = load_scorer("llm-likelihood", smol, batch_size=4, normalize="mean")
    assert evaluate_mcr(scorer, items[:1], True).scores[0] == pytest.approx(
        [sum(x) / len(x) for x in lps], abs=1e-3)  # fmt: skip
    neutral = [sum(_naive_logprob(smol, "Answer:", f" {o}")) for o in it.options]
    pmi = evaluate_mcr(scorer.with_normalize("pmi"), items[:1], True).scores[0]
    assert pmi == pytest.approx([sum(x) - n for x, n in zip(lps, neutral, strict=True)], abs=1e-3)


def test_llm_choice_reads_label_logprobs(smol: Any) -> None:
    scorer = load_scorer("llm-choice", smol)
    got = evaluate_mcr(scorer, ITEMS, True)
    prompt = scorer.prompt.build(ITEMS[2], True)
    user = prompt.messages[-1][1]
    assert user.startswith("Pick the ending.\nQuestion: The sun rises in the\nA. east\nB. west\n")
    assert user.endswith("D. sea\nAnswer with the letter of the correct option.")
    want = smol.next_token_logprobs([prompt], ["A", "B", "C", "D"])[0]  # alone: unbatched
    assert got.scores[2] == pytest.approx([want[c] for c in "ABCD"], abs=1e-4)
    assert got.predictions[2] == int(np.argmax([want[c] for c in "ABCD"]))
    many = [McrItem("", "Pick one", tuple(f"o{i}" for i in range(27)), 0)]
    with pytest.raises(ConfigError, match="1 question.s. here have more .up to 27.: score them"):
        scorer.scores(many, False)


def test_llm_choice_dtype_loads_the_weights_so_and_records_it(
    smol: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    half = load_scorer("llm-choice", "smollm2-135m", device="cpu", dtype="bfloat16")
    full = load_scorer("llm-choice", smol)
    assert half.settings()["dtype"] == "bfloat16" and full.settings()["dtype"] == "float32"
    # bfloat16 keeps 8 bits of mantissa: label log-probabilities move, but only a little.
    got, want = half.scores(ITEMS, False), full.scores(ITEMS, False)
    for g, w in zip(got, want, strict=True):
        assert not np.array_equal(g, w)
        assert g == pytest.approx(w, abs=0.5)
    write_mcr_csv(tmp_path / "ARC-Challenge-test.csv", ITEMS)
    with pytest.raises(Exception, match="--dtype is for the LLM scorers, not bi-encoder"):
        cli.main(["eval", "mcr", "--scorer", "bi-encoder", "--dtype", "bfloat16",
                  "--data", str(tmp_path / "ARC-Challenge-test.csv")],
                 standalone_mode=False)  # fmt: skip
