"""Candidate replies read at the tokenizer's real boundary (rarx.llm.reply): with a
tokenizer built here whose merges write ``[A`` as one token as Qwen2.5's does (all of
A..T but O and Q), with the packaged SmolLM2's, and with Qwen's own where installed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from rarx.llm import ChatPrompt, TokenizationError
from rarx.llm.reply import ReplyReader, plan_reply, reply_logprobs
from rarx.rerank import LISTWISE, ListwiseTemplate
from rarx.rerank.listwise import FirstReranker, ListwiseReranker
from rarx.types import Document, Hit, Query, Ranking

IDS = "ABCDEFGHIJKLMNOPQRST"
# Qwen2.5's pre-tokenizer split: one non-letter may open a run of letters ("[A").
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
              r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")  # fmt: skip
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MERGED = [("[", c) for c in IDS if c not in "OQ"]  # Qwen's: "[O" and "[Q" are no tokens


def qwen_like_tokenizer(root: Path, merges: list[tuple[str, str]], split: bool = True) -> Path:
    """A byte-level BPE with Qwen's split (none without ``split``), chat template and
    special tokens, whose only merges are ``merges`` (every other token is one byte),
    saved at ``root``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        *([pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated")] if split else []),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>",
                                   additional_special_tokens=["<|im_start|>"])  # fmt: skip
    fast.chat_template = QWEN_TEMPLATE
    fast.save_pretrained(root)
    return root


def tiny_lm(root: Path, tokenizer_dir: Path, layers: int = 2) -> Path:
    """A random 2-layer Llama over the tokenizer saved in ``tokenizer_dir``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=8192, tie_word_embeddings=True,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root)
    tok.save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The transformers backend over a tiny model whose tokenizer merges ``[`` + A..T
    (not O, Q) and two newlines, as Qwen's does."""
    from rarx.llm.transformers_backend import TransformersLLM

    root = tmp_path_factory.mktemp("qwen-like")
    tok = qwen_like_tokenizer(root / "tok", [*MERGED, ("Ċ", "Ċ")])
    return TransformersLLM(str(tiny_lm(root / "lm", tok)), device="cpu")


def direct_reply_logprob(llm: Any, prompt: ChatPrompt, reply: str) -> float:
    """log P(reply | prompt without its prefix) from plain transformers: the rendered
    prompt + reply tokenised whole, each reply token read after the ones before it."""
    import torch

    base = llm.render(ChatPrompt(prompt.messages))
    tok = llm.tokenizer
    n = len(tok(base, add_special_tokens=False)["input_ids"])
    ids = tok(base + reply, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        lps = llm.model(ids).logits[0].float().log_softmax(-1)
    return sum(float(lps[i - 1, ids[0, i]]) for i in range(n, ids.shape[1]))


class ContextsOnly:
    """The same real LLM through the protocol alone, without the optional one-pass
    ``path_logprobs`` (as a server backend is)."""

    def __init__(self, llm: Any):
        self._llm = llm

    def __getattr__(self, name: str) -> Any:
        if name == "path_logprobs":
            raise AttributeError(name)
        return getattr(self._llm, name)


QUERY = Query("q1", "Which passage names the capital of France?")
PASSAGES = ["Bananas are yellow.", "Paris is the capital of France.", "Cats sleep a lot.",
            "Rivers flow to the sea.", "Snow is cold.", "The moon orbits Earth.",
            "Bees make honey.", "Iron rusts in water.", "Owls hunt at night.",
            "Salt dissolves in water.", "Ice floats.", "Lava is hot.", "Wind moves air.",
            "Frogs are amphibians.", "Copper conducts.", "Glass is brittle.",
            "Tea has caffeine.", "Clouds hold water.", "Sand is quartz.",
            "Milk has calcium."]  # fmt: skip


def ranking(texts: list[str] = PASSAGES) -> Ranking:
    return Ranking("q1", tuple(Hit(f"d{i}", 100.0 - i, Document(f"d{i}", t))
                               for i, t in enumerate(texts)))  # fmt: skip


# -- the plan ------------------------------------------------------------------------------


def test_merged_identifiers_are_read_as_the_merged_tokens(merged: Any) -> None:
    prompt = LISTWISE.build(QUERY.text, PASSAGES)
    plan = plan_reply(merged, prompt, list(IDS), "]")
    # The prompt ends before "[": "[A" .. "[T" are read as the model writes them, and
    # O and Q (no merge) as "[" then the letter.
    assert plan.given == ""
    assert plan.tokens["A"] == ("[A",) and plan.tokens["T"] == ("[T",)
    assert plan.tokens["O"] == ("[", "O") and plan.tokens["Q"] == ("[", "Q")
    assert plan.passes == 2  # read after the prompt, and after the prompt + "["
    assert plan.paths == [("[",)]  # both from one pass over the prompt + "[" where it can
    # A window without O and Q needs one pass.
    assert plan_reply(merged, prompt, list("ABCDE"), "]").passes == 1


def test_scores_equal_the_model_reading_the_reply_whole(merged: Any) -> None:
    prompt = LISTWISE.build(QUERY.text, PASSAGES)
    (read,) = ReplyReader(merged, list(IDS), "]").score([prompt])
    for c in "ABOQT":
        assert math.isclose(read.scores[c], direct_reply_logprob(merged, prompt, "[" + c),
                            abs_tol=1e-4)  # fmt: skip
    # A backend without the one-pass reading gets the same from two contexts.
    (two,) = ReplyReader(ContextsOnly(merged), list(IDS), "]").score([prompt])
    assert read.passes == 1 and two.passes == 2
    assert all(math.isclose(read.scores[c], two.scores[c], abs_tol=1e-4) for c in IDS)
    # What FIRST read before the fix: the next token after a prompt ending in "[". For a
    # merged identifier that is the token "A" where the model writes "[A": another value.
    naive = merged.next_token_logprobs([prompt], ["A"])[0]["A"]
    assert not math.isclose(naive, read.scores["A"], abs_tol=1e-3)
    # The exact token ids scored: "[A"'s id after the prompt without its prefix.
    tok = merged.tokenizer
    assert tok.convert_tokens_to_ids("[A") != tok.convert_tokens_to_ids("A")
    assert len(tok.encode("[A", add_special_tokens=False)) == 1


def test_split_identifiers_keep_one_pass_after_the_prefix(smol: Any) -> None:
    """SmolLM2 writes "[" then "A": the prompt ends with "[" and the reading is the
    next-token log-probability, as it was."""
    prompt = LISTWISE.build(QUERY.text, PASSAGES[:5])
    plan = plan_reply(smol, prompt, list("ABCDE"), "]")
    assert plan.given == "[" and all(plan.tokens[c] == (c,) for c in "ABCDE")
    assert plan.passes == 1
    got = reply_logprobs(smol, [prompt], list("ABCDE"), "]")[0]
    assert got == smol.next_token_logprobs([prompt], list("ABCDE"))[0]
    # Labels after "Answer:" are read as " C" (llm-choice's reader), the gate's marker as
    # its three tokens from the reply's start.
    after = plan_reply(smol, ChatPrompt.user("Q?", prefix="Answer:"), [" A", " B"])
    assert after.given == "Answer:" and after.tokens[" A"] == (" A",)
    assert plan_reply(smol, ChatPrompt.user("Q?"), ["<RET>"]).tokens["<RET>"] == ("<", "RET", ">")


def test_no_boundary_is_a_clear_error(merged: Any, tmp_path: Path) -> None:
    # A prefix that merges with the prompt's last token (two newlines are one token).
    with pytest.raises(TokenizationError, match="prompt's own tokens change"):
        plan_reply(merged, ChatPrompt.user("x", prefix="\n["), ["A"])
    bad = ListwiseTemplate(**{**LISTWISE.__dict__, "prefix": "\n[", "ranking": "\n[{id}]"})
    with pytest.raises(TokenizationError, match="no token boundary works"):
        FirstReranker(merged, k=20, window=20, stride=10, template=bad)
    # An identifier that merges with the "]" after it (no split between them).
    from rarx.llm.transformers_backend import TransformersLLM

    tok = qwen_like_tokenizer(tmp_path / "tok", [("A", "]")], split=False)
    glued = TransformersLLM(str(tiny_lm(tmp_path / "lm", tok, layers=1)), device="cpu")
    with pytest.raises(TokenizationError, match="merges with the text after it"):
        FirstReranker(glued, k=5, window=5, stride=2)


# -- the rerankers -----------------------------------------------------------------------------


def test_first_ranks_by_the_merged_tokens_and_traces_the_boundary(merged: Any) -> None:
    prompt = LISTWISE.build(QUERY.text, PASSAGES)
    direct = [direct_reply_logprob(merged, prompt, "[" + c) for c in IDS]
    expected = sorted(range(20), key=lambda i: -direct[i])
    result = FirstReranker(merged, k=20, window=20, stride=10).rerank_detailed(
        [QUERY], [ranking()])[0]  # fmt: skip
    assert result.ranking.docids == [f"d{i}" for i in expected]
    (call,) = [d for e, d in result.events if e == "llm_call"]
    assert call["meta"]["forward_passes"] == 1  # both readings from the pass over prompt + "["
    assert call["meta"]["reply"]["tokens"]["O"] == ["[", "O"]


def test_listwise_generation_starts_where_the_model_writes_the_identifier(merged: Any) -> None:
    result = ListwiseReranker(merged, k=5, window=5, stride=2).rerank_detailed(
        [QUERY], [ranking(PASSAGES[:5])])[0]  # fmt: skip
    (call,) = [d for e, d in result.events if e == "llm_call"]
    assert call["prompt"].endswith("<|im_start|>assistant\n")  # not "...\n[": "[A" is one token
    assert sorted(result.ranking.docids) == sorted(f"d{i}" for i in range(5))


@pytest.mark.slow
def test_all_orders_make_first_order_invariant(smol: Any) -> None:
    """With every order of a window (3 passages: 6 orders), the combined scores do not
    depend on the order the first stage gave. (SmolLM2-135M itself reads position, not
    content, on such a window: it puts whatever stands first on top in all 3 rotations of
    an easy "capital of France" window, so no known-answer test rests on it.)"""
    texts = PASSAGES[:3]
    forward = ranking(texts)
    backward = ranking(texts[::-1])  # the same passages under other ids, reversed
    backward = Ranking("q1", tuple(Hit(f"d{2 - int(h.docid[1:])}", h.score, h.doc)
                                   for h in backward.hits))  # d2, d1, d0  # fmt: skip
    rr = FirstReranker(smol, k=3, window=3, stride=1, orders=6)
    a, b = rr.rerank_detailed([QUERY, QUERY], [forward, backward])
    assert a.ranking.docids == b.ranking.docids
    (ca,) = [d for e, d in a.events if e == "llm_call"]
    (cb,) = [d for e, d in b.events if e == "llm_call"]
    assert ca["meta"]["forward_passes"] == 6 and len(ca["meta"]["orders"]) == 6
    # Combined log-probabilities per passage agree (identifier A names d0 in one, d2 in
    # the other).
    per_a = {f"d{i}": ca["logprobs"]["ABC"[i]] for i in range(3)}
    per_b = {f"d{2 - i}": cb["logprobs"]["ABC"[i]] for i in range(3)}
    assert all(math.isclose(per_a[d], per_b[d], abs_tol=1e-4) for d in per_a)
    # One order only: a passage's reading depends on where it stands.
    one = FirstReranker(smol, k=3, window=3, stride=1)
    c1, c2 = ([d for e, d in r.events if e == "llm_call"][0]
              for r in one.rerank_detailed([QUERY, QUERY], [forward, backward]))  # fmt: skip
    assert not all(math.isclose(c1["logprobs"]["ABC"[i]], c2["logprobs"]["ABC"[2 - i]],
                                abs_tol=1e-3) for i in range(3))  # fmt: skip


# -- Qwen's own tokenizer, where `rarx models install qwen2.5-coder-1.5b` was run ----------


def _qwen_tokenizer_dir() -> Path | None:
    from rarx.models.cache import cache_dir

    for d in sorted((cache_dir() / "models").glob("qwen2.5-coder-1.5b*")):
        if (d / "tokenizer.json").is_file():
            return d
    return None


@pytest.mark.slow
@pytest.mark.skipif(_qwen_tokenizer_dir() is None,
                    reason="qwen2.5-coder-1.5b is not installed (rarx models install)")  # fmt: skip
def test_qwen_tokenizer_moves_the_boundary(tmp_path: Path) -> None:
    """A tiny random model over Qwen's real tokenizer (the weights are not needed):
    FIRST reads "[A" .. "[T" after the prompt and "[" + "O", "[" + "Q", exactly as the
    model reads the reply whole."""
    from transformers import AutoTokenizer

    from rarx.llm.transformers_backend import TransformersLLM

    tok_dir = tmp_path / "tok"
    AutoTokenizer.from_pretrained(_qwen_tokenizer_dir()).save_pretrained(tok_dir)
    llm = TransformersLLM(str(tiny_lm(tmp_path / "lm", tok_dir, layers=1)), device="cpu")
    prompt = LISTWISE.build(QUERY.text, PASSAGES)
    plan = plan_reply(llm, prompt, list(IDS), "]")
    assert plan.given == ""
    assert {c for c in IDS if plan.tokens[c] == ("[" + c,)} == set(IDS) - {"O", "Q"}
    assert plan.tokens["O"] == ("[", "O") and plan.tokens["Q"] == ("[", "Q")
    (read,) = ReplyReader(llm, list(IDS), "]").score([prompt])
    for c in "AOT":
        assert math.isclose(read.scores[c], direct_reply_logprob(llm, prompt, "[" + c),
                            abs_tol=1e-4)  # fmt: skip
    # llm-choice's labels after the assistant's opening stand alone: one pass.
    assert plan_reply(llm, ChatPrompt.user("Q?\nA. x\nB. y"), list("ABCD")).passes == 1


def test_llm_choice_reads_labels_the_model_writes(merged: Any) -> None:
    """llm-choice with a reply opened by "[": labels A..E are read as the merged tokens."""
    from rarx.eval.datasets.base import McrItem
    from rarx.eval.mcr_scorers.llm_choice import ChoicePrompt, ChoiceScorer

    item = McrItem("", "Which is a fruit?", ("a rock", "an apple", "a car"), 1)
    scorer = ChoiceScorer(merged, prompt=ChoicePrompt(prefix="["))
    (scores,) = scorer.scores([item], with_instructions=False)
    prompt = scorer.prompt.build(item, False)
    direct = [direct_reply_logprob(merged, prompt, "[" + c) for c in "ABC"]
    assert all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(scores, direct, strict=True))
