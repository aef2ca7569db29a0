"""Top-layer training on cached frozen states: one step with the cache gives the loss and
the gradients the full model gives, for left padding (FIRST's collator, explicit
positions) and right padding (the answer-only collator, positions counted by the model),
on tiny decoders built here (Llama; Qwen2 with sliding-window layers above full ones).
A bfloat16 caching pass stays close to float32 and leaves the weights alone; a disk
cache is reused, and an interrupted pass resumed, only for the same model, rows and dtype."""

from __future__ import annotations

import json
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
    return [Encoded.first_token(s[:-3], s[-3:], [2, 1, 3], [5, 6, 7]) for s in sequences()]


def branched_rows() -> list[Any]:
    """As :func:`first_rows`, plus a one-token reply branch (token 8) after which the
    third passage's identifier is read as token 9 (Qwen's "[" then "O")."""
    from rarx.train.first import Encoded

    rows = []
    for s in sequences():
        p = len(s) - 3
        reads = (((p - 1, 5),), ((p - 1, 6),), ((p - 1, 8), (len(s), 9)))
        rows.append(Encoded([*s, 8], p, [2.0, 1.0, 3.0], reads, branch=1))
    return rows


def first_step(model: Any, batch: dict[str, Any]) -> Any:
    from rarx.train.first import first_loss
    from rarx.train.reply_branch import attention_mask

    targets = batch["targets"]
    feed = {k: batch[k] for k in ("input_ids", "inputs_embeds") if k in batch}
    mask = batch["attention_mask"]
    if "tree_mask" in batch:
        mask = attention_mask(model, batch["tree_mask"])
    out = model(**feed, attention_mask=mask, position_ids=batch["position_ids"],
                logits_to_keep=targets.shape[1])  # fmt: skip
    total, _, _ = first_loss(out.logits, targets, batch["read_at"], batch["read_tokens"],
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
    trees = [(r.prompt_len, r.branch) for r in rows] if hasattr(rows[0], "branch") else None
    cache = cache_states(model, ids, split, tmp / "states.npy" if tmp else None, trees=trees)
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


def test_a_reply_branch_is_cached_and_trained_as_the_full_model_reads_it() -> None:
    """Rows whose last token branches off after the prompt (FIRST's "[" for Qwen's O and
    Q): the cached states and the top layers see the same tree, so one step gives the
    full model's loss and gradients; the branch token reads the prompt alone."""
    import torch

    from rarx.train.first import collate, read_scores
    from rarx.train.reply_branch import attention_mask

    model = tiny_decoder("llama")
    rows = branched_rows()
    (loss, g), (loss_c, g_c), _ = full_and_cached(
        model, rows, lambda r: collate(r, pad_id=0), first_step, None
    )
    assert loss == pytest.approx(loss_c, rel=1e-5)
    for n in g:
        torch.testing.assert_close(g_c[n], g[n], rtol=1e-4, atol=1e-6)
    # the branch token's next-token log-probabilities are those after prompt + token 8
    model.eval()
    batch = collate(rows, pad_id=0)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"],
                       attention_mask=attention_mask(model, batch["tree_mask"]),
                       position_ids=batch["position_ids"],
                       logits_to_keep=batch["targets"].shape[1]).logits  # fmt: skip
        got = read_scores(logits, batch["read_at"], batch["read_tokens"])
        for b, r in enumerate(rows):
            alone = torch.tensor([r.input_ids[: r.prompt_len] + [8]])
            lp = model(input_ids=alone).logits[0].log_softmax(-1)
            want = float(lp[-2, 8] + lp[-1, 9])
            assert float(got[b, 2]) == pytest.approx(want, abs=1e-4)


def test_a_reply_branch_refuses_sliding_window_layers() -> None:
    from rarx.train.first import collate
    from rarx.train.reply_branch import attention_mask

    batch = collate(branched_rows(), pad_id=0)
    with pytest.raises(ConfigError, match="sliding-window attention layers"):
        attention_mask(tiny_decoder("qwen2-sliding"), batch["tree_mask"])


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


# -- the caching pass in bfloat16 -----------------------------------------------------------


def cached_loss(model: Any, dtype: Any) -> tuple[float, Any]:
    """FIRST's loss of one step on all rows, on states cached in ``dtype``; and the cache."""
    from rarx.train.first import collate
    from rarx.train.frozen_states import CachedRows, cache_states, cached_collator, top_only

    rows = first_rows()
    cache = cache_states(model, [r.input_ids for r in rows], LAYERS - TOP, dtype=dtype)
    dataset = CachedRows(rows)
    batch = cached_collator(lambda r: collate(r, pad_id=0), cache)(
        [dataset[i] for i in range(len(dataset))]
    )
    with top_only(model, LAYERS - TOP):
        return float(first_step(model, batch).detach()), cache


