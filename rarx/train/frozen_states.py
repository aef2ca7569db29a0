"""Top-layer training on cached frozen states.

When only the top N decoder layers learn (with or without LoRA on them, and the final
norm), the layers below compute the same states for a training example at every step.
:func:`cache_states` runs them once per example (the caching pass) and keeps their
output, the input of layer ``L - N``, in memory or memory-mapped on disk; during
training :func:`cached_collator` hands those states to the model as ``inputs_embeds``
while :func:`top_only` has the decoder run its top layers only. An epoch then costs
the top layers' forward and backward passes and nothing below.

What the top layers need besides the states is what the model's own forward builds
from the batch: the causal mask from ``attention_mask`` and the rotary embeddings from
``position_ids`` (given, or counted from 0 per row as for right padding). Each example
is cached as it is alone, at positions 0..n-1; the collator places its states on the
positions its batch's ``attention_mask`` marks real, so left and right padding both
work as long as real tokens are contiguous and numbered from 0 (as rarx's collators
number them). A row with a reply branch (:mod:`rarx.train.reply_branch`) is cached under
the same tree mask and positions as it trains with. Padding positions get zeros: masked
out as keys, they never reach a real token, and no loss reads them.

Input-side embeddings are part of what is cached: a row that learns (a new token's
embedding) is used at the top only through a tied or untied output head. Layers below
the split must not learn; :func:`check_frozen_below` says so when they would.

The caching pass runs in bfloat16 where the hardware computes it natively
(:mod:`rarx.train.cache_dtype`); the states are stored in float32 either way. A cache on
disk is kept when training stops before its end and reused by the next run on the same
rows, model and dtype (its fingerprint, beside it, says so), so a resumed run skips the
caching pass; a caching pass interrupted on disk goes on from the batches it finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.train.cache_dtype import FLOAT32, CacheDtype

log = logging.getLogger(__name__)


def decoder_of(model: Any) -> Any:
    """The decoder stack (``model.model`` of a Llama/Qwen/Mistral causal LM), also
    through a peft wrapper."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(inner, "model", None)
    if decoder is None or not hasattr(decoder, "layers"):
        raise ConfigError(
            f"top-layer training needs a decoder whose layers are model.model.layers "
            f"(Llama, Qwen, Mistral, ...); {type(inner).__name__} has none: train all layers"
        )
    return decoder


def split_layer(model: Any, train_layers: int) -> int:
    """The index of the first layer that learns when the top ``train_layers`` do."""
    n = len(decoder_of(model).layers)
    if not 0 < train_layers <= n:
        raise ConfigError(f"--train-layers {train_layers}: the model has {n} decoder layers")
    return n - train_layers


def check_frozen_below(model: Any, split: int) -> None:
    """Refuse a cache whose states would go stale: nothing at or below layer ``split - 1``
    (embeddings included) may learn."""
    decoder = decoder_of(model)
    below = [decoder.embed_tokens, *list(decoder.layers)[:split]]
    learning = [n for m in below for n, p in m.named_parameters() if p.requires_grad]
    if learning:
        raise ConfigError(
            f"cached states need the layers below {split} frozen, but {len(learning)} "
            f"parameters there learn (e.g. {learning[0]}); cache only with --train-layers "
            "(LoRA restricted to those layers), or train without the cache"
        )


@contextlib.contextmanager
def _layers(decoder: Any, keep: slice, final_norm: bool) -> Iterator[None]:
    """The decoder with only ``layers[keep]`` (and, unless ``final_norm``, no final
    norm), restored afterwards. Per-layer attention kinds follow their layers and the
    config counts the layers kept (a checkpoint saved meanwhile describes them, and
    transformers checks the two agree); no KV cache (its layers are numbered by the
    attention modules' own indices)."""
    import torch

    config = decoder.config
    layers, norm, count = decoder.layers, decoder.norm, config.num_hidden_layers
    types = getattr(config, "layer_types", None)
    use_cache = config.use_cache
    config.use_cache = False
    decoder.layers = torch.nn.ModuleList(list(layers)[keep])
    if not final_norm:
        decoder.norm = torch.nn.Identity()
    if types is not None:
        config.layer_types = list(types)[keep]
    config.num_hidden_layers = len(decoder.layers)
    try:
        yield
    finally:
        decoder.layers, decoder.norm = layers, norm
        config.use_cache, config.num_hidden_layers = use_cache, count
        if types is not None:
            config.layer_types = types


def top_only(model: Any, split: int) -> contextlib.AbstractContextManager[None]:
    """The model runs layers ``split..L-1``, the norm and the head on ``inputs_embeds``
    that are layer ``split``'s input (the checkpoint the Trainer writes meanwhile holds
    those layers under their new numbers; resume with the same ``--train-layers``)."""
    return _layers(decoder_of(model), slice(split, None), final_norm=True)


