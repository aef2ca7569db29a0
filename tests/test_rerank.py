"""Rerankers: FIRST exactness against plain transformers, listwise with the real
SmolLM2, bad input with scripted LLMs, the stage, and the cross-encoder with a tiny
model built here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from rarx.errors import ConfigError
from rarx.llm import ChatPrompt, LLMError, TokenizationError
from rarx.rerank import LISTWISE, ListwiseTemplate, RerankError, make_reranker, rerank
from rarx.rerank.listwise import FirstReranker, ListwiseReranker
from rarx.stages.base import Stage
from rarx.stages.rerank import RerankStage
from rarx.types import Document, Hit, Query, QueryState, Ranking
from tests.fakes import ScriptedLLM, by_keyword, passages_in

QUERY = Query("q1", "Where does the mitochondria produce energy for the cell?")
TEXTS = [
    "Plants use sunlight, water and carbon dioxide to make glucose.",
    "Earthquakes happen where tectonic plates slide past each other.",
    "The mitochondria is the powerhouse of the cell, producing ATP from glucose.",
    "Magma rises through the crust and erupts from volcanoes as lava.",
    "Gravity pulls objects toward the Earth; Newton described it.",
    "Water evaporates when heated by the sun and forms clouds.",
    "Enzymes speed up chemical reactions in living cells.",
    "DNA carries genetic information in a double helix.",
    "Cellular respiration in mitochondria turns glucose and oxygen into ATP energy.",
    "Sound travels faster in water than in air.",
]


def ranking(texts: Sequence[str] = TEXTS, qid: str = "q1", docs: bool = True) -> Ranking:
    return Ranking(qid, tuple(
        Hit(f"d{i}", 100.0 - i, Document(f"d{i}", t) if docs else None)
        for i, t in enumerate(texts)
    ))  # fmt: skip


# -- the real model -----------------------------------------------------------------------


@pytest.mark.slow
def test_first_ordering_equals_plain_transformers_logits(smol: Any) -> None:
    """FIRST exactness: the order is that of the first-token logits of A..J, computed
    here with nothing but transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarx.models import resolve_model
    from rarx.models.cache import causal_lm_dir

    path = causal_lm_dir(resolve_model("smollm2-135m"))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    prompt = LISTWISE.build(QUERY.text, TEXTS)
    messages = [{"role": r, "content": c} for r, c in prompt.messages]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + "["
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = model(**ids).logits[0, -1]
    letters = LISTWISE.ids(len(TEXTS))
    letter_logits = [float(logits[tok.convert_tokens_to_ids(c)]) for c in letters]
    expected = sorted(range(len(TEXTS)), key=lambda i: -letter_logits[i])
    assert len(set(letter_logits)) == len(letter_logits)  # no ties, so the order is strict

    reranker = FirstReranker(smol, k=10, window=10, stride=5)
    result = reranker.rerank_detailed([QUERY], [ranking()])[0]
    assert result.ranking.docids == [f"d{i}" for i in expected]
    calls = [d for e, d in result.events if e == "llm_call"]
    assert len(calls) == 1 and calls[0]["prompt"] == text
    assert calls[0]["prompt_tokens"] == ids["input_ids"].shape[1]


@pytest.mark.slow
def test_first_and_listwise_real_model_keep_every_candidate(smol: Any) -> None:
    for method in ("first", "listwise"):
        rr = make_reranker(method, "smollm2-135m", k=8, window=5, stride=2, llm=smol)
        out = rr.rerank_detailed([QUERY], [ranking()])[0]
        assert sorted(out.ranking.docids) == sorted(ranking().docids)
        assert out.ranking.docids[8:] == ["d8", "d9"]  # beyond k: untouched
        calls = [d for e, d in out.events if e == "llm_call"]
        assert len(calls) == 3
        assert [(c["start"], c["end"]) for c in calls] == [(3, 8), (1, 6), (0, 4)]
        assert all(c["seconds"] > 0 and c["prompt_tokens"] > 50 for c in calls)