def test_a_bfloat16_caching_pass_gives_float32_states_close_to_float32_and_keeps_the_weights():
    """The frozen layers run in bfloat16 (8 significant bits: each rounding is within
    2^-9 = 0.2% relative), the states come back float32, and the model keeps its float32
    weights bit for bit. Tolerances: after the embedding and two layers of rounded
    matrix products the states' largest error stays within 2% of their largest value
    (measured here: 0.7%); FIRST's loss (language modelling + 10 x RankNet) on top of
    them within 0.2%, one bfloat16 rounding (measured: 0.006%; rounding errors average
    out over the hidden size), far below the loss changes training makes (tens of
    percent)."""
    import numpy as np
    import torch

    from rarx.train.cache_dtype import CacheDtype, choose_cache_dtype
    from rarx.train.causal import trainable

    model = trainable(tiny_decoder("llama"), train_layers=TOP)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss32, c32 = cached_loss(model, choose_cache_dtype("float32", "cpu"))
    bf16 = CacheDtype("bfloat16", "bfloat16", "asked for")
    loss16, c16 = cached_loss(model, bf16)

    assert c32.states.dtype == c16.states.dtype == np.float32
    diff = np.abs(c16.states - c32.states)
    assert diff.max() > 0  # the pass really ran in bfloat16
    assert diff.max() <= 0.02 * np.abs(c32.states).max()
    assert loss16 == pytest.approx(loss32, rel=2e-3)
    for n, p in model.named_parameters():  # the originals are back, untouched
        assert p.dtype == torch.float32 and torch.equal(p.detach(), before[n]), n
    assert c16.report()["dtype"] == "bfloat16" and c32.report()["dtype"] == "float32"


def test_auto_takes_bfloat16_only_where_the_cpu_has_bfloat16_units_and_says_why() -> None:
    from rarx.train.cache_dtype import choose_cache_dtype

    plain = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"
    with_units = plain.replace("avx512f", "avx512f avx512_bf16")
    absent = choose_cache_dtype("auto", "cpu", plain)
    assert absent.name == "float32" and "no bfloat16 units" in absent.why
    assert choose_cache_dtype("auto", "cpu", with_units).name == "bfloat16"
    assert choose_cache_dtype("float32", "cpu", with_units).name == "float32"
    asked = choose_cache_dtype("bfloat16", "cpu", plain)  # honoured, the reason recorded
    assert asked.name == "bfloat16" and "no bfloat16 units" in asked.why
    with pytest.raises(ConfigError, match="--cache-dtype must be one of"):
        choose_cache_dtype("float16", "cpu")


def test_a_disk_cache_is_reused_for_the_same_rows_model_and_dtype_only(tmp_path: Path) -> None:
    """What a resumed run relies on: a kept disk cache is read back (no caching pass)
    when model, rows and dtype are the ones it was made from, and rebuilt otherwise."""
    import numpy as np
    import torch

    from rarx.train.causal import trainable
    from rarx.train.first import collate
    from rarx.train.frozen_states import cached_training

    model = trainable(tiny_decoder("llama"), train_layers=TOP)
    rows = first_rows()

    def cached(rows: list[Any], dtype: str = "float32") -> Any:
        return cached_training(model, rows, lambda r: collate(r, pad_id=0), TOP, "disk",
                               tmp_path, cache_dtype=dtype)  # fmt: skip

    first = cached(rows)
    kept = np.array(first.cache.states)
    first.finish(keep=True)  # training stopped early
    # the pass's seconds as its record holds them (as if it had taken 20 minutes)
    record = first.cache.path.with_suffix(".json")
    made = json.loads(record.read_text())
    assert made["seconds"] == round(first.cache.seconds, 1)
    record.write_text(json.dumps({**made, "seconds": 1234.5}))
    again = cached(rows)
    assert again.cache.reused and again.cache.report()["reused"]
    # the card of the resumed run counts the pass that made the cache, not 0
    assert again.cache.seconds == 1234.5 and again.cache.report()["seconds"] == 1234.5
    np.testing.assert_array_equal(np.asarray(again.cache.states), kept)
    assert not cached(rows[:3]).cache.reused  # other rows
    assert not cached(rows, "bfloat16").cache.reused  # another dtype
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] += 1.0  # another model below the split
    last = cached(rows)
    assert not last.cache.reused
    path = last.cache.path
    last.finish()  # training ended: the cache and its fingerprint go
    assert not path.exists() and not path.with_suffix(".json").exists()


