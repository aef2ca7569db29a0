"""The ctranslate2 backend against the transformers backend (the reference) on the real
packaged SmolLM2, converted once into rarx's cache (float32 and int8 copies; later runs
reuse them), and the conversion cache itself on a tiny model built here."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ctranslate2")

from rarx.errors import ConfigError  # noqa: E402
from rarx.eval.datasets.base import McrItem  # noqa: E402
from rarx.eval.mcr_scorers import evaluate_mcr, load_scorer  # noqa: E402
from rarx.llm import ChatPrompt, LLMSpec, TokenizationError, load_llm  # noqa: E402
from rarx.llm.ctranslate2_backend import CTranslate2LLM, length_groups  # noqa: E402
from rarx.llm.likelihood import continuation_logprobs  # noqa: E402
from rarx.models.ct2_cache import (  # noqa: E402
    MANIFEST,
    Ct2CacheError,
    ct2_model_dir,
    ready_engines,
    source_fingerprint,
)
from rarx.models.registry import resolve_model  # noqa: E402
from rarx.rerank.listwise import FirstReranker  # noqa: E402
from rarx.types import Hit, Query, Ranking  # noqa: E402
from tests.conftest import TINY_DOCS, tiny_chat_llama  # noqa: E402

PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    ChatPrompt.user("List three fruits, one per line.", system="Be brief."),
    "Explain photosynthesis in one sentence, clearly and simply, for a child of ten.",
]


@pytest.fixture(scope="module")
def ct_f32() -> CTranslate2LLM:
    return CTranslate2LLM("smollm2-135m", compute_type="float32", batch_size=4)


@pytest.fixture(scope="module")
def ct_int8() -> CTranslate2LLM:
    return CTranslate2LLM("smollm2-135m", compute_type="int8", batch_size=4)


# -- names and options ---------------------------------------------------------------------


def test_backend_is_named_explicitly() -> None:
    spec = LLMSpec.parse("ctranslate2:qwen2.5-coder-1.5b")
    assert (spec.backend, spec.model) == ("ctranslate2", "qwen2.5-coder-1.5b")
    assert LLMSpec.parse("my-ctranslate2-model").backend == "transformers"


def test_unsupported_compute_type_and_device_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="compute type 'float16' is not supported on this cpu"):
        load_llm({"model": "smollm2-135m", "backend": "ctranslate2", "compute_type": "float16",
                  "device": "cpu"})  # fmt: skip
    with pytest.raises(ConfigError, match="runs on 'cpu' or 'cuda'"):
        load_llm("ctranslate2:smollm2-135m", device="mps")


def test_length_groups_bound_size_and_spread() -> None:
    groups = length_groups([10, 50, 11, 12, 52, 10, 30], size=2, spread=2)
    assert sorted(i for g in groups for i in g) == list(range(7))
    lengths = [10, 50, 11, 12, 52, 10, 30]
    for g in groups:
        assert len(g) <= 2 and max(lengths[i] for i in g) - min(lengths[i] for i in g) <= 2
    assert length_groups([5, 5, 6], size=8, spread=0) == [[0, 1], [2]]


# -- float32: the same numbers as the reference ----------------------------------------------


def test_token_ids_are_the_transformers_backends(smol: Any, ct_f32: CTranslate2LLM) -> None:
    prompt = ChatPrompt.user("Rank these.", prefix="[")
    for p in [*PROMPTS, prompt]:
        assert ct_f32.prompt_ids(p) == smol.prompt_ids(p)
        assert ct_f32.count_tokens(p) == smol.count_tokens(p)
    text = "Mitochondria produce ATP for the cell."
    assert ct_f32.tokenize(text) == smol.tokenize(text) and "".join(ct_f32.tokenize(text)) == text
    assert ct_f32.truncate(text, 3) == smol.truncate(text, 3)
    assert ct_f32.context_length == smol.context_length
    with pytest.raises(TokenizationError, match="exactly one"):
        ct_f32.check_single_tokens(["A", "Mitochondria"])


@pytest.mark.slow
def test_greedy_text_equals_transformers(smol: Any, ct_f32: CTranslate2LLM) -> None:
    want = smol.generate(PROMPTS, max_new_tokens=24)
    got = ct_f32.generate(PROMPTS, max_new_tokens=24)
    assert [g.text for g in got] == [w.text for w in want]
    assert [g.finish_reason for g in got] == [w.finish_reason for w in want]
    assert [g.prompt_tokens for g in got] == [w.prompt_tokens for w in want]
    assert all(g.prefill_seconds is not None and 0 < g.prefill_seconds <= g.seconds for g in got)
    # Stop strings cut the same text; ctranslate2 also stops decoding there.
    want = smol.generate(PROMPTS, max_new_tokens=24, stop=["\n", ","])
    got = ct_f32.generate(PROMPTS, max_new_tokens=24, stop=["\n", ","])
    assert [g.text for g in got] == [w.text for w in want]
    assert sum(g.completion_tokens for g in got) <= sum(w.completion_tokens for w in want)


def test_shared_prefix_is_cached_without_changing_float32_results() -> None:
    """The instruction every prompt shares is forwarded once as CTranslate2's static
    prompt: same greedy text and next-token log-probabilities as forwarding it whole
    (float32; int8's activation quantization makes results depend on the chunking, see
    the README), reused by a later one-prompt call, and the cache stays bounded."""
    ask = "Answer the question with a short phrase of a few words. Give only the answer. "
    questions = ["What gas do plants take in?", "What is the largest planet?",
                 "What do bees make?", "Which organ pumps blood through the body?"]  # fmt: skip
    prompts = [ChatPrompt.user(ask + q, prefix="The answer is") for q in questions]
    plain = CTranslate2LLM("smollm2-135m", compute_type="float32", batch_size=4, prefix_cache=0)
    cached = CTranslate2LLM("smollm2-135m", compute_type="float32", batch_size=4,
                            prefix_cache=1)  # fmt: skip
    assert cached.generate(prompts[:1], max_new_tokens=12)[0].text == plain.generate(
        prompts[:1], max_new_tokens=12)[0].text and cached._prefixes == []  # one prompt: no entry
    want = plain.generate(prompts, max_new_tokens=12)
    got = cached.generate(prompts, max_new_tokens=12)
    (prefix,) = cached._prefixes
    shared = cached.tokenizer.decode(list(prefix))
    assert ask.strip() in shared and questions[0] not in shared
    assert [g.text for g in got] == [w.text for w in want]
    assert [g.prompt_tokens for g in got] == [w.prompt_tokens for w in want]
    letters = [" A", " B", " The"]
    for w, g in zip(plain.next_token_logprobs(prompts[1:2], letters),
                    cached.next_token_logprobs(prompts[1:2], letters), strict=True):  # fmt: skip
        assert max(abs(w[c] - g[c]) for c in letters) < 1e-4
    other = [ChatPrompt.user("Translate into French, word by word, keeping the order: " + q)
             for q in questions]  # fmt: skip
    cached.generate(other, max_new_tokens=2)
    assert len(cached._prefixes) == 1  # full: a new prefix is forwarded whole, not cached


def test_next_token_logprobs_agree(smol: Any, ct_f32: CTranslate2LLM) -> None:
    # Prompts of different lengths in one call: each is read at its own last position.
    prompts = [ChatPrompt.user("Pick a letter. " + "word " * i, prefix="[") for i in range(5)]
    letters = list("ABCDE")
    want = smol.next_token_logprobs(prompts, letters)
    got = ct_f32.next_token_logprobs(prompts, letters)
    for w, g in zip(want, got, strict=True):
        assert list(g) == letters
        assert max(abs(w[c] - g[c]) for c in letters) < 2e-3
        assert math.log(sum(math.exp(v) for v in g.values())) < 0  # log-probabilities


def test_path_logprobs_read_every_step_of_a_path_in_one_pass(
    smol: Any, ct_f32: CTranslate2LLM
) -> None:
    # Paths of different lengths (and prompts of different lengths) in one call; each
    # reading must equal the reference's and this backend's own per-token reading.
    prompts = [ChatPrompt.user("Name a letter. " + "word " * i, prefix="[") for i in range(3)]
    paths = [(), ("A",), ("A", "]", " >")]
    letters = list("ABCDE")
    want = smol.path_logprobs(prompts, paths, letters)
    got = ct_f32.path_logprobs(prompts, paths, letters)
    for p, path, w, g in zip(prompts, paths, want, got, strict=True):
        assert len(g) == len(path) + 1
        per_token = ct_f32.next_token_logprobs(
            [ChatPrompt(p.messages, p.prefix + "".join(path[:j])) for j in range(len(path) + 1)],
            letters,
        )
        for ws, gs, ps in zip(w, g, per_token, strict=True):
            assert max(abs(ws[c] - gs[c]) for c in letters) < 2e-3
            assert max(abs(ps[c] - gs[c]) for c in letters) < 2e-3


def test_a_path_is_read_in_one_call_whatever_the_prompt_length(ct_f32: CTranslate2LLM) -> None:
    # a prompt far longer than the rest: still one generate call per path (the prompt
    # forwarded once as the static prompt), never a second pass per path token
    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner, self.calls = inner, []

        def generate_batch(self, rows: Any, **options: Any) -> Any:
            self.calls.append((len(options.get("static_prompt") or ()), [len(r) for r in rows]))
            return self.inner.generate_batch(rows, **options)

    prompts = [ChatPrompt.user("Name a letter. " + "word " * n, prefix="[") for n in (2, 400)]
    paths = [("A", "]"), ("A",)]
    want = [ct_f32.next_token_logprobs([ChatPrompt(p.messages, p.prefix + "".join(path[:j]))
                                        for j in range(len(path) + 1)], ["A", "B"])
            for p, path in zip(prompts, paths, strict=True)]  # fmt: skip
    real, ct_f32.generator = ct_f32.generator, Counting(ct_f32.generator)
    try:
        got = ct_f32.path_logprobs(prompts, paths, ["A", "B"])
        calls = ct_f32.generator.calls
    finally:
        ct_f32.generator = real
    assert len(calls) == 2 and calls[1][0] > 400  # the long prompt went in as the static one
    assert [rows for _, rows in calls] == [[3], [2]]  # its last token and the path, forced
    for w, g in zip(want, got, strict=True):
        assert len(g) == len(w)
        for ws, gs in zip(w, g, strict=True):
            assert max(abs(ws[c] - gs[c]) for c in ws) < 2e-3


def test_continuation_logprobs_agree(smol: Any, ct_f32: CTranslate2LLM) -> None:
    pairs = [
        ("Question: What color is the sky?\nAnswer:", " blue"),
        ("Question: What color is the sky?\nAnswer:", " the green of a forest"),
        ("Answer:", " blue"),
        ("Answer:", ""),
    ]
    want = continuation_logprobs(smol, pairs)
    got = continuation_logprobs(ct_f32, pairs)
    assert [len(g) for g in got] == [len(w) for w in want] == [1, 5, 1, 0]
    for w, g in zip(want, got, strict=True):
        assert np.allclose(w, g, atol=2e-3)
    scorer = load_scorer("llm-likelihood", ct_f32, normalize="pmi")
    assert scorer.settings()["dtype"] == "float32"


# -- int8: the same decisions as the reference -------------------------------------------------

QUESTIONS = [
    ("What do plants use to make food from sunlight?", ("photosynthesis", "digestion", "erosion")),
    ("Which planet is closest to the Sun?", ("Mercury", "Jupiter", "Neptune", "Mars")),
    ("What is frozen water called?", ("steam", "ice", "sand")),
    ("How many legs does a spider have?", ("six", "eight", "ten", "four")),
    ("Which gas do humans breathe out?", ("oxygen", "carbon dioxide", "helium")),
    ("What is the boiling point of water at sea level?", ("100 C", "50 C", "0 C")),
    ("Which organ pumps blood?", ("the liver", "the heart", "the lungs", "the skin")),
    ("What force pulls objects toward Earth?", ("magnetism", "friction", "gravity")),
    ("What is the largest ocean?", ("Atlantic", "Indian", "Pacific", "Arctic")),
    ("Which animal is a mammal?", ("shark", "whale", "trout")),
    ("What is the chemical symbol for gold?", ("Au", "Ag", "Gd", "Go")),
    ("What do bees make?", ("milk", "honey", "silk")),
]
ITEMS = [McrItem("Answer the question.", q, opts, 0) for q, opts in QUESTIONS]


def _margin(scores: np.ndarray) -> float:
    top = np.sort(np.asarray(scores))[::-1]
    return float(top[0] - top[1])


def test_int8_llm_choice_picks_the_references_option(smol: Any, ct_int8: CTranslate2LLM) -> None:
    """Rule: int8 picks the reference's option on at least 10 of the 12 questions, and
    wherever it does not, the reference's top two options are within 0.5 nats."""
    ref = evaluate_mcr(load_scorer("llm-choice", smol), ITEMS, False)
    got = evaluate_mcr(load_scorer("llm-choice", ct_int8), ITEMS, False)
    same = [r == g for r, g in zip(ref.predictions, got.predictions, strict=True)]
    assert sum(same) >= 10
    for ok, scores in zip(same, ref.scores, strict=True):
        assert ok or _margin(scores) < 0.5
    assert load_scorer("llm-choice", ct_int8).settings()["dtype"] == "int8"