def test_first_rejects_multi_token_identifiers(smol: Any) -> None:
    cyrillic = ListwiseTemplate(**{**LISTWISE.__dict__, "identifiers": "ЖЩЮЯЭФЦЧШЪЫЬБГДИЛПЁЙ",
                                   "pattern": r"\[([^\]])\]"})  # fmt: skip
    with pytest.raises(TokenizationError, match="single-token identifiers"):
        FirstReranker(smol, k=20, template=cyrillic)
    # Generation does not need single tokens: listwise ranks by the identifiers it reads
    # back, here with SmolLM2's tokenizer (that rejects them for FIRST) doing the counting.
    scripted = ScriptedLLM(reply="[Ю] > [Ж] > [Щ]", context_length=smol.context_length)
    scripted.check_single_tokens = smol.check_single_tokens  # type: ignore[method-assign]
    scripted.count_tokens = smol.count_tokens  # type: ignore[method-assign]
    scripted.truncate = smol.truncate  # type: ignore[method-assign]
    listwise = ListwiseReranker(scripted, k=20, template=cyrillic)
    out = listwise.rerank([QUERY], [ranking(TEXTS[:3])])[0]
    assert out.docids == ["d2", "d0", "d1"]
    assert "[Ж] " + TEXTS[0] in scripted.calls[0].messages[-1][1]


def test_passage_cap_and_split_with_real_tokenizer(smol: Any) -> None:
    long_texts = [(t + " ") * 40 for t in TEXTS[:6]]
    scripted = ScriptedLLM(scores=by_keyword("mitochondria"), context_length=smol.context_length)
    scripted.count_tokens = smol.count_tokens  # type: ignore[method-assign]
    scripted.truncate = smol.truncate  # type: ignore[method-assign]
    rr = FirstReranker(scripted, k=6, window=6, stride=3, passage_tokens=30)
    out = rr.rerank_detailed([QUERY], [ranking(long_texts)])[0]
    for p in scripted.calls:
        for text in passages_in(p):
            assert len(smol.tokenizer.encode(text, add_special_tokens=False)) <= 30
    assert out.ranking.docids[0] == "d2"
    # Now a context too small for six capped passages: the window is split, not cut.
    scripted.calls.clear()
    one = smol.count_tokens(LISTWISE.build(QUERY.text, [smol.truncate(long_texts[0], 30)] * 3))
    scripted.context_length = one + 1
    out = rr.rerank_detailed([QUERY], [ranking(long_texts)])[0]
    events = [e for e, _ in out.events]
    assert "window_split" in events and "window_failed" not in events
    assert all(len(passages_in(p)) <= 3 for p in scripted.calls)
    assert sorted(out.ranking.docids) == sorted(ranking(long_texts).docids)
    assert out.ranking.docids[0] == "d2"


# -- bad input, with scripted LLMs ------------------------------------------------------------


@pytest.mark.parametrize("method", ["first", "listwise"])
def test_empty_and_single_candidate_make_no_call(method: str) -> None:
    llm = ScriptedLLM(reply=RuntimeError("must not be called"), scores=RuntimeError("no"))
    rr = make_reranker(method, "scripted", 20, llm=llm)
    assert rr.rerank([QUERY], [Ranking("q1")]) == [Ranking("q1")]
    one = ranking(TEXTS[:1], docs=False)  # no text needed either
    assert rr.rerank([QUERY], [one]) == [one]
    assert rr.rerank([], []) == []
    assert llm.calls == []


def test_hits_without_text_are_a_clear_error() -> None:
    rr = make_reranker("first", "scripted", 20, llm=ScriptedLLM(scores=by_keyword("x")))
    with pytest.raises(ConfigError, match="with_docs=True"):
        rr.rerank([QUERY], [ranking(docs=False)])
    docs = {f"d{i}": Document(f"d{i}", t) for i, t in enumerate(TEXTS)}
    rr = make_reranker("first", "scripted", 20, llm=ScriptedLLM(scores=by_keyword("ATP")),
                       docs=docs.get)  # fmt: skip
    assert rr.rerank([QUERY], [ranking(docs=False)])[0].docids[:2] == ["d2", "d8"]


def test_mismatched_queries_and_rankings() -> None:
    rr = make_reranker("first", "scripted", 20, llm=ScriptedLLM(scores=by_keyword("x")))
    with pytest.raises(ConfigError, match="paired"):
        rr.rerank([QUERY], [ranking(qid="other")])
    with pytest.raises(ConfigError, match="rankings"):
        rr.rerank([QUERY], [])


