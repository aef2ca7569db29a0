"""``rarx train lm``: continued pre-training of a tiny Llama built in the test, on a
tiny corpus, through the command line; the result loads through rarx's LLM layer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rarx.train.lm import pack

DOCS = [
    ("Photosynthesis", "Plants take in carbon dioxide and release oxygen in sunlight."),
    ("Cells", "The mitochondria is the powerhouse of the cell and makes energy."),
    ("Genes", "DNA carries genetic information in the nucleus of the cell."),
    ("Volcanoes", "Lava erupts from volcanoes when magma reaches the surface."),
    ("Gravity", "Gravity pulls objects toward the Earth and keeps the moon in orbit."),
    ("Water", "Water boils at one hundred degrees and freezes at zero degrees."),
]  # fmt: skip


def test_pack_concatenates_with_separators_and_drops_the_tail() -> None:
    blocks = pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], eos_id=0, block_size=4)
    assert blocks == [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]
    assert pack([[1, 2, 3], [4]], eos_id=None, block_size=3) == [[1, 2, 3]]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with a word-level tokenizer over the corpus's words."""
    pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = sorted({w for t, x in DOCS for w in f"{t}\n{x}".replace(".", " .").split()})
    vocab = {tok: i for i, tok in enumerate(["<unk>", "<s>", "</s>", *words])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>",
                                  eos_token="</s>", pad_token="</s>")  # fmt: skip
    path = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
                         pad_token_id=2)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _corpus_loss(model_dir: Path) -> float:
    """Mean next-token loss over the corpus, with the model loaded by rarx's LLM layer."""
    import torch

    from rarx.llm import load_llm

    llm = load_llm(str(model_dir), device="cpu")
    inner = getattr(llm, "inner", llm)
    losses = []
    for title, text in DOCS:
        ids = inner.tokenizer(f"{title}\n{text}", return_tensors="pt")["input_ids"]
        with torch.no_grad():
            losses.append(float(inner.model(input_ids=ids, labels=ids).loss))
    return sum(losses) / len(losses)


def _train_lm(base: Path, tmp_path: Path, *extra: str) -> Path:
    """``rarx train lm`` for 30 steps on the corpus (four copies), through the CLI."""
    from rarx.cli.main import cli

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "title": t, "text": x}) + "\n"
                              for i, (t, x) in enumerate(DOCS * 4)))  # fmt: skip
    out = tmp_path / "adapted"
    cli.main(["train", "lm", "--corpus", str(corpus), "--base", str(base), "--out",
              str(out), "--block-size", "16", "--max-steps", "30", "--lr", "0.01",
              "--batch-size", "4", "--dev-fraction", "0.1", "--quiet", *extra],
             standalone_mode=False)  # fmt: skip
    return out


@pytest.mark.slow
def test_train_lm_lowers_the_corpus_loss_and_writes_a_card(
    tiny_llama: Path, tmp_path: Path
) -> None:
    from rarx.llm import load_llm

    out = _train_lm(tiny_llama, tmp_path)
    card = json.loads((out / "rarx_model.json").read_text())
    assert card["objective"] == "lm" and card["base"] == str(tiny_llama) and card["steps"] == 30
    assert card["data"][0]["rows"] == 24 and card["data"][0]["checksum"].startswith("sha256:")
    assert card["options"]["block_size"] == 16 and card["options"]["dev_blocks"] >= 1
    assert card["metrics"]["dev_loss"] < card["metrics"]["dev_loss_before"]
    # the saved directory is a model name for the LLM layer, and it learnt the corpus
    before, after = _corpus_loss(tiny_llama), _corpus_loss(out)
    assert after < before - 1.0
    (gen,) = load_llm(str(out), device="cpu").generate(["The mitochondria is"], max_new_tokens=3)
    assert gen.text.split()[:1] == ["the"]  # the corpus's next word after "is"


@pytest.mark.slow
def test_train_lm_top_layers_on_cached_states_leaves_the_lower_layer_as_it_was(
    tiny_llama: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    out = _train_lm(tiny_llama, tmp_path, "--train-layers", "1", "--state-cache", "memory",
                    "--cache-dtype", "float32")  # fmt: skip
    card = json.loads((out / "rarx_model.json").read_text())
    assert card["options"]["train_layers"] == 1
    assert card["options"]["state_cache"]["examples"] == card["options"]["train_blocks"]
    # the held-out loss is the whole saved model's, and the top layer alone lowered it
    assert card["metrics"]["dev_loss"] < card["metrics"]["dev_loss_before"]
    before, after = (load_file(str(d / "model.safetensors")) for d in (tiny_llama, out))
    assert all(after[k].equal(before[k]) for k in before if k.startswith("model.layers.0."))
    assert not after["model.layers.1.mlp.down_proj.weight"].equal(
        before["model.layers.1.mlp.down_proj.weight"])  # fmt: skip
