"""Stages with real models on tiny data: SmolLM2 (loaded once for the module), MiniLM,
Lucene. LLM calls are few and short."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rarx.pipeline import Pipeline, Resources
from rarx.pipeline.output import explain
from rarx.stages.templates import TEMPLATES
from rarx.types import Query, QueryState

PAIRS = [
    {"id": "m1", "question": "What gas do plants take in for photosynthesis?",
     "answer": "carbon dioxide"},
    {"id": "m2", "question": "What is the powerhouse of the cell?", "answer": "mitochondria"},
    {"id": "m3", "question": "What molecule carries genetic information?", "answer": "DNA"},
    {"id": "m4", "question": "What force pulls objects toward the Earth?", "answer": "gravity"},
    {"id": "m5", "question": "What erupts from volcanoes?", "answer": "lava"},
]  # fmt: skip


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("faiss")
    from rarx.index.qa_memory import QAMemoryIndex

    root = tmp_path_factory.mktemp("memory")
    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    return QAMemoryIndex.build(pairs, root / "index", quiet=True)


def _events(state: QueryState, stage: str) -> list[str]:
    return [e.event for e in state.trace if e.stage == stage]


# -- pure ------------------------------------------------------------------------------


def test_templates_render_and_parse() -> None:
    from rarx.types import Document

    t = TEMPLATES["short-answer"]
    demos = [{"question": "2+2?", "answer": "4"}]
    prompt = t.render("Q?", [Document("d1", "text one", "T")], demos, [{"question": "a",
                      "answer": "b"}])  # fmt: skip
    roles = [r for r, _ in prompt.messages]
    assert roles == ["user", "assistant", "user"] and prompt.messages[1][1] == "The answer is 4"
    assert "[1] T\ntext one" in prompt.messages[2][1] and "Q: a\nA: b" in prompt.messages[2][1]
    assert prompt.prefix == "The answer is"  # the reply starts there
    assert t.parse("\n Answer: carbon dioxide\nmore") == "carbon dioxide"
    assert t.parse(' "wetland".') == "wetland" and t.parse(": Caffeine") == "Caffeine"
    assert t.parse("[1] Photosynthesis.") == "Photosynthesis"
    assert t.parse("Draft answer: pollen") == "pollen" and t.parse("Draft answer:") == ""
    assert TEMPLATES["multiple-choice"].parse("The answer is (C).") == "C"


def test_a_reader_stage_names_any_known_template_and_no_other() -> None:
    from rarx.errors import ConfigError
    from rarx.stages.generate import GenerateParams

    assert GenerateParams(template="revise-passages").template == "revise-passages"
    with pytest.raises(ConfigError, match="unknown template 'short-answer-v2'; expected one of"):
        GenerateParams(template="short-answer-v2")


def test_a_template_with_an_empty_draft_slot_does_not_show_the_draft() -> None:
    shown = TEMPLATES["revise"].render("Q?", draft="lava").messages[-1][1]
    unseen = TEMPLATES["revise-passages"].render("Q?", draft="lava").messages[-1][1]
    assert "Draft answer: lava" in shown
    assert "lava" not in unseen and unseen == TEMPLATES["revise"].render("Q?").messages[-1][1]


@pytest.mark.parametrize(("reply", "letter"), [
    (" B", "B"), (" (B)", "B"), ("B. glucose", "B"), (" **D**", "D"), ("A", "A"), (" A.", "A"),
    ("A) sunlight", "A"), ("Answer: E", "E"), ("the correct answer is: B", "B"),
    ("The answer is C", "C"), ("A plant needs water, so the answer is D.", "D"),
])  # fmt: skip
def test_multiple_choice_reads_the_option_letter(reply: str, letter: str) -> None:
    assert TEMPLATES["multiple-choice"].parse(reply) == letter


@pytest.mark.parametrize("reply", [" A plant needs sunlight.", "A cell divides", "a"])
def test_multiple_choice_does_not_read_the_article_a(reply: str) -> None:
    # No option letter in the reply: the answer is its text, never the article "A".
    assert TEMPLATES["multiple-choice"].parse(reply) == reply.strip().rstrip(".")


def test_adapt_llm_decides_on_the_start_of_the_reply_and_answers_short() -> None:
    from rarx.llm.base import ChatPrompt
    from rarx.stages.gate import GateParams, GateStage
    from tests.fakes import ScriptedLLM

    gate_replies = {"q1": "<RET>", "q2": " <RET> please", "q3": "Paris. <RET>", "q4": "Paris"}

    def reply(prompt: ChatPrompt) -> str:
        text = prompt.messages[-1][1]
        if prompt.prefix == "The answer is":  # the reader's short-answer prompt
            return " Paris.\nParis is the capital of France, a country in Europe."
        return next(r for q, r in gate_replies.items() if text.endswith(f"Q: {q}"))

    llm = ScriptedLLM(reply=reply)
    gate = GateStage(GateParams(mode="adapt-llm"), llm)
    states = gate.run([QueryState(Query(q, q)) for q in gate_replies])
    # <RET> counts only at the start of the reply, never after an answer.
    assert [s.context["retrieve"] for s in states] == [True, True, False, False]
    for s in states[:2]:
        assert "answer" not in s.context and "final" not in s.context
    for s in states[2:]:  # closed-book: a short answer from the short-answer prompt
        assert s.context["answer"] == "Paris" and s.context["final"] is True
        (event,) = [e for e in s.trace if e.event == "answered"]
        assert event.data["call"]["role"] == "closed-book"
        assert "with a short phrase of a few words" in event.data["call"]["prompt"]
    assert len(llm.calls) == 4 + 2  # one decision per query, one answer per non-retrieval


def test_an_adapt_llm_gate_without_a_ret_token_warns_that_it_will_rarely_retrieve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from rarx.stages.gate import RET, GateParams, GateStage
    from tests.fakes import ScriptedLLM

    class TrainedGate(ScriptedLLM):  # rarx train gate adds <RET> as one token
        name = "trained"

        def tokenize(self, text: str) -> list[str]:
            return [text] if text == RET else list(text)

    with caplog.at_level("WARNING", logger="rarx.stages.gate"):
        GateStage(GateParams(mode="adapt-llm"), TrainedGate(reply="Paris"))
        GateStage(GateParams(mode="threshold", threshold=0.5), ScriptedLLM(reply="Paris"))
        assert caplog.records == []  # a trained gate; a threshold on P(<RET>) is the user's
        GateStage(GateParams(mode="adapt-llm"), ScriptedLLM(reply="Paris"))
    (record,) = caplog.records
    assert "scripted has no <RET> token" in record.getMessage()
    assert "answered closed-book" in record.getMessage()


def _arr_llm() -> Any:
    """A scripted draft/revise model: a two-line draft, short answers."""
    from tests.fakes import ScriptedLLM

    def reply(prompt: Any) -> str:
        text = prompt.messages[-1][1]
        if text.startswith("Answer the question in two or three sentences"):
            return ": lava.\nMagma rises through the crust and erupts as lava.\n"
        return " lava (revised)." if "Passages:" in text else " lava (closed book)."

    return ScriptedLLM(reply=reply)


def test_arr_retrieves_with_the_long_form_draft(tiny_bm25: Any) -> None:
    from rarx.stages.arr import ArrParams, ArrStage

    llm = _arr_llm()
    question = "What erupts from volcanoes?"
    draft = "lava. Magma rises through the crust and erupts as lava."  # every line kept
    default = ArrParams(index=str(tiny_bm25.path), k=2)
    assert default.query == "query+draft"  # the question in front of the draft
    paper = ArrParams(index=str(tiny_bm25.path), k=2, query="draft")  # the draft alone
    for params, expected in [(default, f"{question} {draft}"), (paper, draft)]:
        (out,) = ArrStage(tiny_bm25, llm, llm, params).run([QueryState(Query("q", question))])
        assert _events(out, "arr") == ["drafted", "retrieved", "revised"]
        assert out.context["draft"] == draft
        (retrieved,) = [e.data for e in out.trace if e.event == "retrieved"]
        assert retrieved["query"] == expected and out.ranking.docids[0] == "d4"
        assert out.context["answer"] == "lava (revised)"


def test_arr_honours_the_gate_no_retrieval(tiny_bm25: Any) -> None:
    from rarx.stages.arr import ArrParams, ArrStage

    llm = _arr_llm()
    arr = ArrStage(tiny_bm25, llm, llm, ArrParams(index=str(tiny_bm25.path), k=2))
    state = QueryState(Query("q", "What erupts from volcanoes?")).with_context(retrieve=False)
    (out,) = arr.run([state])
    assert out.ranking is None
    assert _events(out, "arr") == ["drafted", "retrieval_skipped", "revised"]
    assert out.context["answer"] == "lava (closed book)"
    (revised,) = [e.data["call"] for e in out.trace if e.event == "revised"]
    assert "Passages:" not in revised["prompt"]
    assert f"Draft answer: {out.context['draft']}" in revised["prompt"]


def test_arr_reads_its_prompts_from_the_named_templates(tiny_bm25: Any) -> None:
    from rarx.errors import ConfigError
    from rarx.stages.arr import ArrParams, ArrStage

    with pytest.raises(ConfigError, match="unknown template 'revise-v9'"):
        ArrParams(index=str(tiny_bm25.path), revise_template="revise-v9")
    llm = _arr_llm()
    state = QueryState(Query("q", "What erupts?"))

    def revise_prompt(**templates: str) -> str:
        params = ArrParams(index=str(tiny_bm25.path), k=2, **templates)
        (out,) = ArrStage(tiny_bm25, llm, llm, params).run([state])
        (call,) = [e.data["call"] for e in out.trace if e.event == "revised"]
        return str(call["prompt"])

    # the default: the reader's short-answer instruction over the passages the draft
    # retrieved, the draft itself not shown, and the reply opened with "Final answer:"
    # (a reply opened with "The answer is" copied the draft's "that ..." into the answer)
    default = revise_prompt()
    assert default.startswith("<user> Answer the question with a short phrase of a few words.")
    assert "Passages:\n[1]" in default and "Draft answer" not in default
    assert default.endswith("Question: What erupts?\n<assistant> Final answer:")
    # the paper's revision: the same, with the draft as the model wrote it after "The answer is"
    paper = revise_prompt(revise_template="revise")
    assert "Draft answer: lava. Magma rises" in paper
    assert paper.replace(paper[paper.index("Draft answer"):paper.index("Question:")], "") \
        == default  # fmt: skip
    other = revise_prompt(revise_template="long-answer")
    assert other.startswith("<user> Answer the question in two or three sentences")
    assert other.endswith("<assistant> The answer is")


def test_arr_reuses_a_draft_the_state_carries(tiny_bm25: Any) -> None:
    """A second query form over the same questions reads the first run's drafts: no
    draft call, the same retrieval query and answer as drafting again."""
    from rarx.stages.arr import ArrParams, ArrStage

    llm = _arr_llm()
    arr = ArrStage(tiny_bm25, llm, llm, ArrParams(index=str(tiny_bm25.path), k=2))
    questions = [Query("q1", "What erupts from volcanoes?"), Query("q2", "What is lava?")]
    first = arr.run([QueryState(q) for q in questions])
    llm.calls.clear()
    given = [QueryState(q).with_context(draft="Magma erupts as lava.") if q.qid == "q1"
             else QueryState(q) for q in questions]  # fmt: skip
    second = arr.run(given)
    drafted = [c for c in llm.calls if "two or three sentences" in c.messages[-1][1]]
    assert [c.messages[-1][1].endswith("What is lava?") for c in drafted] == [True]  # q2 only
    assert _events(second[0], "arr") == ["draft_given", "retrieved", "revised"]
    (retrieved,) = [e.data for e in second[0].trace if e.event == "retrieved"]
    assert retrieved["query"] == "What erupts from volcanoes? Magma erupts as lava."
    assert second[0].context["draft"] == "Magma erupts as lava."
    assert second[1].context == first[1].context and second[1].ranking == first[1].ranking


# -- memory ----------------------------------------------------------------------------


@pytest.mark.slow
def test_qa_memory_hits_and_backs_off(memory: Any, tiny_bm25: Any, resources: Resources) -> None:
    assert len(memory) == 5 and memory.manifest.kind == "qa-memory"
    pipe = Pipeline.from_dict({"stages": [
        {"qa_memory": {"index": str(memory.path), "threshold": 0.9, "k": 2}},
        {"retrieve": {"index": str(tiny_bm25.path), "k": 2}},
    ]}, resources=resources)  # fmt: skip
    hit, miss = pipe.run(["What is the powerhouse of the cell?", "How do earthquakes happen?"])
    assert hit.context["answer"] == "mitochondria" and hit.context["final"] is True
    assert _events(hit, "qa_memory") == ["hit"] and _events(hit, "retrieve") == ["skipped"]
    assert hit.ranking is None and hit.context["memory"][0]["score"] > 0.99
    assert _events(miss, "qa_memory") == ["miss"] and miss.ranking is not None
    assert "answer" not in miss.context and len(miss.context["memory"]) == 2
    assert miss.trace[0].data["best_score"] < 0.9
    # --explain names the route each answer took
    assert "answered from: the QA memory (qa_memory: a stored question at" in explain(hit)
    assert "answered from" not in explain(miss)  # no stage answered it
    reader = Pipeline.from_dict({"stages": [
        {"retrieve": {"index": str(tiny_bm25.path), "k": 2}},
        {"generate": {"llm": "smollm2-135m", "top_docs": 2, "max_new_tokens": 4}},
    ]}, resources=resources)  # fmt: skip
    (read,) = reader.run(["How do earthquakes happen?"])
    n = len(read.ranking.hits)  # type: ignore[union-attr]
    assert explain(read).endswith(f"answered from: retrieval (generate read the top of {n} "
                                  f"retrieved hit{'s' * (n != 1)})")  # fmt: skip
    # context mode never short-circuits
    ctx = Pipeline.from_dict({"stages": [{"qa_memory": {"index": str(memory.path),
                             "mode": "context"}}]}, resources=resources)  # fmt: skip
    (state,) = ctx.run(["What is the powerhouse of the cell?"])
    assert "final" not in state.context and state.context["memory"][0]["answer"] == "mitochondria"


def test_a_shuffled_multiple_choice_question_is_the_same_question() -> None:
    from rarx.stages.demos import mc_question_key

    q = "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. helium"
    shuffled = "which gas do plants take in\nA) helium\nB) Oxygen\nC) carbon dioxide"
    other = "Which gas do animals breathe out?\nA. oxygen\nB. carbon dioxide\nC. helium"
    assert mc_question_key(q) == mc_question_key(shuffled)
    assert mc_question_key(q) != mc_question_key(other)
    assert mc_question_key(q) != mc_question_key("Which gas do plants take in?\nA. oxygen\nB. neon")
    # a question ending in one lettered line keeps it as text
    assert mc_question_key("Is it\nA. big") != mc_question_key("Is it")


@pytest.mark.slow
def test_demos_exclude_the_query_itself(memory: Any, resources: Resources) -> None:
    pipe = Pipeline.from_dict({"stages": [{"demos": {"index": str(memory.path), "k": 2}}]},
                              resources=resources)  # fmt: skip
    same = QueryState(Query("x", "what is the powerhouse of the cell"))
    by_id = QueryState(Query("m4", "Which force pulls objects towards Earth?"))
    a, b = pipe.run([same, by_id])
    assert "m2" not in [d["id"] for d in a.context["demonstrations"]]
    assert "m4" not in [d["id"] for d in b.context["demonstrations"]]
    assert len(a.context["demonstrations"]) == 2
    rand = Pipeline.from_dict({"stages": [{"demos": {"index": str(memory.path), "k": 3,
                              "select": "random", "seed": 1}}]}, resources=resources)  # fmt: skip
    r1, r2 = rand.run([same]), rand.run([same])
    assert r1[0].context["demonstrations"] == r2[0].context["demonstrations"]
    assert len(r1[0].context["demonstrations"]) == 3


@pytest.mark.slow
def test_cli_builds_a_qa_memory(tmp_path: Path) -> None:
    pairs = tmp_path / "queries.jsonl"  # a prepared dataset's queries file works as is
    pairs.write_text('{"_id": "q1", "text": "What is H2O?", "answers": ["water"]}\n')
    out = subprocess.run(
        [sys.executable, "-m", "rarx.cli.main", "index", "--kind", "qa-memory", "--corpus",
         str(pairs), "--index", str(tmp_path / "mem")], capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "indexed 1 question-answer pairs" in out.stderr
    row = json.loads((tmp_path / "mem" / "answers.jsonl").read_text())
    assert row == {"id": "q1", "question": "What is H2O?", "answer": "water"}


# -- with SmolLM2 ------------------------------------------------------------------------


@pytest.mark.slow
def test_generate_reads_passages_demos_and_memory(
    tiny_bm25: Any, memory: Any, resources: Resources
) -> None:
    pipe = Pipeline.from_dict({"stages": [
        {"demos": {"index": str(memory.path), "k": 1}},
        {"retrieve": {"index": str(tiny_bm25.path), "k": 2}},
        {"generate": {"top_docs": 1, "max_new_tokens": 8, "passage_tokens": 6}},
    ]}, resources=resources)  # fmt: skip
    (state,) = pipe.run(["Where does lava come from?"])
    (event,) = [e for e in state.trace if e.stage == "generate"]
    call = event.data["call"]
    assert call["model"] == "smollm2-135m" and 0 < call["completion_tokens"] <= 8
    top = state.ranking.hits[0].doc
    assert top.docid == "d4" and top.title in call["prompt"]
    assert "Magma rises" in call["prompt"]
    assert "volcanoes as lava" not in call["prompt"]  # cut to passage_tokens
    demo = state.context["demonstrations"][0]
    assert f"<assistant> The answer is {demo['answer']}" in call["prompt"]
    assert state.context["answer"] == event.data["answer"] and state.context["answer"]


@pytest.mark.slow
def test_gate_threshold_scores_the_whole_marker(resources: Resources) -> None:
    from rarx.llm.base import ChatPrompt
    from rarx.stages.gate import GateParams, GateStage, marker_tokens

    llm = resources.llm("smollm2-135m")
    assert marker_tokens(llm) == ["<", "RET", ">"]  # <RET> is three tokens for SmolLM2
    gate = GateStage(GateParams(mode="threshold", threshold=0.5), llm)
    prompt = ChatPrompt.user(gate.params.prompt.format(q="What is the capital of France?"))
    ((p, p_first),) = gate.ret_probability([prompt])
    # the same probability from one forward pass over the rendered prompt + "<RET>"
    import torch

    raw = llm.inner  # the transformers model behind the resources' lock
    text = raw.render(prompt)
    ids = raw.tokenizer(text + "<RET>", return_tensors="pt", add_special_tokens=False)["input_ids"]
    n = len(raw.tokenizer(text, add_special_tokens=False)["input_ids"])
    with torch.inference_mode():
        logits = raw.model(ids).logits[0].float().log_softmax(-1)
    direct = sum(float(logits[i - 1, ids[0, i]]) for i in range(n, ids.shape[1]))
    assert math.isclose(math.log(p), direct, abs_tol=1e-3)
    assert 0 < p <= p_first < 1
    states = [QueryState(Query("a", "What is the capital of France?"))]
    (decided,) = GateStage(GateParams(mode="threshold", threshold=p / 2), llm).run(states)
    assert decided.context["retrieve"] is True
    assert math.isclose(decided.context["gate"]["p_ret"], round(p, 6))


@pytest.mark.slow
def test_adapt_llm_gate_and_arr(tiny_bm25: Any, resources: Resources) -> None:
    pipe = Pipeline.from_dict({"stages": [
        {"gate": {"mode": "adapt-llm", "max_new_tokens": 6}},
        {"retrieve": {"index": str(tiny_bm25.path), "k": 2}},
    ]}, resources=resources)  # fmt: skip
    (state,) = pipe.run(["What erupts from volcanoes?"])
    decision = state.context["gate"]  # (the decision rule itself: the scripted test above)
    assert 0 < decision["call"]["completion_tokens"] <= 8  # only the start of the reply
    if decision["retrieve"]:
        assert state.ranking is not None and "final" not in state.context
    else:  # a closed-book short answer stands and retrieval is skipped
        assert state.context["final"] is True and state.context["answer"]
        assert _events(state, "retrieve") == ["skipped"]
        (answered,) = [e.data for e in state.trace if e.event == "answered"]
        assert "with a short phrase" in answered["call"]["prompt"]
        assert answered["call"]["completion_tokens"] <= 6

    arr = Pipeline.from_dict({"stages": [{"arr": {"index": str(tiny_bm25.path), "k": 2,
                             "max_new_tokens": 6, "draft_tokens": 32}}]},
                   resources=resources)  # fmt: skip
    (out,) = arr.run(["What erupts from volcanoes?"])
    assert _events(out, "arr") == ["drafted", "retrieved", "revised"]
    draft = out.context["draft"]
    retrieved = [e for e in out.trace if e.event == "retrieved"][0].data
    assert retrieved["query"] == f"What erupts from volcanoes? {draft}"  # question + draft
    assert out.ranking is not None and out.ranking.docids[0] == "d4"
    revise = [e for e in out.trace if e.event == "revised"][0].data["call"]
    assert "Passages:\n[1] Volcanoes" in revise["prompt"] and out.context["answer"]
    # one SmolLM2 shared by gate, draft and revise
    assert sum(k.startswith('["llm"') for k in resources.loaded()) == 1