def test_listwise_applies_and_repairs_permutations() -> None:
    rr = ListwiseReranker(ScriptedLLM(reply="C] > [A] > [C] > [Q]"), k=4, window=4, stride=2)
    out = rr.rerank_detailed([QUERY], [ranking(TEXTS[:5])])[0]
    assert out.ranking.docids == ["d2", "d0", "d1", "d3", "d4"]
    assert [h.score for h in out.ranking.hits] == [5.0, 4.0, 3.0, 2.0, 1.0]
    (_, repaired), = [(e, d) for e, d in out.events if e == "permutation_repaired"]  # fmt: skip
    assert repaired["missing"] == (1, 3) and repaired["duplicates"] == (2,)


@pytest.mark.parametrize("reply", ["I cannot rank these.", "", LLMError("timed out")])
def test_garbage_or_errors_keep_prior_order_and_are_traced(reply: Any) -> None:
    rr = ListwiseReranker(ScriptedLLM(reply=reply), k=10, window=4, stride=2)
    out = rr.rerank_detailed([QUERY], [ranking()])[0]
    assert out.ranking.docids == ranking().docids
    failed = [d for e, d in out.events if e == "window_failed"]
    assert len(failed) == 4  # every window: (6, 10), (4, 8), (2, 6), (0, 4)
    assert all(d["error"] for d in failed)
    strict = ListwiseReranker(ScriptedLLM(reply=reply), k=10, window=4, stride=2, strict=True)
    with pytest.raises(RerankError, match="strict"):
        strict.rerank([QUERY], [ranking()])


def test_first_failure_of_one_window_in_a_batch_spares_the_others() -> None:
    def scores(prompt: ChatPrompt, candidates: Sequence[str]) -> dict[str, float]:
        if "query: volcano" in prompt.messages[-1][1]:
            raise LLMError("server hiccup")
        return by_keyword("ATP")(prompt, candidates)

    class OneBad(ScriptedLLM):
        def next_token_logprobs(self, prompts: Sequence[Any], cands: Sequence[str]) -> Any:
            return [scores(p, cands) for p in prompts]

    q2 = Query("q2", "volcano")
    rr = FirstReranker(OneBad(), k=10, window=10, stride=5)
    a, b = rr.rerank_detailed([QUERY, q2], [ranking(), ranking(qid="q2")])
    assert a.ranking.docids[:2] == ["d2", "d8"]
    assert b.ranking.docids == ranking().docids
    assert [e for e, _ in b.events] == ["llm_call", "window_failed"]


def test_first_ties_and_missing_candidates_keep_prior_order() -> None:
    flat = ScriptedLLM(scores=lambda p, c: {x: -1.0 for x in c})
    assert FirstReranker(flat, k=10, window=10, stride=5).rerank([QUERY], [ranking()])[0].docids \
        == ranking().docids  # fmt: skip
    partial = ScriptedLLM(scores=lambda p, c: {"C": -0.5, "E": -0.1})  # others missing (-inf)
    out = FirstReranker(partial, k=10, window=10, stride=5).rerank([QUERY], [ranking()])[0]
    assert out.docids[:3] == ["d4", "d2", "d0"]
    nothing = ScriptedLLM(scores=lambda p, c: {})
    out2 = FirstReranker(nothing, k=10, window=10, stride=5).rerank_detailed([QUERY], [ranking()])
    assert out2[0].ranking.docids == ranking().docids
    assert "window_failed" in [e for e, _ in out2[0].events]


def test_window_that_cannot_fit_is_reported() -> None:
    llm = ScriptedLLM(scores=by_keyword("ATP"), context_length=20)
    out = FirstReranker(llm, k=4, window=4, stride=2).rerank_detailed([QUERY], [ranking()])[0]
    assert out.ranking.docids == ranking().docids and llm.calls == []
    failed = [d for e, d in out.events if e == "window_failed"]
    assert failed and "lower passage_tokens" in failed[0]["error"]


def test_unknown_method_and_bad_window() -> None:
    with pytest.raises(ConfigError, match="first, listwise, cross-encoder"):
        make_reranker("pointwise", "x", 10)
    with pytest.raises(ConfigError, match="identifiers"):
        make_reranker("first", "x", 10, window=30, stride=10, llm=ScriptedLLM())
    with pytest.raises(ConfigError, match="stride"):
        make_reranker("first", "x", 10, window=10, stride=10, llm=ScriptedLLM())


