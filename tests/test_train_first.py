"""FIRST training: the loss by hand, ranking windows, and a tiny causal LM (built here,
with a tokenizer built here) trained a few steps, loaded back as a FIRST reranker."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from rarx.errors import ConfigError
from rarx.train.data.ranking import (
    RankingWindow,
    make_windows,
    order_from_qrels,
    order_from_run,
    read_windows,
    write_windows,
)
from rarx.types import Document, Hit, Query, Ranking
from tests.conftest import TINY_DOCS


def softplus_neg(x: float) -> float:  # -log sigmoid(x)
    return math.log1p(math.exp(-x))


# -- the loss by hand -----------------------------------------------------------------


def test_first_loss_matches_a_hand_computed_three_passage_example():
    torch = pytest.importorskip("torch")
    from rarx.train.first import first_loss

    # Vocabulary of 5 tokens; A, B, C are tokens 1, 2, 3. Two kept positions: the first
    # predicts the first identifier (the teacher's best, B), the second a token 4.
    logits = torch.tensor([[[0.0, 1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]])
    targets = torch.tensor([[2, 4]])
    ranks = torch.tensor([[2.0, 1.0, 3.0]])  # teacher: B > A > C
    read_at = torch.tensor([[[0], [0], [0]]])  # each identifier read at position 0
    total, lm, rank = first_loss(
        logits,
        targets,
        read_at,
        torch.tensor([[[1], [2], [3]]]),
        ranks,
        lm_weight=1.0,
        rank_weight=10.0,
    )
    # Scores A=1, B=2, C=0. Pairs: B>A (diff 1, weight 1/(1+2)), B>C (diff 2, 1/(1+3)),
    # A>C (diff 1, 1/(2+3)); the mean of weight * -log sigmoid(diff) over the 3 pairs.
    hand_rank = (softplus_neg(1) / 3 + softplus_neg(2) / 4 + softplus_neg(1) / 5) / 3
    assert hand_rank == pytest.approx(0.0662683, abs=1e-6)
    # Cross-entropy of B at [0,1,2,0,0] and of token 4 at uniform logits, averaged.
    hand_lm = ((math.log(3 + math.e + math.e**2) - 2) + math.log(5)) / 2
    assert hand_lm == pytest.approx(1.0913051, abs=1e-6)
    assert float(rank) == pytest.approx(hand_rank, abs=1e-6)
    assert float(lm) == pytest.approx(hand_lm, abs=1e-6)
    assert float(total) == pytest.approx(1.7539881, abs=1e-6)


def test_an_identifier_read_as_two_tokens_scores_their_summed_log_probabilities():
    torch = pytest.importorskip("torch")
    from rarx.train.first import read_scores

    # A is token 1 at position 0; O is token 3 ("[") at position 0, then token 2 at
    # position 1 (the branch); the third slot is padding (no read).
    logits = torch.tensor([[[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 2.0, 0.0]]])
    got = read_scores(logits, torch.tensor([[[0, -1], [0, 1], [-1, -1]]]),
                      torch.tensor([[[1, 0], [3, 2], [0, 0]]]))  # fmt: skip
    lse0 = math.log(1 + math.e + math.e**2 + math.e**3)
    lse1 = math.log(2 + math.e + math.e**2)
    assert got[0].tolist() == pytest.approx([1 - lse0, (3 - lse0) + (2 - lse1), 0.0], abs=1e-6)


def test_ranknet_prefers_the_teacher_order_and_ignores_padding():
    torch = pytest.importorskip("torch")
    from rarx.train.first import weighted_ranknet

    inf = float("inf")
    ranks = torch.tensor([[1.0, 2.0, inf]])  # a window of 2 padded to 3
    right = weighted_ranknet(torch.tensor([[5.0, 0.0, 99.0]]), ranks)
    wrong = weighted_ranknet(torch.tensor([[0.0, 5.0, -99.0]]), ranks)
    assert float(right) == pytest.approx(softplus_neg(5) / 3, rel=1e-5)  # one pair, w=1/3
    assert float(wrong) == pytest.approx(softplus_neg(-5) / 3, rel=1e-5)


# -- ranking windows ------------------------------------------------------------------

DOCS = [Document(d["id"], d["text"], d["title"]) for d in TINY_DOCS]
TEXT = {d.docid: f"{d.title} {d.text}".strip() for d in DOCS}


def ranking(qid: str, docids: list[str]) -> Ranking:
    by_id = {d.docid: d for d in DOCS}
    return Ranking(qid, tuple(Hit(d, 10.0 - i, by_id[d]) for i, d in enumerate(docids)))


def test_teacher_orders_from_qrels_and_from_a_run():
    docids = ["d1", "d2", "d3", "d4"]
    assert order_from_qrels(docids, {"d3": 1, "d4": 2, "d1": 0}) == [3, 2, 0, 1]
    assert order_from_run(docids, {"d2": 0.5, "d4": 0.9}) == [3, 1, 0, 2]


def test_windows_from_qrels_put_relevant_first_and_insert_a_missed_one():
    queries = [Query("q1", "volcano lava"), Query("q2", "cell energy")]
    rankings = [ranking("q1", ["d3", "d4", "d5"]), ranking("q2", ["d1", "d6", "d7"])]
    qrels = {"q1": {"d4": 1}, "q2": {"d2": 1}}
    windows, stats = make_windows(queries, rankings, TEXT, qrels=qrels, window=3)
    assert [w.docids for w in windows] == [("d3", "d4", "d5"), ("d1", "d6", "d2")]
    assert [w.order for w in windows] == [(1, 0, 2), (2, 0, 1)]
    assert windows[0].passages[1] == TEXT["d4"]
    assert (stats.without_relevant, stats.inserted_relevant) == (1, 1)


def test_shuffled_windows_keep_the_teacher_best_and_are_seeded(tmp_path: Path):
    queries = [Query(f"q{i}", "volcano") for i in range(6)]
    rankings = [ranking(q.qid, ["d3", "d4", "d5", "d6", "d7"]) for q in queries]
    qrels = {q.qid: {"d4": 1} for q in queries}
    a, stats = make_windows(queries, rankings, TEXT, qrels=qrels, window=5, shuffle=1.0, seed=1)
    b, _ = make_windows(queries, rankings, TEXT, qrels=qrels, window=5, shuffle=1.0, seed=1)
    assert a == b and stats.shuffled == 6
    assert any(w.docids != ("d3", "d4", "d5", "d6", "d7") for w in a)
    assert all(w.docids[w.order[0]] == "d4" for w in a)
    write_windows(tmp_path / "w.jsonl", a)
    assert read_windows(tmp_path / "w.jsonl") == a


def test_evaluation_sets_are_refused_as_training_data(tmp_path: Path):
    from rarx.train.data.ranking import build_ranking_data

    with pytest.raises(ConfigError, match="evaluation data"):
        build_ranking_data("piqa", tmp_path / "w.jsonl")


@pytest.fixture
def toy_eval_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The leakage check against one toy evaluation set (not every packaged one), which
    holds one question of the tests' data among three."""
    from rarx.eval import leakage

    keys = tuple(
        leakage.question_key(q)
        for q in ("magma lava water cells?", "question 0 about Photosynthesis", "unseen")
    )
    toy = [leakage.EvalSet("toy-eval", keys)]
    monkeypatch.setattr(leakage, "known_eval_sets", lambda *a, **k: toy)


