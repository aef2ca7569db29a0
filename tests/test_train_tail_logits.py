"""The answer-only objectives (reader, gate) compute the output layer only over the
batch's tail, where their loss reads: the loss and every gradient equal those of each
row alone with the head over all of its positions (a tiny random Llama built here)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

IGNORE = -100


def tiny_llama(vocab: int = 97) -> object:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config).float()


def rows(vocab: int = 97) -> list[dict[str, list[int]]]:
    """Prompts of different lengths and targets of different lengths (a padded batch)."""
    g = torch.Generator().manual_seed(1)
    out = []
    for prompt, target in ((23, 1), (7, 3), (15, 2), (4, 5)):
        ids = torch.randint(2, vocab, (prompt + target,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:]})
    return out


def grads(model: object) -> dict[str, object]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_tail_logits_give_every_positions_loss_and_gradients() -> None:
    from rarx.train.gate import collator

    model, data = tiny_llama(), rows()
    # Reference: each row alone, no padding, the head over every position; the loss is
    # the mean over all target tokens of the batch.
    model.zero_grad()
    n = sum(sum(x != IGNORE for x in r["labels"]) for r in data)
    ref = torch.zeros(())
    for r in data:
        out = model(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]]))
        ref = ref + out.loss * sum(x != IGNORE for x in r["labels"])
    (ref / n).backward()
    expected = grads(model)

    model.zero_grad()
    batch = collator(pad_id=0)(data)
    width = batch["input_ids"].shape[1]
    keep = batch["logits_to_keep"]
    assert keep == 6 < width == 24  # the longest target (5) + 1, of 24 columns
    out = model(**batch)
    assert tuple(out.logits.shape) == (4, keep, 97)  # the head ran over the tail only
    out.loss.backward()
    assert torch.allclose(out.loss, ref / n, atol=1e-5)
    got = grads(model)
    assert got.keys() == expected.keys()
    for name, g in expected.items():
        assert torch.allclose(got[name], g, atol=1e-5, rtol=1e-4), name


def test_tail_logits_under_cached_frozen_states() -> None:
    """Top-layer training on cached states: the loss over the tail equals the loss of
    the whole model with the head over every position."""
    from rarx.train.frozen_states import cache_states, cached_collator, top_only
    from rarx.train.gate import collator

    model, data = tiny_llama(), rows()
    collate = collator(pad_id=0)
    with torch.no_grad():
        full = collate(data)
        labels = torch.full(full["input_ids"].shape, IGNORE)
        labels[:, -full["labels"].shape[1] :] = full["labels"]
        whole = model(input_ids=full["input_ids"], attention_mask=full["attention_mask"],
                      position_ids=full["position_ids"], labels=labels)  # fmt: skip
        cache = cache_states(model, [r["input_ids"] for r in data], split=1)
        batch = cached_collator(collate, cache)(list(enumerate(data)))
        with top_only(model, 1):
            tail = model(**batch)
    assert whole.logits.shape[1] == 24 and tail.logits.shape[1] == 6
    assert torch.allclose(tail.loss, whole.loss, atol=1e-5)