def _ranking(qid: str) -> Ranking:
    from rarx.types import Document

    return Ranking(qid, tuple(Hit(d["id"], 8.0 - i, Document(d["id"], d["text"], d["title"]))
                              for i, d in enumerate(TINY_DOCS)))  # fmt: skip


def _onednn_avx2_int8() -> bool:
    """CTranslate2 runs int8 on oneDNN's AVX2 kernels: an AMD CPU without AVX-512 (MKL is
    off by default on AMD) unless CT2_USE_MKL=1."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                  if ln.startswith("flags")), [])  # fmt: skip
    return ("AuthenticAMD" in text and "avx512f" not in flags
            and os.environ.get("CT2_USE_MKL") != "1")  # fmt: skip


@pytest.mark.slow
@pytest.mark.xfail(
    condition=_onednn_avx2_int8(),
    strict=True,
    reason="on oneDNN's AVX2 int8 kernels (a 2-core AVX2-only AMD EPYC) SmolLM2-135M's top "
    "FIRST identifier drifts ~1.4 nats from float32 on every query; with CT2_USE_MKL=1 on the "
    "same host, and on an AVX-512 VNNI host, int8 agrees. qwen2.5-coder-1.5b on the same "
    "kernels: see benchmarks/results/llm_backends-qwen-first-avx2.json",
)
def test_int8_first_picks_the_references_top_passage(smol: Any, ct_int8: CTranslate2LLM) -> None:
    """Rule: on a fixed window of the 8 tiny passages, FIRST with int8 puts the reference's
    top passage first for at least 4 of the 5 queries; a query where it does not must be a
    near-tie in the reference (top two identifiers within 0.5 nats)."""
    queries = [Query(f"q{i}", t) for i, t in enumerate([
        "what makes ATP in a cell", "why do earthquakes happen", "where does lava come from",
        "what carries genetic information", "how do clouds form"])]  # fmt: skip
    rankings = [_ranking(q.qid) for q in queries]
    ref = FirstReranker(smol, k=8, window=8, stride=4).rerank_detailed(queries, rankings)
    got = FirstReranker(ct_int8, k=8, window=8, stride=4).rerank_detailed(
        queries, rankings)  # fmt: skip
    agree = 0
    for r, g in zip(ref, got, strict=True):
        if r.ranking.docids[0] == g.ranking.docids[0]:
            agree += 1
            continue
        (call,) = [d for e, d in r.events if e == "llm_call"]
        assert _margin(np.array(list(call["logprobs"].values()))) < 0.5
    assert agree >= 4


# -- conversion cache ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [d["text"] for d in TINY_DOCS] * 4
    return tiny_chat_llama(tmp_path_factory.mktemp("tiny-llama"), texts, 300, 256)


def test_conversion_is_cached_and_keyed_by_source_and_type(
    tiny_model: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ct2"
    first = ct2_model_dir(str(tiny_model), "int8", root=root)
    manifest = json.loads((first / MANIFEST).read_text())
    assert manifest["source_sha256"] == source_fingerprint(tiny_model)
    assert manifest["weights_type"] == "int8" and manifest["max_position_embeddings"] == 256
    stamp = (first / "model.bin").stat().st_mtime_ns
    assert ct2_model_dir(str(tiny_model), "int8_float32", root=root) == first  # same weights
    assert (first / "model.bin").stat().st_mtime_ns == stamp  # not converted again
    f32 = ct2_model_dir(str(tiny_model), "float32", root=root)
    assert f32 != first and f32.name.endswith("-float32")
    assert ready_engines(resolve_model(str(tiny_model)), root=root) == ["float32", "int8"]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary left
    # A training run's checkpoints/ beside the weights are not what the converter reads:
    # removing them (or writing more) must not orphan the conversion.
    (tiny_model / "checkpoints").mkdir()
    (tiny_model / "checkpoints" / "state.json").write_text("{}")
    try:
        assert ct2_model_dir(str(tiny_model), "int8", root=root, convert_missing=False) == first
    finally:
        shutil.rmtree(tiny_model / "checkpoints")  # the model is shared by this module


def test_interrupted_conversion_leaves_nothing(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rarx.models.ct2_cache as cache

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "_check_vocabulary", interrupted)  # after the weights are written
    root = tmp_path / "ct2"
    with pytest.raises(KeyboardInterrupt):
        ct2_model_dir(str(tiny_model), "int8", root=root)
    assert list(root.iterdir()) == []
    monkeypatch.undo()
    assert (ct2_model_dir(str(tiny_model), "int8", root=root) / MANIFEST).is_file()


def test_corrupt_or_foreign_cache_is_a_clear_error(tiny_model: Path, tmp_path: Path) -> None:
    root = tmp_path / "ct2"
    path = ct2_model_dir(str(tiny_model), "int8", root=root)
    manifest = json.loads((path / MANIFEST).read_text())
    (path / MANIFEST).write_text(json.dumps({**manifest, "source_sha256": "0" * 64}))
    with pytest.raises(Ct2CacheError, match=f"conversion of another source.*delete {path}"):
        ct2_model_dir(str(tiny_model), "int8", root=root)
    (path / MANIFEST).write_text('{"format": 1, "sour')  # cut short
    with pytest.raises(Ct2CacheError, match="unreadable"):
        ct2_model_dir(str(tiny_model), "int8", root=root)
    (path / MANIFEST).unlink()
    with pytest.raises(Ct2CacheError, match=f"has no {MANIFEST}: it was not written by rarx"):
        ct2_model_dir(str(tiny_model), "int8", root=root)
    (path / MANIFEST).write_text(json.dumps(manifest))
    os.remove(path / "model.bin")
    with pytest.raises(Ct2CacheError, match=r"not a complete .*missing \['model.bin'\]"):
        ct2_model_dir(str(tiny_model), "int8", root=root)


@pytest.mark.slow
def test_a_retrained_source_replaces_its_stale_conversion(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """Rule: converting a directory whose weights changed (retrained into the same --out)
    removes its earlier conversion of the same weight type once the new one is complete;
    other weight types, other sources and incomplete directories stay."""
    from safetensors.torch import load_file, save_file

    import rarx.models.ct2_cache as cache

    source = tmp_path / "reader"
    shutil.copytree(tiny_model, source)
    root = tmp_path / "ct2"
    old = ct2_model_dir(str(source), "int8", root=root)

    def sibling(name: str, **changes: str) -> Path:  # a copy of it, its manifest edited
        path = root / name
        shutil.copytree(old, path)
        manifest = json.loads((path / MANIFEST).read_text())
        (path / MANIFEST).write_text(json.dumps({**manifest, **changes}))
        return path

    f32 = sibling(old.name.replace("-int8", "-float32"), weights_type="float32")
    other = sibling("other-0123456789abcdef-int8", source=str(tiny_model))
    incomplete = sibling("reader-0123456789abcdef-int8")
    os.remove(incomplete / "model.bin")
    weights = load_file(source / "model.safetensors")  # "retrain": new weights, same place
    save_file({k: v + 0.01 for k, v in weights.items()}, source / "model.safetensors",
              metadata={"format": "pt"})  # fmt: skip

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "_check_vocabulary", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ct2_model_dir(str(source), "int8", root=root)
    assert (old / MANIFEST).is_file()  # never removed before the new copy is complete
    monkeypatch.undo()

    with caplog.at_level(logging.INFO, logger="rarx"):
        new = ct2_model_dir(str(source), "int8", root=root)
    assert new != old and not old.exists()
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [new.name, f32.name, other.name, incomplete.name]
    )
    assert f"removed 1 stale CTranslate2 int8 conversion(s) of {source}" in caplog.text
    assert old.name in caplog.text


def smol_without_bos(root: Path, keep_eos: bool = True) -> Path:
    """SmolLM2 (Llama architecture) shrunk to two tiny random layers, its tokenizer's
    start token removed (Qwen's tokenizer has none, nor do tokenizers trained here);
    without ``keep_eos``, its end and padding tokens too."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    from rarx.models.cache import causal_lm_dir

    smol = causal_lm_dir(resolve_model("smollm2-135m", kind="llm"), quiet=True)
    tok = AutoTokenizer.from_pretrained(smol)
    tok.bos_token = None
    if not keep_eos:
        tok.eos_token = tok.pad_token = None
    config = AutoConfig.from_pretrained(smol)
    config.update({"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16,
                   "bos_token_id": None})  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root)
    tok.save_pretrained(root)
    return root