def test_data_ranking_cli_builds_windows_from_an_index(
    tmp_path: Path, tiny_bm25: Any, toy_eval_sets: None
):
    from click.testing import CliRunner

    from rarx.cli.main import cli
    from tests.conftest import write_jsonl

    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(
        folder / "corpus.jsonl", [{"_id": d.docid, "title": d.title, "text": d.text} for d in DOCS]
    )
    write_jsonl(
        folder / "queries.jsonl",
        [
            {"_id": "q1", "text": "magma lava water cells"},
            {"_id": "q2", "text": "sun water clouds cells"},
        ],
    )
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td4\t1\nq2\td6\t1\n")
    out = tmp_path / "windows.jsonl"
    build = f"train data ranking --dataset {folder} --index {tiny_bm25.path} --window 4 -q"
    res = CliRunner().invoke(cli, [*build.split(), "--out", str(out), "--shuffle", "0"])
    assert res.exit_code == 0, res.output
    assert "wrote 2 windows" in res.output
    windows = {w.qid: w for w in read_windows(out)}
    assert windows["q1"].docids[windows["q1"].order[0]] == "d4"
    assert windows["q2"].docids[windows["q2"].order[0]] == "d6"
    assert all(len(w.docids) == 4 for w in windows.values())
    # The overlap with evaluation sets is measured and kept beside the file.
    assert "toy-eval 33.3%" in res.output
    manifest = json.loads((tmp_path / "windows.manifest.json").read_text())
    assert manifest["overlap"] == {"toy-eval": pytest.approx(1 / 3, abs=1e-6)}
    assert manifest["teacher"] == "qrels" and manifest["counts"]["windows"] == 2

    # A teacher reranker's run orders the same candidates instead of the qrels.
    a, b, c = windows["q1"].docids[2], windows["q1"].docids[1], windows["q2"].docids[3]
    run = tmp_path / "teacher.run"
    run.write_text(f"q1 Q0 {a} 1 9.0 t\nq1 Q0 {b} 2 8.0 t\nq2 Q0 {c} 1 5.0 t\n")
    res = CliRunner().invoke(
        cli, [*build.split(), "--out", str(out), "--shuffle", "0", "--teacher-run", str(run)]
    )
    assert res.exit_code == 0, res.output
    by_run = {w.qid: w for w in read_windows(out)}
    assert by_run["q1"].teacher == "run" and by_run["q1"].docids == windows["q1"].docids
    assert [by_run["q1"].docids[i] for i in by_run["q1"].order] == [
        a,
        b,
        *windows["q1"].docids[::3],
    ]
    assert by_run["q2"].docids[by_run["q2"].order[0]] == c


