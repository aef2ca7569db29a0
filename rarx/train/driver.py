"""The one training driver of the causal-LM objectives: the frozen-state cache when only
the top layers learn, the Trainer run under the time budget and resume rules
(:func:`rarx.train.common.fit`), and the one save path (LoRA merged).

An objective brings its model (made :func:`rarx.train.causal.trainable`), its encoded
rows, its collator and how it builds its Trainer from a dataset and a collator; the
driver decides whether the rows reach the Trainer as token ids or as cached states.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rarx.train.common import FitResult, TrainOptions


@dataclass
class Trained:
    result: FitResult
    model: Any  # the saved, plain model (adapters merged)
    state_cache: dict[str, Any] | None  # the frozen-state cache's report, None without one

    def card_options(self) -> dict[str, Any]:
        """What the card records about how the run trained."""
        return {"state_cache": self.state_cache} if self.state_cache else {}


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
) -> Trained:
    """Fit ``make_trainer(dataset, collator)`` on ``rows`` (on cached frozen states when
    ``train_layers`` > 0 and ``state_cache`` allows), then save model and tokenizer to
    ``opts.out``."""
    from rarx.train.causal import save_model
    from rarx.train.common import fit, resolve_device
    from rarx.train.frozen_states import cached_training

    cached = cached_training(model, rows, collate, train_layers, state_cache, opts.out,
                             resolve_device(opts.device), opts.quiet)  # fmt: skip
    if cached is None:
        trainer = make_trainer(list(rows), collate)
    else:
        trainer = make_trainer(cached.dataset, cached.collate)
    with cached.top_only() if cached else contextlib.nullcontext():
        result = fit(trainer, opts)
    final = save_model(trainer.model, tokenizer, opts.out)
    return Trained(result, final, cached.finish() if cached else None)