def test_a_llama_folder_whose_tokenizer_has_no_bos_converts_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Llama converter wrote ``"bos_token": null``, which CTranslate2 then refused to
    load; the padding token is named instead, and the copy scores as transformers does."""
    from rarx.llm.transformers_backend import TransformersLLM

    folder = smol_without_bos(tmp_path / "smol-no-bos")
    monkeypatch.setenv("RARX_CACHE", str(tmp_path / "cache"))
    path = ct2_model_dir(str(folder), "float32")
    config = json.loads((path / "config.json").read_text())
    assert config["bos_token"] == "<|im_end|>" and config["eos_token"] == "<|im_end|>"
    ct = CTranslate2LLM(str(folder), compute_type="float32", batch_size=2)
    assert ct.path == path and ct.tokenizer.bos_token is None
    ref = TransformersLLM(str(folder), device="cpu")
    prompts = ["Name a fruit.", ChatPrompt.user("Pick one.", prefix="[")]
    assert [ct.prompt_ids(p) for p in prompts] == [ref.prompt_ids(p) for p in prompts]
    cands = list("ABCD")
    for got, want in zip(ct.next_token_logprobs(prompts, cands),
                         ref.next_token_logprobs(prompts, cands), strict=True):  # fmt: skip
        assert got == pytest.approx(want, abs=1e-3)


def test_a_tokenizer_naming_no_end_token_is_a_clear_conversion_error(tmp_path: Path) -> None:
    folder = smol_without_bos(tmp_path / "smol-no-eos", keep_eos=False)
    with pytest.raises(Ct2CacheError, match="needs the tokenizer to name an end-of-sequence"):
        ct2_model_dir(str(folder), "float32", root=tmp_path / "ct2")
    assert not list((tmp_path / "ct2").iterdir())  # nothing half-written


@pytest.mark.slow
def test_trained_gate_keeps_ret_one_token_that_it_emits(
    smol: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory as ``rarx train gate`` writes it (``<RET>`` added as a special token,
    embeddings resized, its row trained) converts with ``<RET>`` one token, emitted."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarx.models.cache import causal_lm_dir
    from rarx.stages.gate import RET, GateParams, GateStage
    from rarx.train.gate import add_ret_token
    from rarx.types import QueryState

    source = causal_lm_dir(resolve_model("smollm2-135m"))
    tok = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    ret = add_ret_token(tok, model)
    question = "What is the capital of France?"
    prompt = GateParams().prompt.format(q=question)
    first = smol.next_token_logprobs([prompt], ["The"])  # the base model's usual first word
    assert first[0]["The"] > -3
    with torch.no_grad():  # "train" the <RET> row: twice the row of "The" (tied head)
        emb = model.get_input_embeddings().weight
        emb[ret] = 2 * emb[tok.convert_tokens_to_ids("The")]
    out = tmp_path / "gate"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    monkeypatch.setenv("RARX_CACHE", str(tmp_path / "cache"))

    ref = load_llm(str(out), device="cpu")
    ct = load_llm(f"ctranslate2:{out}", compute_type="float32")
    assert ct.tokenize(RET) == ref.tokenize(RET) == [RET]
    ct.check_single_tokens([RET])
    want, got = ref.generate([prompt], 8)[0], ct.generate([prompt], 8)[0]
    assert got.text.startswith(RET) and got.text == want.text
    assert ct.next_token_logprobs([prompt], [RET])[0][RET] == pytest.approx(
        ref.next_token_logprobs([prompt], [RET])[0][RET], abs=2e-3)  # fmt: skip
    (state,) = GateStage(GateParams(mode="adapt-llm"), ct).run([QueryState(Query("q", question))])
    assert state.context["retrieve"] is True


def test_models_list_shows_ready_engines(ct_int8: CTranslate2LLM) -> None:
    from click.testing import CliRunner

    from rarx.cli.main import cli

    out = CliRunner().invoke(cli, ["models", "list"]).output
    assert out.splitlines()[0].split()[:4] == ["name", "kind", "status", "engines"]
    line = next(x for x in out.splitlines() if x.startswith("smollm2-135m"))
    engines = line.split()[3].split(",")
    assert engines[0] == "transformers" and "ct2:int8" in engines  # the fixture converted it
    assert next(x for x in out.splitlines() if x.startswith("minilm")).split()[3] == "-"