def test_an_interrupted_caching_pass_goes_on_from_the_batches_it_finished(tmp_path: Path):
    """Killed during its third batch, the pass on disk keeps the two it finished; run
    again with the same fingerprint it computes the other two only, and the states are
    those of an uninterrupted pass. Another fingerprint starts afresh."""
    import numpy as np

    from rarx.train.cache_dtype import FLOAT32
    from rarx.train.causal import trainable
    from rarx.train.frozen_states import cache_states, fingerprint

    model = trainable(tiny_decoder("llama"), train_layers=TOP)
    ids = [r.input_ids for r in first_rows()]
    split = LAYERS - TOP
    whole = cache_states(model, ids, split, batch_size=1)
    key = fingerprint(model, ids, split, FLOAT32)
    path = tmp_path / "states.npy"
    calls: list[int] = []

    def killed_at_third(module: Any, inputs: Any) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    hook = model.model.layers[0].register_forward_pre_hook(killed_at_third)
    with pytest.raises(KeyboardInterrupt):
        cache_states(model, ids, split, path, batch_size=1, key=key)
    assert not path.exists() and path.with_name("states.npy.partial").exists()
    calls.clear()
    resumed = cache_states(model, ids, split, path, batch_size=1, key=key)
    hook.remove()
    assert len(calls) == 2  # the third and fourth batches only
    np.testing.assert_array_equal(np.asarray(resumed.states), whole.states)
    assert not path.with_name("states.npy.progress").exists()

    hook = model.model.layers[0].register_forward_pre_hook(killed_at_third)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        cache_states(model, ids, split, path, batch_size=1, key=key)
    calls[:] = [1, 1, 1, 1]  # no more interruptions
    cache_states(model, ids, split, path, batch_size=1, key="another")
    hook.remove()
    assert len(calls) == 4 + 4  # all four batches again


def test_a_checkpoint_saved_while_the_top_layers_train_describes_those_layers(tmp_path: Path):
    """The Trainer saves checkpoints inside :func:`top_only`: the config it writes must
    describe the layers the model has then (Qwen2's config checks its per-layer attention
    kinds against its layer count), and the whole model's config is back after."""
    import json

    from rarx.train.frozen_states import split_layer, top_only

    model = tiny_decoder("qwen2-sliding")
    kinds = list(model.config.layer_types)
    with top_only(model, split_layer(model, TOP)):
        model.save_pretrained(tmp_path / "checkpoint")
    saved = json.loads((tmp_path / "checkpoint" / "config.json").read_text())
    assert saved["num_hidden_layers"] == TOP and saved["layer_types"] == kinds[-TOP:]
    assert model.config.num_hidden_layers == LAYERS and model.config.layer_types == kinds


def test_resume_without_a_checkpoint_fails_before_the_caching_pass(tmp_path: Path) -> None:
    """--resume with nothing to go on from fails at once (not after hours of caching); a
    run stopped in its caching pass (partial states on disk, no checkpoint yet) goes on
    with the same command, training from step 0; a checkpoint is resumed as before."""
    from rarx.train.causal import trainable
    from rarx.train.common import TRAINER_STATE, TrainOptions
    from rarx.train.driver import resumable, train_and_save
    from rarx.train.first import collate
    from rarx.train.frozen_states import disk_cache_path

    out = tmp_path / "m"
    opts = TrainOptions(data="d", base="b", out=out, resume=True)
    model = trainable(tiny_decoder("llama"), train_layers=TOP)
    with pytest.raises(ConfigError, match=r"--resume: no checkpoint under .*without --resume"):
        train_and_save(opts, model, None, first_rows(), lambda r: collate(r, pad_id=0),
                       lambda *a: None, train_layers=TOP, state_cache="disk")  # fmt: skip
    assert not (out / "checkpoints").exists()  # no caching pass ran
    partial = disk_cache_path(out, LAYERS - TOP)
    partial = partial.with_name(partial.name + ".partial")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"")
    assert resumable(opts).resume is False
    # an objective's own work kept before training (the gate's fitted probe) goes on too
    probed = TrainOptions(data="d", base="b", out=tmp_path / "p", resume=True)
    (probed.out / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"--resume: no checkpoint"):  # an empty folder
        resumable(probed)
    (probed.out / "checkpoints" / "ret-probe.json").write_text("{}")
    assert resumable(probed).resume is False
    checkpoint = out / "checkpoints" / "checkpoint-5"
    checkpoint.mkdir()
    (checkpoint / TRAINER_STATE).write_text("{}")
    assert resumable(opts) is opts