# -- a tiny causal LM ---------------------------------------------------------------

CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained here on the tiny corpus
    and the prompt's words, saved as a model directory."""
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from rarx.rerank.prompts import LISTWISE

    specials = ["<pad>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [TEXT[d.docid] for d in DOCS] + [LISTWISE.system, LISTWISE.header, LISTWISE.footer]
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=420,
            special_tokens=specials,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>")
    tokenizer.chat_template = CHAT
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-lm")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def one_thread() -> Any:
    """Tiny models train fastest on one thread (and do not fight other work for cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fixed_windows(n: int, best: int) -> list[RankingWindow]:
    """Windows of 4 whose teacher always ranks the shown passage ``best`` first (then
    the rest in order): a rule a tiny model learns in a few steps."""
    order = (best, *[i for i in range(4) if i != best])
    out = []
    for i in range(n):
        ids = [DOCS[(i + j) % len(DOCS)].docid for j in range(4)]
        out.append(
            RankingWindow(
                f"q{i}",
                f"question {i} about {DOCS[i % 8].title or 'cells'}",
                tuple(ids),
                tuple(TEXT[d] for d in ids),
                order,
            )
        )
    return out


def least_liked(model: str) -> int:
    """The window position whose identifier the untrained model scores lowest first:
    teaching that one shows the training, not a lucky initialisation."""
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.train.first import WindowEncoder

    llm = TransformersLLM(model, device="cpu")
    prompt = WindowEncoder(llm, passage_tokens=12).prompt(fixed_windows(1, 0)[0])
    row = llm.next_token_logprobs([prompt], list("ABCD"))[0]
    return "ABCD".index(min(row, key=row.get))


def test_training_prompt_is_the_first_rerankers_prompt(tiny_lm: Path, one_thread: None):
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.rerank.listwise import FirstReranker
    from rarx.train.data.ranking import corpus_text
    from rarx.train.first import WindowEncoder

    llm = TransformersLLM(str(tiny_lm), device="cpu")
    q, r = Query("q1", "what erupts from volcanoes?"), ranking("q1", ["d3", "d4", "d5", "d1"])
    (window,), _ = make_windows([q], [r], corpus_text(DOCS), qrels={"q1": {"d4": 1}}, window=4)
    encoder = WindowEncoder(llm, passage_tokens=12)
    enc = encoder.encode(window)
    result = FirstReranker(llm, k=4, window=4, stride=2, passage_tokens=12).rerank_detailed(
        [q], [r]
    )[0]
    sent = next(d for e, d in result.events if e == "llm_call")["prompt"]
    assert sent == llm.render(encoder.prompt(window))
    assert enc.input_ids[: enc.prompt_len] == llm.prompt_ids(encoder.prompt(window))
    # The reply: the teacher's best (d4, shown as B) is the first token after the prompt.
    reply = llm.tokenizer.decode(enc.input_ids[enc.prompt_len :], skip_special_tokens=True)
    assert enc.input_ids[enc.prompt_len] == llm.token_id("B")
    assert reply == "B] > [A] > [C] > [D]"
    assert llm.render(encoder.prompt(window)).endswith("<|assistant|>[")


def test_graded_rank_pairs_teach_the_relevant_passage_against_each_other_only(
    tiny_lm: Path, one_thread: None
):
    torch = pytest.importorskip("torch")
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.train.data.ranking import corpus_text
    from rarx.train.first import WindowEncoder, weighted_ranknet

    llm = TransformersLLM(str(tiny_lm), device="cpu")
    q, r = Query("q1", "what erupts from volcanoes?"), ranking("q1", ["d3", "d4", "d5", "d1"])
    (w,), _ = make_windows([q], [r], corpus_text(DOCS), qrels={"q1": {"d4": 1}}, window=4)
    assert w.grades == (0, 1, 0, 0) and w.order == (1, 0, 2, 3)
    assert WindowEncoder(llm, passage_tokens=12).encode(w).ranks == [2, 1, 3, 4]
    graded = WindowEncoder(llm, passage_tokens=12, rank_pairs="graded").encode(w)
    assert graded.ranks == [2, 1, 2, 2]  # the rest tie
    # the loss is then the relevant passage against each other one, nothing among the rest
    scores = torch.tensor([[0.0, 1.0, 5.0, -5.0]])
    pairs = [softplus_neg(1.0 - x) / 3 for x in (0.0, 5.0, -5.0)]
    got = weighted_ranknet(scores, torch.tensor([graded.ranks]))
    assert float(got) == pytest.approx(sum(pairs) / 3, rel=1e-5)
    unknown = RankingWindow("q2", "x", w.docids, w.passages, w.order)  # no grades
    with pytest.raises(ConfigError, match="no grades .* --rank-pairs graded needs"):
        WindowEncoder(llm, passage_tokens=12, rank_pairs="graded").encode(unknown)


def test_train_first_learns_writes_a_card_and_loads_as_a_first_reranker(
    tiny_lm: Path, tmp_path: Path, one_thread: None, toy_eval_sets: None
):
    from click.testing import CliRunner

    from rarx.cli.main import cli
    from rarx.models.card import ModelCard
    from rarx.rerank import make_reranker

    best = least_liked(str(tiny_lm))
    data = tmp_path / "windows.jsonl"
    write_windows(data, fixed_windows(10, best))
    out = tmp_path / "first-tiny"
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "first",
            "--data",
            str(data),
            "--base",
            str(tiny_lm),
            "--out",
            str(out),
            "--max-steps",
            "25",
            "--lr",
            "3e-3",
            "--batch-size",
            "4",
            "--passage-tokens",
            "12",
            "--dev",
            "2",
            "--seed",
            "0",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    card = ModelCard.read(out)
    assert card is not None and card.objective == "first" and card.steps == 25
    assert card.base == str(tiny_lm) and card.data[0].rows == 10
    assert card.data[0].checksum.startswith("sha256:")
    assert card.overlap == {"toy-eval": pytest.approx(1 / 3, abs=1e-6)}  # measured: no manifest
    losses = card.options["loss_history"]
    assert len(losses) == 25 and sum(losses[-5:]) < 0.75 * sum(losses[:5])
    assert card.options["train_windows"] == 8 and card.options["dev"] == 2
    assert card.metrics["base_dev_top1"] == 0.0 and card.metrics["dev_top1"] == 1.0

    # The directory is an LLM name: the FIRST reranker now puts candidate `best` first.
    q, r = Query("new", "a query never seen"), ranking("new", ["d2", "d5", "d8", "d1"])
    for model, first_doc in ((str(tiny_lm), False), (str(out), True)):
        reranker = make_reranker(
            "first",
            model,
            k=4,
            window=4,
            stride=2,
            passage_tokens=12,
            llm_options={"device": "cpu"},
        )
        top = reranker.rerank([q], [r])[0].docids[0]
        assert (top == r.docids[best]) is first_doc


def test_train_first_stops_at_max_minutes_and_resume_continues(
    tiny_lm: Path, tmp_path: Path, one_thread: None, toy_eval_sets: None
):
    """Also with LoRA on the top layer only (--lora --train-layers 1) on states cached on
    disk by a bfloat16 pass: adapters resume, the resumed run reuses the cache the
    stopped one kept (and removes it when done), and merged into the output the adapters
    change that layer's projections and nothing else (the bfloat16 pass left the frozen
    weights as they were)."""
    from safetensors.torch import load_file

    from rarx.train.common import TrainOptions, last_checkpoint
    from rarx.train.driver import run
    from rarx.train.first import FirstSettings
    from rarx.train.frozen_states import disk_cache_path

    data = tmp_path / "windows.jsonl"
    write_windows(data, fixed_windows(6, 0))
    settings = FirstSettings(passage_tokens=12, dev=0, train_layers=1, state_cache="disk",
                             cache_dtype="bfloat16")  # fmt: skip
    states = disk_cache_path(tmp_path / "m", 1)

    def opts(**kw: Any) -> TrainOptions:
        return TrainOptions(
            data=str(data),
            base=str(tiny_lm),
            out=tmp_path / "m",
            max_steps=6,
            lr=1e-3,
            batch_size=2,
            seed=0,
            quiet=True,
            **kw,
        )

    first = run("first", opts(max_minutes=1e-6, lora=True), settings)
    assert first.stopped_early and first.steps == 1
    assert first.options["state_cache"]["dtype"] == "bfloat16"
    assert "reused" not in first.options["state_cache"] and states.is_file()
    checkpoint = last_checkpoint(tmp_path / "m")
    assert checkpoint is not None and checkpoint.endswith("checkpoint-1")
    # A later checkpoint cut short (killed while saving: no trainer state) is passed over.
    (tmp_path / "m" / "checkpoints" / "checkpoint-5").mkdir()
    assert last_checkpoint(tmp_path / "m") == checkpoint
    # Mark the checkpoint's logged loss: a resumed run carries its history on.
    state_file = Path(checkpoint) / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["log_history"][0]["loss"] = 123.0
    state_file.write_text(json.dumps(state))

    resumed = run("first", opts(resume=True, lora=True), settings)
    assert resumed.steps == 6 and not resumed.stopped_early
    assert resumed.options["loss_history"][0] == 123.0
    assert len(resumed.options["loss_history"]) == 6
    assert resumed.options["state_cache"]["reused"] and not states.exists()

    base = load_file(tiny_lm / "model.safetensors")
    trained = load_file(tmp_path / "m" / "model.safetensors")
    for name, tensor in base.items():
        changed = not bool((trained[name] == tensor).all())
        top_proj = name.startswith("model.layers.1.") and name.endswith("proj.weight")
        assert changed == top_proj, name


# -- a tokenizer that merges "[" into the identifiers (as Qwen's does) -------------------------


@pytest.fixture(scope="module")
def merged_llm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("torch")
    from rarx.llm.transformers_backend import TransformersLLM
    from tests.test_reply import MERGED, qwen_like_tokenizer, tiny_lm

    root = tmp_path_factory.mktemp("qwen-like-train")
    tok = qwen_like_tokenizer(root / "tok", [*MERGED, ("Ċ", "Ċ")])
    return TransformersLLM(str(tiny_lm(root / "lm", tok)), device="cpu")


def test_training_teaches_the_tokens_first_reads_where_the_tokenizer_merges(
    merged_llm: Any,
) -> None:
    from rarx.train.first import WindowEncoder

    passages = tuple(f"passage number {i}" for i in range(16))  # A..P: O is two tokens
    order = (2, 14, 0, *[i for i in range(16) if i not in (2, 14, 0)])  # C > O > A > ...
    w = RankingWindow("q1", "which passage?", tuple(f"d{i}" for i in range(16)), passages, order)
    enc = WindowEncoder(merged_llm)
    e = enc.encode(w)
    tok = merged_llm.tokenizer
    chat = enc.prompt(w)
    # The sequence is exactly what the model reads and writes: the rendered prompt
    # (without the "[" its tokenizer merges into "[C") and the ranking, tokenised whole;
    # then the branch: the "[" after which FIRST reads O.
    reply = "".join(enc.template.reply_parts([enc.template.ids(16)[i] for i in order]))
    whole = tok(merged_llm.render(chat) + reply, add_special_tokens=False)["input_ids"]
    assert e.branch == 1 and tok.convert_ids_to_tokens(e.input_ids[-1]) == "["
    assert e.input_ids[:-2] == whole and e.input_ids[-2] == tok.eos_token_id
    assert tok.convert_ids_to_tokens(e.input_ids[e.prompt_len]) == "[C"
    assert e.input_ids[: e.prompt_len] == merged_llm.prompt_ids(type(chat)(chat.messages))
    # Every passage is ranked; each identifier is read as FIRST reads it: "[A".. after the
    # prompt, O as "[" there plus "O" after the branch's "[".
    assert e.ranks[2] == 1 and e.ranks[14] == 2 and e.ranks[0] == 3
    assert sorted(e.ranks) == list(range(1, 17))
    last = e.prompt_len - 1
    assert e.reads[0] == ((last, tok.convert_tokens_to_ids("[A")),)
    assert e.reads[14] == ((last, tok.convert_tokens_to_ids("[")),
                           (len(e.input_ids) - 1, tok.convert_tokens_to_ids("O")))  # fmt: skip


def first_scores(llm: Any, rows: list[Any]) -> Any:
    """Each row's passages' training scores, from one forward pass over the batch."""
    import torch

    from rarx.train.first import collate, read_scores
    from rarx.train.reply_branch import attention_mask

    batch = collate(rows, pad_id=llm.tokenizer.pad_token_id)
    mask = batch["attention_mask"]
    if "tree_mask" in batch:
        mask = attention_mask(llm.model, batch["tree_mask"])
    with torch.no_grad():
        logits = llm.model(input_ids=batch["input_ids"], attention_mask=mask,
                           position_ids=batch["position_ids"],
                           logits_to_keep=batch["targets"].shape[1]).logits  # fmt: skip
    return read_scores(logits, batch["read_at"], batch["read_tokens"])


def test_graded_training_ranks_an_answer_at_o_by_the_score_first_reads(merged_llm: Any) -> None:
    """With a tokenizer that merges "[" into every identifier but O and Q (Qwen's), a
    window whose answer sits at O still gets its RankNet pairs (it had none: O had no
    logit of its own), and every passage's training score is the log-probability FIRST's
    reader gives its identifier, O and Q included, in a left-padded batch."""
    import torch

    from rarx.llm.reply import ReplyReader
    from rarx.train.first import WindowEncoder, weighted_ranknet

    ids = "ABCDEFGHIJKLMNOPQ"
    windows = []
    for n, answer in ((17, 14), (16, 2), (17, 16)):  # the answer at O, C, Q
        grades = tuple(int(i == answer) for i in range(n))
        windows.append(RankingWindow(
            f"q{n}-{answer}", f"which passage answers {answer}?", tuple(f"d{i}" for i in range(n)),
            tuple(f"passage {i} " + "words " * (i % 3) for i in range(n)), tuple(range(n)),
            grades=grades, instruction="Retrieve the answer." if answer == 2 else ""))  # fmt: skip
    enc = WindowEncoder(merged_llm, rank_pairs="graded")
    rows = [enc.encode(w) for w in windows]
    assert rows[0].ranks[14] == 1 and sorted(rows[0].ranks) == [1] + [2] * 16
    got = first_scores(merged_llm, rows)
    for b, (w, e) in enumerate(zip(windows, rows, strict=True)):
        n = len(w.passages)
        (read,) = ReplyReader(merged_llm, list(ids[:n]), "]").score([enc.prompt(w)])
        want = [read.scores[c] for c in ids[:n]]
        assert got[b, :n].tolist() == pytest.approx(want, abs=1e-4)
        ranks = torch.tensor([e.ranks])
        pairs = (ranks[:, :, None] < ranks[:, None, :]).sum()
        assert int(pairs) == n - 1  # the answer against every other passage
        assert float(weighted_ranknet(got[b : b + 1, :n], ranks)) > 0


def qwen_tokenizer_dir() -> Path | None:
    """Qwen2.5's own tokenizer, where `rarx models install qwen2.5-coder-1.5b` was run."""
    from rarx.models.cache import cache_dir

    found = [d for d in sorted((cache_dir() / "models").glob("qwen2.5-coder-1.5b*"))
             if (d / "tokenizer.json").is_file()]  # fmt: skip
    return found[0] if found else None


@pytest.mark.slow
@pytest.mark.skipif(qwen_tokenizer_dir() is None,
                    reason="qwen2.5-coder-1.5b is not installed (rarx models install)")  # fmt: skip
def test_qwens_tokenizer_trains_every_window_on_what_first_reads(tmp_path: Path) -> None:
    """Qwen's real tokenizer over a tiny random model (no weights needed): a window of 20
    whose answer sits at O, and one at Q, each get the answer-against-every-other pairs,
    and each identifier's training score (a batch, left-padded, O and Q on the branch) is
    the log-probability FIRST's reader gives it."""
    from transformers import AutoTokenizer

    from rarx.llm.reply import ReplyReader
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.rerank.prompts import ALPHABET
    from rarx.train.first import WindowEncoder
    from tests.test_reply import tiny_lm

    tok_dir = tmp_path / "tok"
    AutoTokenizer.from_pretrained(qwen_tokenizer_dir()).save_pretrained(tok_dir)
    llm = TransformersLLM(str(tiny_lm(tmp_path / "lm", tok_dir, layers=1)), device="cpu")
    ids = ALPHABET[:20]
    windows = [RankingWindow(
        f"q{a}", f"Which passage is number {a}?", tuple(f"d{i}" for i in range(20)),
        tuple(f"This is passage number {i}." for i in range(20)), tuple(range(20)),
        grades=tuple(int(i == a) for i in range(20)),
        instruction="Retrieve the answer to the question.") for a in (14, 16)]  # fmt: skip
    enc = WindowEncoder(llm, rank_pairs="graded")
    rows = [enc.encode(w) for w in windows]
    assert [r.branch for r in rows] == [1, 1]
    assert rows[0].ranks[14] == 1 and rows[1].ranks[16] == 1
    assert all(sorted(r.ranks) == [1] + [2] * 19 for r in rows)
    got = first_scores(llm, rows)
    for b, w in enumerate(windows):
        (read,) = ReplyReader(llm, list(ids), "]").score([enc.prompt(w)])
        assert read.tokens["O"][0][0] == "[" and read.tokens["A"][0][0] == "[A"
        assert got[b].tolist() == pytest.approx([read.scores[c] for c in ids], abs=1e-4)


@pytest.mark.slow
def test_a_trained_directory_reads_the_merged_identifiers_through_ctranslate2(
    merged_llm: Any, tmp_path: Path, one_thread: None, toy_eval_sets: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Trained on cached states (--train-layers 1 --state-cache disk), the output folder
    keeps the tokenizer that merges "[" into A..T: loaded as ``ctranslate2:DIR`` (converted
    into the cache), FIRST reads "[A".. with the prompt ending before "[" and "[" + "O" for
    O, and ranks as the transformers backend over the same folder does."""
    pytest.importorskip("ctranslate2")
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rarx.llm import load_llm
    from rarx.llm.reply import plan_reply
    from rarx.rerank.listwise import FirstReranker
    from rarx.train.common import TrainOptions
    from rarx.train.driver import run
    from rarx.train.first import FirstSettings

    monkeypatch.setenv("RARX_CACHE", str(tmp_path / "cache"))
    # Qwen2's own architecture over the tokenizer that merges as Qwen's does
    tok = merged_llm.tokenizer
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    base = tmp_path / "qwen2-tiny"
    Qwen2ForCausalLM(config).save_pretrained(base)
    tok.save_pretrained(base)
    passages = tuple(f"passage {i}" for i in range(16))
    windows = [RankingWindow(f"q{i}", f"which one {i}?", tuple(f"d{j}" for j in range(16)),
                             passages, tuple((i + j) % 16 for j in range(16)),
                             instruction="Find it." if i % 2 else "")
               for i in range(4)]  # fmt: skip
    data = tmp_path / "windows.jsonl"
    write_windows(data, windows)
    out = tmp_path / "first-merged"
    opts = TrainOptions(data=str(data), base=str(base), out=out, max_steps=2, lr=1e-3,
                        batch_size=2, seed=0, quiet=True)  # fmt: skip
    settings = FirstSettings(passage_tokens=8, dev=0, train_layers=1, state_cache="disk")
    outcome = run("first", opts, settings)
    assert outcome.steps == 2 and outcome.options["train_layers"] == 1

    ref = load_llm(str(out), device="cpu")
    ct = load_llm(f"ctranslate2:{out}", compute_type="float32")
    prompt = window_prompt(windows[1])
    plan = plan_reply(ct, prompt, list("ABCDEFGHIJKLMNOP"), "]")
    assert plan.given == "" and plan.tokens["A"] == ("[A",) and plan.tokens["O"] == ("[", "O")
    q = Query("new", "which one now?")
    r = Ranking("new", tuple(Hit(f"d{j}", 16.0 - j, Document(f"d{j}", p))
                             for j, p in enumerate(passages)))  # fmt: skip
    got = {}
    for name, llm in (("transformers", ref), ("ctranslate2", ct)):
        res = FirstReranker(llm, k=16, window=16, stride=8, passage_tokens=8,
                            instruction="Find it.").rerank_detailed([q], [r])[0]  # fmt: skip
        call = next(d for e, d in res.events if e == "llm_call")
        got[name] = (res.ranking.docids, call["logprobs"])
    assert got["ctranslate2"][0] == got["transformers"][0]
    for c, lp in got["transformers"][1].items():
        assert got["ctranslate2"][1][c] == pytest.approx(lp, abs=2e-3)


def window_prompt(w: RankingWindow) -> Any:
    from rarx.rerank.prompts import LISTWISE

    return LISTWISE.build(w.query, w.passages, instruction=w.instruction)