@dataclass
class StateCache:
    """Layer ``split``'s input for each example: ``states[offsets[i]:offsets[i+1]]``."""

    states: Any  # numpy [tokens, hidden] float32, in memory or a memmap
    offsets: Any  # numpy [examples + 1] int64
    split: int
    path: Path | None = None
    seconds: float = 0.0  # the caching pass (a reused cache: the pass that made it)
    dtype: CacheDtype = FLOAT32  # the pass's dtype
    reused: bool = False  # read from an earlier run's disk cache: no caching pass

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, i: int) -> Any:
        return self.states[self.offsets[i] : self.offsets[i + 1]]

    @property
    def nbytes(self) -> int:
        return int(self.states.nbytes)

    def report(self) -> dict[str, Any]:
        """What the card records about the cache."""
        return {"layer": self.split, "examples": len(self), "tokens": int(self.offsets[-1]),
                "bytes": self.nbytes, "on_disk": self.path is not None,
                "seconds": round(self.seconds, 1), **self.dtype.report(),
                **({"reused": True} if self.reused else {})}  # fmt: skip


def cache_states(
    model: Any, sequences: Sequence[Sequence[int]], split: int, path: Path | None = None,
    quiet: bool = True, batch_size: int = 8, dtype: CacheDtype | None = None,
    key: str | None = None, trees: Sequence[tuple[int, int]] | None = None,
) -> StateCache:  # fmt: skip
    """Run embeddings and layers ``0..split-1`` once per sequence (no gradients, in
    ``dtype``: float32 when None) and keep their output in float32; memory-mapped at
    ``path`` (a ``.npy`` file) when given, else in memory.

    With ``path`` and ``key`` (the :func:`fingerprint` of model, sequences and dtype) the
    pass itself resumes: the batches done are recorded beside the partial file, and a
    pass interrupted with the same key goes on from the first batch not done.

    ``trees``: per sequence, ``(prompt length, branch length)`` where rows carry a reply
    branch (:mod:`rarx.train.reply_branch`); its tokens are cached as they train.

    Sequences go in batches of similar length, padded on the right: under the causal
    mask a real token attends to real tokens only, so its state is the one it has alone
    at positions 0..n-1 (the order of floating-point sums aside)."""
    import time

    import numpy as np
    import torch

    from rarx.progress import progress
    from rarx.train.cache_dtype import running_in, torch_dtype
    from rarx.train.reply_branch import attention_mask, tree_layout

    if split <= 0:
        raise ConfigError(f"nothing to cache below layer {split}")
    dtype = dtype or FLOAT32
    decoder = decoder_of(model)
    below = [decoder.embed_tokens, *list(decoder.layers)[:split]]
    hidden = int(decoder.config.hidden_size)
    lengths = [len(s) for s in sequences]
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    shape = (int(offsets[-1]), hidden)
    start, progress_at, key = 0, None, f"{key}:{batch_size}" if key else None
    disk: np.memmap | None = None  # the partial file, with a path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        progress_at = path.with_name(path.name + ".progress") if key else None
        start = _batches_done(progress_at, partial, key, shape)
        if start:
            disk = np.lib.format.open_memmap(partial, mode="r+")
            log.info("the caching pass goes on from batch %d (%s)", start, partial)
        else:
            if progress_at is not None:
                progress_at.unlink(missing_ok=True)
            disk = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32,
                                             shape=shape)  # fmt: skip
    states = disk if disk is not None else np.empty(shape, dtype=np.float32)
    device = next(decoder.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    with (torch.no_grad(), running_in(below, torch_dtype(dtype.name)),
          _layers(decoder, slice(0, split), final_norm=False)):  # fmt: skip
        todo = list(enumerate(batches))[start:]
        for k, batch in progress(todo, desc="frozen states", quiet=quiet):
            width = max(lengths[i] for i in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for b, i in enumerate(batch):
                ids[b, : lengths[i]] = torch.tensor(list(sequences[i]))
                mask[b, : lengths[i]] = 1
            feed: dict[str, Any] = {"attention_mask": mask.to(device)}
            if trees is not None and any(trees[i][1] for i in batch):
                positions, allowed = tree_layout(
                    mask, torch.tensor([trees[i][0] for i in batch]),
                    torch.tensor([trees[i][1] for i in batch]))  # fmt: skip
                feed = {"attention_mask": attention_mask(decoder, allowed.to(device)),
                        "position_ids": positions.to(device)}  # fmt: skip
            out = decoder(input_ids=ids.to(device), **feed,
                          use_cache=False).last_hidden_state.float().cpu().numpy()  # fmt: skip
            for b, i in enumerate(batch):
                states[offsets[i] : offsets[i + 1]] = out[b, : lengths[i]]
            if disk is not None and progress_at is not None:  # the states first, then the record
                disk.flush()
                _write_json(progress_at, {"key": key, "batches_done": k + 1})
    if was_training:
        model.train()
    if disk is not None and path is not None:
        disk.flush()
        del disk, states
        partial.replace(path)  # whole or absent: an interrupted pass leaves only .partial
        if progress_at is not None:
            progress_at.unlink(missing_ok=True)
        states = np.load(path, mmap_mode="r")
    cache = StateCache(states, offsets, split, path, time.perf_counter() - t0, dtype)
    log.info("cached layer %d's input for %d examples (%s): %.1f MB %s in %.0f s", split,
             len(cache), dtype.name, cache.nbytes / 1e6, f"at {path}" if path else "in memory",
             cache.seconds)  # fmt: skip
    return cache


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    from rarx.io.atomic import atomic_write

    with atomic_write(path) as f:
        json.dump(obj, f, indent=1)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _batches_done(progress_at: Path | None, partial: Path, key: str | None, shape: tuple) -> int:
    """The batches an interrupted pass with the same ``key`` finished (0: start afresh)."""
    import numpy as np

    found = _read_json(progress_at) if progress_at is not None else None
    if not found or found.get("key") != key or not partial.is_file():
        return 0
    try:
        if np.load(partial, mmap_mode="r").shape != shape:
            return 0
    except (OSError, ValueError):
        return 0
    return int(found.get("batches_done", 0))


class CachedRows:
    """A training set whose items carry their index into the cache: ``(i, row)``."""

    def __init__(self, rows: Sequence[Any]):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        return i, self.rows[i]


def cached_collator(collate: Callable[[list[Any]], dict[str, Any]], cache: StateCache) -> Callable:
    """``collate`` over the rows, then ``input_ids`` replaced by the cached states placed on
    the real positions of each row (``attention_mask``), as ``inputs_embeds``."""

    def collate_cached(batch: Sequence[tuple[int, Any]]) -> dict[str, Any]:
        import torch

        out = collate([row for _, row in batch])
        mask = out["attention_mask"].bool()
        ids = out.pop("input_ids")
        embeds = torch.zeros((*ids.shape, cache.states.shape[1]), dtype=torch.float32)
        for b, (i, _) in enumerate(batch):
            states = torch.from_numpy(cache.get(i).copy())
            if int(mask[b].sum()) != states.shape[0]:
                raise ConfigError(
                    f"example {i}: {int(mask[b].sum())} tokens in the batch but "
                    f"{states.shape[0]} cached; the cache is not for these rows"
                )
            embeds[b, mask[b]] = states
        out["inputs_embeds"] = embeds
        return out

    return collate_cached


def disk_cache_path(out: Path, split: int) -> Path:
    """Where ``--state-cache disk`` keeps the states: beside the checkpoints."""
    from rarx.train.common import CHECKPOINTS

    return out / CHECKPOINTS / f"frozen-states-layer{split}.npy"


def fingerprint(
    model: Any, sequences: Sequence[Sequence[int]], split: int, dtype: CacheDtype,
    trees: Sequence[tuple[int, int]] | None = None,
) -> str:  # fmt: skip
    """What a cache's states follow from: every weight below ``split`` (embeddings
    included), the token ids, any reply branches (``trees``) and the pass's dtype. Hashes
    the weights' bytes (seconds for a 1.5B model, against the caching pass's hours)."""
    import numpy as np

    decoder = decoder_of(model)
    h = hashlib.sha256(json.dumps({"split": split, "dtype": dtype.name}).encode())
    below = [("embed_tokens", decoder.embed_tokens),
             *((f"layers.{i}", m) for i, m in enumerate(list(decoder.layers)[:split]))]  # fmt: skip
    for prefix, module in below:
        hash_tensors(h, module.named_parameters(prefix=prefix))
    h.update(np.asarray([len(q) for q in sequences], dtype=np.int64).tobytes())
    for q in sequences:
        h.update(np.asarray(q, dtype=np.int64).tobytes())
    if trees is not None and any(b for _, b in trees):  # none: the digest rows always had
        h.update(np.asarray(trees, dtype=np.int64).tobytes())
    return h.hexdigest()


def hash_tensors(h: Any, named: Iterable[tuple[str, Any]]) -> None:
    """Feed each named tensor's name, dtype, shape and bytes to the hash ``h``."""
    import torch

    for name, p in named:
        t = p.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())


def _fingerprint_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _reusable_cache(path: Path, digest: str, sequences: Sequence[Sequence[int]], split: int,
                   dtype: CacheDtype) -> StateCache | None:  # fmt: skip
    """The disk cache at ``path`` when its fingerprint is ``digest``, else None."""
    import numpy as np

    found = _read_json(_fingerprint_path(path))
    if not found or found.get("fingerprint") != digest or not path.is_file():
        return None
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(q) for q in sequences])
    states = np.load(path, mmap_mode="r")
    if states.shape[0] != offsets[-1]:
        return None
    log.info("reusing the frozen states at %s (same model, rows and dtype)", path)
    # the pass's seconds as recorded when it was made: the card counts the time it took
    seconds = found.get("seconds")
    seconds = float(seconds) if isinstance(seconds, int | float) else 0.0
    return StateCache(states, offsets, split, path, seconds, dtype, reused=True)


