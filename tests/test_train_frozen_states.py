"""Top-layer training on cached frozen states: one step with the cache gives the loss and
the gradients the full model gives, for left padding (FIRST's collator, explicit
positions) and right padding (the answer-only collator, positions counted by the model),
on tiny decoders built here (Llama; Qwen2 with sliding-window layers above full ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rarx.errors import ConfigError

LAYERS, TOP = 4, 2


def tiny_decoder(kind: str) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  tie_word_embeddings=True, pad_token_id=0)  # fmt: skip
    torch.manual_seed(0)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**common)).float()
    # Full attention below, sliding-window attention in the top layers: the top layers
    # must keep their own kind when the decoder runs without the bottom ones. A window
    # shorter than the sequences makes the two kinds differ.
    config = Qwen2Config(**common, use_sliding_window=True, sliding_window=4,
                         max_window_layers=LAYERS - TOP)  # fmt: skip
    return Qwen2ForCausalLM(config).float()


def sequences() -> list[list[int]]:
    import random

    rng = random.Random(7)
    return [[rng.randrange(1, 97) for _ in range(n)] for n in (9, 14, 6, 11)]


def first_rows() -> list[Any]:
    from rarx.train.first import Encoded

    # Reply: the last 3 tokens; three passages ranked in a fixed order.
    return [Encoded(s, len(s) - 3, [2, 1, 3]) for s in sequences()]


def first_step(model: Any, batch: dict[str, Any]) -> Any:
    import torch

    from rarx.train.first import first_loss

    targets = batch["targets"]
    feed = {k: batch[k] for k in ("input_ids", "inputs_embeds") if k in batch}
    out = model(**feed, attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], logits_to_keep=targets.shape[1])  # fmt: skip
    total, _, _ = first_loss(out.logits, targets, batch["rank_at"], torch.tensor([5, 6, 7]),
                             batch["ranks"])  # fmt: skip
    return total


def answer_step(model: Any, batch: dict[str, Any]) -> Any:
    return model(**batch).loss


def grads(model: Any) -> dict[str, Any]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def full_and_cached(model: Any, rows: list[Any], collate: Any, step: Any, tmp: Path | None):
    """(loss, grads) of one step on all rows, without and with the cache."""
    from rarx.train.causal import trainable
    from rarx.train.frozen_states import (
        CachedRows,
        cache_states,
        cached_collator,
        check_frozen_below,
        split_layer,
        top_only,
    )

    model = trainable(model, train_layers=TOP)
    model.train()
    loss = step(model, collate(rows))
    loss.backward()
    full = (float(loss.detach()), grads(model))

    split = split_layer(model, TOP)
    check_frozen_below(model, split)
    ids = [r.input_ids if hasattr(r, "input_ids") else r["input_ids"] for r in rows]
    cache = cache_states(model, ids, split, tmp / "states.npy" if tmp else None)
    dataset = CachedRows(rows)
    batch = cached_collator(collate, cache)([dataset[i] for i in range(len(dataset))])
    assert "input_ids" not in batch and batch["inputs_embeds"].shape[-1] == 32
    with top_only(model, split):
        loss = step(model, batch)
        loss.backward()
    assert len(model.model.layers) == LAYERS  # restored after the step
    return full, (float(loss.detach()), grads(model)), cache


@pytest.mark.parametrize("kind", ["llama", "qwen2-sliding"])
def test_one_step_on_cached_states_equals_the_full_model_left_padded(kind: str) -> None:
    import torch

    from rarx.train.first import collate

    model = tiny_decoder(kind)
    (loss, g), (loss_c, g_c), cache = full_and_cached(
        model, first_rows(), lambda rows: collate(rows, pad_id=0), first_step, None
    )
    assert loss == pytest.approx(loss_c, rel=1e-5)
    top = {n for n in g if ".layers.2." in n or ".layers.3." in n}
    assert top and set(g) == set(g_c)  # the same parameters learn, the top ones only
    assert not any(".layers.0." in n or ".layers.1." in n or "embed" in n for n in g)
    for n in g:
        torch.testing.assert_close(g_c[n], g[n], rtol=1e-4, atol=1e-6)
    assert cache.report()["tokens"] == sum(len(s) for s in sequences())


def test_one_step_on_cached_states_equals_the_full_model_right_padded(tmp_path: Path) -> None:
    """The answer-only collator (right padding, positions the model counts), with the
    states memory-mapped on disk and their size reported."""
    import torch

    from rarx.train.gate import IGNORE, collator

    rows = [{"input_ids": s, "labels": [IGNORE] * (len(s) - 2) + s[-2:]} for s in sequences()]
    model = tiny_decoder("llama")
    (loss, g), (loss_c, g_c), cache = full_and_cached(model, rows, collator(0), answer_step,
                                                      tmp_path)  # fmt: skip
    assert loss == pytest.approx(loss_c, rel=1e-5)
    assert set(g) == set(g_c) and g
    for n in g:
        torch.testing.assert_close(g_c[n], g[n], rtol=1e-4, atol=1e-6)
    report = cache.report()
    tokens = sum(len(s) for s in sequences())
    assert report["on_disk"] and report["bytes"] == tokens * 32 * 4
    assert (tmp_path / "states.npy").stat().st_size >= report["bytes"]
    assert not (tmp_path / "states.npy.partial").exists()


def test_the_cache_refuses_learning_layers_below_the_split() -> None:
    from rarx.train.causal import trainable
    from rarx.train.frozen_states import check_frozen_below, split_layer

    model = trainable(tiny_decoder("llama"))  # every layer learns
    with pytest.raises(ConfigError, match="frozen"):
        check_frozen_below(model, split_layer(model, TOP))
    with pytest.raises(ConfigError, match="decoder layers"):
        split_layer(model, LAYERS + 1)
