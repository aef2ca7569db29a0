"""The one training driver: :func:`run` seeds, runs an objective
(:mod:`rarx.train.objective`) and writes its card with the leakage record; objectives fit
and save through :func:`train_and_save` (causal LMs: the frozen-state cache when only the
top layers learn, the one save path with LoRA merged) or :func:`fit_and_save`
(sentence-transformers models), both under the time budget and resume rules of
:func:`rarx.train.common.fit`.

A causal-LM objective brings its model (made :func:`rarx.train.causal.trainable`), its
encoded rows, its collator and how it builds its Trainer from a dataset and a collator;
the driver decides whether the rows reach the Trainer as token ids or as cached states.

Dev figures of the base model ("before training") are computed once per run through
:func:`before_training` and kept under the output directory, keyed by a fingerprint of
the base's weights and of what the objective says they follow from (dev rows, prompt,
settings): a run split into ``--resume`` pieces scores its dev set once, not once per
piece, and anything changed is scored again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rarx.models.card import ModelCard
from rarx.train.common import FitResult, TrainOptions


def run(name: str, opts: TrainOptions, settings: Any = None) -> ModelCard:
    """Train objective ``name`` (its default settings when None): seed, train, save,
    evaluate, and write the card into ``opts.out``; returns the card."""
    from rarx.train.common import seed_everything, write_card
    from rarx.train.objective import objective_class

    cls = objective_class(name)
    settings = cls.Settings() if settings is None else settings
    if not isinstance(settings, cls.Settings):
        raise TypeError(f"{name} takes {cls.Settings.__name__}, got {type(settings).__name__}")
    seed_everything(opts.seed)
    done = cls().train(opts, settings)
    options = {**done.options, **({"before_training": done.before} if done.before else {})}
    return write_card(opts, cls.name, done.data, done.result, done.metrics, done.overlap,
                      **options)  # fmt: skip


BEFORE_TRAINING = "before-training.json"  # under OUT/checkpoints: the base's dev figures


@dataclass
class Before:
    """The base model's dev figures and, for the card, where they came from."""

    metrics: dict[str, float]
    record: dict[str, Any]  # fingerprint, when computed, how long, reused or not