STATE_CACHES = ("auto", "memory", "disk", "off")  # auto: memory whenever --train-layers


def state_cache_setting() -> Any:
    """The ``state_cache`` field of every objective that trains top layers (one help)."""
    from rarx.train.common import setting

    return setting(
        "auto", "With --train-layers: compute the frozen layers' states once per example and "
        "train the top layers on them (auto = memory; disk memory-maps them under "
        "OUT/checkpoints; off: run the frozen layers every step).", choices=STATE_CACHES,
    )  # fmt: skip


@dataclass
class CachedTraining:
    """A training set, its collator and the context the Trainer runs in, on cached states."""

    model: Any
    cache: StateCache
    dataset: CachedRows
    collate: Callable

    def top_only(self) -> contextlib.AbstractContextManager[None]:
        return top_only(self.model, self.cache.split)

    def finish(self, keep: bool = False) -> dict[str, Any]:
        """The cache's report for the card. A disk cache is removed unless ``keep`` (training
        stopped before its end: the resumed run reuses it)."""
        report = self.cache.report()
        if self.cache.path is not None and not keep:
            self.cache.states = None
            self.cache.path.unlink(missing_ok=True)
            _fingerprint_path(self.cache.path).unlink(missing_ok=True)
        return report


def cached_training(
    model: Any, rows: Sequence[Any], collate: Callable, train_layers: int, mode: str,
    out: Path, device: str = "cpu", quiet: bool = True, cache_dtype: str = "auto",
) -> CachedTraining | None:  # fmt: skip
    """Cache the frozen states of ``rows`` (items with ``input_ids``, attributes or keys)
    for training the top ``train_layers`` layers of ``model`` (already made
    :func:`rarx.train.causal.trainable`), or None where ``mode`` or the flags say no
    cache. ``cache_dtype``: the caching pass's dtype (:mod:`rarx.train.cache_dtype`). A
    disk cache an earlier run left for the same model, rows and dtype is reused."""
    from rarx.train.cache_dtype import choose_cache_dtype

    if mode not in STATE_CACHES:
        raise ConfigError(f"--state-cache must be one of {', '.join(STATE_CACHES)}, got {mode!r}")
    if mode == "off" or (mode == "auto" and not train_layers):
        return None
    if not train_layers:
        raise ConfigError(f"--state-cache {mode} needs --train-layers N (the layers that learn)")
    dtype = choose_cache_dtype(cache_dtype, device)
    split = split_layer(model, train_layers)
    check_frozen_below(model, split)
    ids = [r.input_ids if hasattr(r, "input_ids") else r["input_ids"] for r in rows]
    # rows with a reply branch (rarx.train.first.Encoded): their tokens' tree
    trees = [(getattr(r, "prompt_len", 0), getattr(r, "branch", 0)) for r in rows]
    trees_or_none = trees if any(b for _, b in trees) else None
    model = model.to(device)
    if mode == "disk":
        path = disk_cache_path(out, split)
        digest = fingerprint(model, ids, split, dtype, trees_or_none)
        cache = _reusable_cache(path, digest, ids, split, dtype)
        if cache is None:
            _fingerprint_path(path).unlink(missing_ok=True)  # never beside other states
            cache = cache_states(model, ids, split, path, quiet=quiet, dtype=dtype, key=digest,
                                 trees=trees_or_none)  # fmt: skip
            _write_json(_fingerprint_path(path), {"fingerprint": digest, **cache.report()})
    else:
        cache = cache_states(model, ids, split, None, quiet=quiet, dtype=dtype,
                             trees=trees_or_none)  # fmt: skip
    return CachedTraining(model, cache, CachedRows(rows), cached_collator(collate, cache))