# -- the stage and the library function ----------------------------------------------------


def test_rerank_stage_traces_every_call() -> None:
    stage = RerankStage(FirstReranker(ScriptedLLM(scores=by_keyword("ATP")), k=10, window=4,
                                      stride=2))  # fmt: skip
    assert isinstance(stage, Stage)
    assert stage.run([]) == []
    states = [QueryState(QUERY, ranking()), QueryState(Query("q2", "x"), ranking(qid="q2"))]
    out = stage.run(states)
    assert states[0].ranking == ranking() and states[0].trace == ()  # inputs untouched
    assert out[0].ranking is not None and out[0].ranking.docids[:2] == ["d2", "d8"]
    calls = [t for t in out[0].trace if t.event == "llm_call"]
    assert len(calls) == 4 and all(t.stage == "rerank" for t in calls)
    assert calls[0].data["method"] == "first" and "prompt" in calls[0].data
    with pytest.raises(ConfigError, match="retrieve stage"):
        stage.run([QueryState(QUERY)])


def test_rerank_function_accepts_text() -> None:
    rr = make_reranker("first", "scripted", 10, llm=ScriptedLLM(scores=by_keyword("ATP")))
    out = rerank("energy", ranking(), reranker=rr)
    assert out.qid == "q1" and out.docids[:2] == ["d2", "d8"]


# -- cross-encoder --------------------------------------------------------------------------


def test_cross_encoder_orders_by_its_scores(tiny_cross_encoder: str) -> None:
    from sentence_transformers import CrossEncoder

    rr = make_reranker("cross-encoder", tiny_cross_encoder, 6, max_length=128)
    out = rr.rerank_detailed([QUERY, Query("q2", "volcano")], [ranking(), ranking(qid="q2")])
    direct = CrossEncoder(tiny_cross_encoder, max_length=128)
    for res, q in zip(out, ["Where does the mitochondria produce energy for the cell?",
                            "volcano"], strict=True):  # fmt: skip
        scores = direct.predict([(q, t) for t in TEXTS[:6]]).tolist()
        expected = sorted(range(6), key=lambda i: -scores[i])
        assert res.ranking.docids[:6] == [f"d{i}" for i in expected]
        assert res.ranking.docids[6:] == ["d6", "d7", "d8", "d9"]
        head = [h.score for h in res.ranking.hits[:6]]
        assert all(
            math.isclose(a, scores[i], abs_tol=1e-5) for a, i in zip(head, expected, strict=True)
        )
        assert res.ranking.hits[6].score < head[-1]
    single = ranking(TEXTS[:1])
    assert rr.rerank([QUERY], [single]) == [single]


def test_first_orders_and_instruction_reach_the_model_and_the_trace() -> None:
    from rarx.stages.rerank import RerankParams

    llm = ScriptedLLM(scores=by_keyword("ATP"))
    rr = make_reranker("first", "scripted", 10, window=10, stride=5, llm=llm, orders=3,
                       instruction="Retrieve the answer to the question.")  # fmt: skip
    result = rr.rerank_detailed([QUERY], [ranking()])[0]
    assert result.ranking.docids[:2] == ["d2", "d8"]  # the keyword wins in every order
    (call,) = [d for e, d in result.events if e == "llm_call"]
    assert call["meta"]["forward_passes"] == 3 and len(call["meta"]["orders"]) == 3
    assert len(llm.calls) == 3  # one window, three orders, one batch
    assert all(p.messages[-1][1].startswith("Retrieve the answer to the question.\n\n")
               for p in llm.calls)  # fmt: skip
    # The passages each order showed first differ: the orders are real reorderings.
    assert len({passages_in(p)[0] for p in llm.calls}) == 3
    with pytest.raises(ConfigError, match="'first' only"):
        make_reranker("listwise", "scripted", 10, llm=llm, orders=2)
    with pytest.raises(ConfigError, match="'orders'"):
        RerankParams(method="listwise", orders=2)
    with pytest.raises(ConfigError, match="'instruction'"):
        RerankParams(method="cross-encoder", instruction="x")