def before_training(
    opts: TrainOptions, model: Any, key: Any, compute: Callable[[], dict[str, float]]
) -> Before:
    """``compute()`` (the untrained ``model``'s dev figures), or the figures an earlier
    piece of this run stored in ``OUT/checkpoints`` under the same fingerprint: the
    model's weights, ``key`` (JSON-able: whatever else the figures follow from, such as
    the dev rows, the prompt and the settings), the objective's device and rarx's
    version. A run resumed in pieces thus scores its dev set once; a different base, dev
    set, prompt or setting is scored again. Written atomically; one record per run."""
    import json
    import time
    from datetime import UTC, datetime

    from rarx.io.atomic import atomic_write
    from rarx.train.common import CHECKPOINTS

    path = opts.out / CHECKPOINTS / BEFORE_TRAINING
    digest = model_fingerprint(model, {"key": key, "device": opts.device})
    found = _read_record(path)
    if found is not None and found.get("fingerprint") == digest:
        import logging

        logging.getLogger(__name__).info(
            "dev figures before training reused from %s (computed %s; same base, dev rows "
            "and settings)", path, found.get("computed"))  # fmt: skip
        record: dict[str, Any] = {k: found[k] for k in ("fingerprint", "computed", "seconds")
                                  if k in found}  # fmt: skip
        return Before(dict(found["metrics"]), {**record, "reused": True})
    t0 = time.perf_counter()
    metrics = {k: float(v) for k, v in compute().items()}
    record = {"fingerprint": digest, "computed": datetime.now(UTC).isoformat(timespec="seconds"),
              "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    with atomic_write(path) as f:
        json.dump({**record, "metrics": metrics}, f, indent=1)
    return Before(metrics, {**record, "reused": False})


def _read_record(path: Any) -> dict[str, Any] | None:
    import json

    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(found, dict) and isinstance(found.get("metrics"), dict)
    return found if ok else None


def model_fingerprint(model: Any, extra: Any) -> str:
    """SHA-256 of every parameter and buffer of ``model`` (names, dtypes, shapes, bytes),
    ``extra`` (JSON, objects by ``repr``) and rarx's version: seconds for a 1.5B model,
    against the minutes its dev scoring takes."""
    import hashlib
    import json

    from rarx import __version__
    from rarx.train.frozen_states import hash_tensors

    h = hashlib.sha256(json.dumps({"extra": extra, "rarx": __version__}, sort_keys=True,
                                  default=repr).encode())  # fmt: skip
    hash_tensors(h, [*model.named_parameters(), *model.named_buffers()])
    return h.hexdigest()


def fit_and_save(trainer: Any, opts: TrainOptions) -> FitResult:
    """Fit a sentence-transformers trainer and save its model into ``opts.out``."""
    from rarx.train.common import fit

    result = fit(trainer, opts)
    trainer.model.save(str(opts.out))
    return result


@dataclass
class Trained:
    result: FitResult
    model: Any  # the saved, plain model (adapters merged)
    state_cache: dict[str, Any] | None  # the frozen-state cache's report, None without one

    def card_options(self) -> dict[str, Any]:
        """What the card records about how the run trained."""
        return {"state_cache": self.state_cache} if self.state_cache else {}


def resumable(opts: TrainOptions) -> TrainOptions:
    """``opts`` for a ``--resume`` that has something to go on from. Without a checkpoint
    it fails here, before an hours-long caching pass rather than after it; where a run was
    stopped before its first checkpoint but kept work under ``OUT/checkpoints`` (a disk
    state cache, partial or whole; the base's dev figures; a fitted probe) the same command
    goes on: that work is reused and training starts from step 0. Objectives with work of
    their own before :func:`train_and_save` call it first."""
    import dataclasses
    import logging

    from rarx.errors import ConfigError
    from rarx.train.common import CHECKPOINTS, last_checkpoint

    if not opts.resume or last_checkpoint(opts.out) is not None:
        return opts
    folder = opts.out / CHECKPOINTS
    kept = sorted(p.name for p in folder.glob("*")) if folder.is_dir() else []
    if not kept:
        raise ConfigError(f"--resume: no checkpoint under {folder}; run without --resume to "
                          "start from the base model")  # fmt: skip
    logging.getLogger(__name__).info(
        "--resume: no checkpoint yet, only what a run stopped before training kept (%s): "
        "it is reused and training starts at step 0", ", ".join(kept))
    return dataclasses.replace(opts, resume=False)


def train_and_save(
    opts: TrainOptions,
    model: Any,
    tokenizer: Any,
    rows: Sequence[Any],
    collate: Callable[[list[Any]], dict[str, Any]],
    make_trainer: Callable[[Any, Callable], Any],
    *,
    train_layers: int = 0,
    state_cache: str = "auto",
    cache_dtype: str = "auto",
    on_cache: Callable[[Any], None] | None = None,
) -> Trained:
    """Fit ``make_trainer(dataset, collator)`` on ``rows`` (on cached frozen states when
    ``train_layers`` > 0 and ``state_cache`` allows, computed in ``cache_dtype``), then
    save model and tokenizer to ``opts.out``. A disk cache outlives a run stopped early
    (``--max-minutes``, or killed), for ``--resume`` to reuse. ``on_cache`` gets the
    :class:`~rarx.train.frozen_states.CachedTraining` before fitting starts (what the
    objective computes cheaply from the states: the top layers only)."""
    from rarx.train.causal import save_model
    from rarx.train.common import fit, resolve_device
    from rarx.train.frozen_states import cached_training

    opts = resumable(opts)
    cached = cached_training(model, rows, collate, train_layers, state_cache, opts.out,
                             resolve_device(opts.device), opts.quiet, cache_dtype)  # fmt: skip
    if cached is None:
        trainer = make_trainer(list(rows), collate)
    else:
        if on_cache is not None:
            on_cache(cached)
        trainer = make_trainer(cached.dataset, cached.collate)
    with cached.top_only() if cached else contextlib.nullcontext():
        result = fit(trainer, opts)
    final = save_model(trainer.model, tokenizer, opts.out)
    return Trained(result, final, cached.finish(keep=result.stopped_early) if cached else None)
