"""``rarx train gate``: teach a causal LM to ask for retrieval with ``<RET>`` (Adapt-LLM).

``<RET>`` becomes one new special token (embeddings resized, saved with the tokenizer).
The loss is the causal-LM loss on the target only (the rendered prompt is masked), with
transformers' ``Trainer`` through :mod:`rarx.train.common`. Full fine-tuning by default;
``--lora`` trains LoRA adapters on every linear layer plus the ``<RET>`` row of the
embedding (peft's trainable tokens, which follows a tied output head) and merges them
on save, so the output is always a plain model directory: ``llm: DIR`` in any pipeline,
where the adapt-llm gate reads the ``<RET>`` token (:mod:`rarx.stages.gate`).

Before fine-tuning, the new ``<RET>`` row is fitted as a linear probe on the frozen model's
states where the reply starts (LP-FT, :mod:`rarx.train.token_probe`): a mean-resized row
starts nats below the tokens the model predicts and, at a learning rate that keeps the model
intact, never climbs to the top (``--no-probe-init`` to train from the resized row). The row
is kept under ``OUT/checkpoints`` (``ret-probe.json`` and ``.npy``), so a run resumed in pieces
fits it once.

After training, the saved model is loaded back as rarx loads any LLM and scored on the
data's dev questions: P(<RET>) from the gate stage's own code, its AUC for predicting a
closed-book failure, and how often it would retrieve. Those go into the model card.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.io.jsonl import read_jsonl
from rarx.llm.base import ChatPrompt
from rarx.models.card import DataRef
from rarx.stages.gate import RET
from rarx.train.cache_dtype import cache_dtype_setting
from rarx.train.common import TrainOptions, setting, training_arguments
from rarx.train.data.gate import (
    QUESTIONS_FILE,
    build_gate_data,
    default_dir,
    parse_sources,
    read_instances,
    read_summary,
)
from rarx.train.frozen_states import state_cache_setting
from rarx.train.objective import CliSpec, Outcome

log = logging.getLogger(__name__)
IGNORE = -100  # label of a position the loss skips (transformers' convention)


@dataclass(frozen=True)
class GateTrainSettings:
    """What ``rarx train gate`` adds to the shared options."""

    limit: int | None = setting(None, "When --data names sources: training questions per "
                                "source.", min=1)  # fmt: skip
    dev_limit: int | None = setting(None, "When --data names sources: dev questions per "
                                    "source.", min=1)  # fmt: skip
    max_length: int = setting(512, "Tokens per instance (prompt + answer); longer prompts "
                              "lose their start.", min=16)  # fmt: skip
    lora_r: int = setting(16, "LoRA rank (with --lora).", min=1)
    lora_alpha: int = setting(32, "LoRA alpha (with --lora).", min=1)
    probe_init: bool = setting(True, "Fit the new <RET> row as a linear probe on the frozen "
                               "model before fine-tuning (LP-FT).")  # fmt: skip
    probe_examples: int = setting(512, "", cli=False)
    dev_eval: bool = setting(True, "", cli=False)  # P(<RET>) on the dev questions after
    train_layers: int = setting(
        0, "Train only the top N decoder layers (0: all; with --lora: adapters there only); "
        "the <RET> row keeps what the probe fitted.", min=0,
    )  # fmt: skip
    state_cache: str = state_cache_setting()
    cache_dtype: str = cache_dtype_setting()


# -- data -----------------------------------------------------------------------------


def resolve_data(opts: TrainOptions, settings: GateTrainSettings) -> Path:
    """``--data``: a folder written by ``rarx train data gate``, or source names
    (``sciq``, ``sciq,squad``) whose data is built on first use with the base model."""
    path = Path(opts.data)
    if path.is_dir():
        if not (path / "train.jsonl").is_file():
            raise ConfigError(
                f"--data {path}: no train.jsonl; build it with `rarx train data gate`"
            )
        return path
    if path.suffix == ".jsonl" or path.exists():
        raise ConfigError(f"--data {path}: expected a folder from `rarx train data gate` "
                          "(train.jsonl, dev.jsonl, questions.jsonl) or source names")  # fmt: skip
    sources = parse_sources(opts.data)
    target = default_dir(opts.base, sources, settings.limit)
    if read_summary(target) is None:
        from rarx.llm import load_llm
        from rarx.train.common import resolve_device

        log.info("building gate data for %s into %s (once)", ",".join(sources), target)
        llm = load_llm(opts.base, device=resolve_device(opts.device), batch_size=16)
        build_gate_data(llm, sources, target, settings.limit, settings.dev_limit, quiet=opts.quiet)
    return target


def add_ret_token(tokenizer: Any, model: Any) -> int:
    """``<RET>`` as one special token (added unless the vocabulary has it whole), the
    embeddings resized to the vocabulary; returns its id."""
    ids = tokenizer.encode(RET, add_special_tokens=False)
    if tokenizer.convert_ids_to_tokens(ids) != [RET]:  # several tokens, or the unknown one
        new = {"additional_special_tokens": [RET]}
        try:  # keep the tokenizer's other extra special tokens (transformers 5 / 4 names)
            tokenizer.add_special_tokens(new, replace_extra_special_tokens=False)
        except TypeError:
            tokenizer.add_special_tokens(new, replace_additional_special_tokens=False)
        ids = tokenizer.encode(RET, add_special_tokens=False)
    if tokenizer.convert_ids_to_tokens(ids) != [RET]:
        raise ConfigError(f"{RET} is still {len(ids)} tokens after adding it to the tokenizer")
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return int(ids[0])


def encode(tokenizer: Any, row: dict[str, Any], max_length: int) -> dict[str, list[int]]:
    """One instance as token ids, with labels only on the target and the end token."""
    from rarx.llm.transformers_backend import render_prompt

    prompt = ChatPrompt(tuple(tuple(m) for m in row["messages"]), row.get("prefix", ""))
    templated = bool(getattr(tokenizer, "chat_template", None))
    # A rendered chat template already holds its special tokens (as TransformersLLM reads).
    p_ids = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=not templated)
    t_ids = tokenizer(row["target"], add_special_tokens=False)["input_ids"]
    t_ids = [*t_ids, tokenizer.eos_token_id]
    p_ids = p_ids["input_ids"][-max(1, max_length - len(t_ids)) :]
    return {"input_ids": p_ids + t_ids, "labels": [IGNORE] * len(p_ids) + t_ids}


def collator(pad_id: int):  # noqa: ANN201 - a callable the Trainer batches with
    """Batches of answer-only rows: left-padded (positions counted from each row's first
    real token), with the output layer computed only where the loss reads it. The loss
    reads the logits of the positions before a target token, which left padding puts in
    the batch's last ``K`` columns (K = the longest target + 1), so ``logits_to_keep=K``
    and labels cut to those columns give the loss of every position at a fraction of the
    head's cost (a 151,936-word head costs more per token than qwen's top 4 layers)."""

    def collate(features: Sequence[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids, labels, mask = [], [], []
        keep = 1
        for f in features:
            pad = width - len(f["input_ids"])
            ids.append([pad_id] * pad + f["input_ids"])
            labels.append([IGNORE] * pad + f["labels"])
            mask.append([0] * pad + [1] * len(f["input_ids"]))
            first = next((i for i, x in enumerate(f["labels"]) if x != IGNORE), None)
            if first is not None:  # the logit before the first target is the first read
                keep = max(keep, len(f["input_ids"]) - first + 1)
        keep = min(keep, width)
        mask_t = torch.tensor(mask)
        return {"input_ids": torch.tensor(ids), "attention_mask": mask_t,
                "position_ids": (mask_t.cumsum(-1) - 1).clamp(min=0),
                "labels": torch.tensor(labels)[:, width - keep :],
                "logits_to_keep": keep}  # fmt: skip

    return collate


def mean_loss(model: Any, rows: Sequence[dict[str, list[int]]], collate: Any,
              batch_size: int = 8) -> float:  # fmt: skip
    """The answer-only loss over ``rows``, averaged over target tokens."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            batch = collate(rows[i : i + batch_size])
            batch = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in batch.items()}
            n = int((batch["labels"][:, 1:] != IGNORE).sum())  # positions the loss reads
            total += float(model(**batch).loss) * n
            count += n
    return total / max(count, 1)


# -- model ------------------------------------------------------------------------------


PROBE_RECORD = "ret-probe.json"  # under OUT/checkpoints, beside the fitted row (.npy)


@dataclass
class RetProbe:
    """The probe's prompts (indices into the training rows, the prompt lengths, labels) and
    its figures for the card."""

    rows: list[int]
    lengths: list[int]
    labels: list[bool]
    metrics: dict[str, float]


def probe_ret_row(
    model: Any, ret_id: int, train_set: Sequence[dict[str, list[int]]], pad_id: int,
    settings: GateTrainSettings, seed: int, out: Path | None = None, rounds: int = 2,
    quiet: bool = True,
) -> RetProbe:  # fmt: skip
    """LP-FT: the <RET> row fitted as a probe on (a sample of) the training prompts, where
    the target starts with <RET> or not; its before/after figures go into the card.

    With ``out``, the fitted row and its figures are kept under ``OUT/checkpoints`` keyed by
    the model's weights and the probe's prompts, labels and rounds: a run resumed in pieces
    (or run again) fits it once. ``rounds`` 1 leaves the figures of the row as written to
    :func:`probe_as_written` (from cached states, where the top layers alone run)."""
    import hashlib
    import json
    import random
    import time

    import numpy as np
    import torch

    from rarx.io.atomic import atomic_write
    from rarx.train.common import CHECKPOINTS
    from rarx.train.driver import model_fingerprint
    from rarx.train.token_probe import fit_token_row

    index = list(range(len(train_set)))
    if len(index) > settings.probe_examples:
        index = sorted(random.Random(seed).sample(index, settings.probe_examples))
    starts = [next(i for i, x in enumerate(train_set[k]["labels"]) if x != IGNORE)
              for k in index]  # fmt: skip
    prompts = [train_set[k]["input_ids"][:s] for k, s in zip(index, starts, strict=True)]
    labels = [train_set[k]["input_ids"][s] == ret_id for k, s in zip(index, starts, strict=True)]
    probe = RetProbe(index, starts, labels, {})
    record = row_file = digest = None
    if out is not None:
        record = out / CHECKPOINTS / PROBE_RECORD
        row_file = record.with_suffix(".npy")
        prompts_sha = hashlib.sha256(json.dumps([prompts, labels]).encode()).hexdigest()
        digest = model_fingerprint(model, {"probe": prompts_sha, "rounds": rounds,
                                           "ret_id": ret_id})  # fmt: skip
        found = _read_probe(record)
        if found is not None and found.get("fingerprint") == digest and row_file.is_file():
            row = torch.from_numpy(np.load(row_file))
            head = model.get_output_embeddings()
            with torch.no_grad():
                head.weight[ret_id] = row.to(head.weight.dtype).to(head.weight.device)
            log.info("<RET> row probe reused from %s (fitted %s)", record, found.get("computed"))
            probe.metrics = {**found["metrics"], "probe_reused": 1.0}
            return probe
    t0 = time.perf_counter()
    fit = fit_token_row(model, ret_id, prompts, labels, pad_id, rounds=rounds,
                        as_written=rounds > 1, quiet=quiet)  # fmt: skip
    probe.metrics = {**fit.metrics(), "probe_seconds": round(time.perf_counter() - t0, 1)}
    log.info("<RET> row probe on %d prompts: greedy emits it exactly where it is the target "
             "%.3f -> %.3f", fit.examples, fit.accuracy_before, fit.accuracy_after)  # fmt: skip
    if record is not None and row_file is not None:
        from datetime import UTC, datetime

        row = model.get_output_embeddings().weight[ret_id].detach().float().cpu().numpy()
        with atomic_write(row_file, "wb", encoding=None) as f:  # the row first, then its record
            np.save(f, row)
        with atomic_write(record) as f:
            json.dump({"fingerprint": digest, "metrics": probe.metrics,
                       "computed": datetime.now(UTC).isoformat(timespec="seconds")}, f, indent=1)
    return probe


def _read_probe(path: Path) -> dict[str, Any] | None:
    import json

    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("metrics"), dict) else None


def probe_as_written(cached: Any, probe: RetProbe, ret_id: int, pad_id: int,
                     quiet: bool = True) -> dict[str, float]:  # fmt: skip
    """The probe's figures for the row as written, from the cached input of the top layers
    (computed with that row in the prompts) through the top layers alone: the same states
    a full pass gives, at a fraction of its cost."""
    from rarx.train.token_probe import probe_figures, reply_states

    embeds = [cached.cache.get(k)[:n] for k, n in zip(probe.rows, probe.lengths, strict=True)]
    prompts = [[0] * n for n in probe.lengths]  # only their lengths are read with embeds
    with cached.top_only():
        _, best, own = reply_states(cached.model, prompts, ret_id, pad_id, embeds=embeds,
                                    quiet=quiet)  # fmt: skip
    fit = probe_figures(cached.model, ret_id, probe.labels, best, own,
                        probe.metrics.get("probe_accuracy_before", 0.0))  # fmt: skip
    return {k: v for k, v in fit.metrics().items() if k != "probe_accuracy_before"}


class Gate:
    name = "gate"
    Settings = GateTrainSettings
    cli = CliSpec(
        "Teach an LLM to answer, or to ask for retrieval with <RET> when it would answer "
        "wrong. --data is a folder from `rarx train data gate` or source names (sciq, squad, "
        "boolq, nq-open, triviaqa; built on first use with --base). OUT works as `llm:` anywhere; "
        "its card's options name the <RET> token id.",
        base="smollm2-135m", lr=5e-5, batch_size=4, lora=True,
    )  # fmt: skip

    def train(self, opts: TrainOptions, settings: GateTrainSettings) -> Outcome:
        return _train(opts, settings)


def _train(opts: TrainOptions, settings: GateTrainSettings | None = None) -> Outcome:
    """Train, save the model (merged when LoRA) with its tokenizer, score it on the dev
    questions."""
    from transformers import Trainer

    from rarx.train.causal import LoraSpec, load_causal_lm, pad_id, trainable
    from rarx.train.driver import resumable, train_and_save

    settings = settings or GateTrainSettings()
    opts = resumable(opts)  # a --resume with nothing to go on from fails before the probe
    data = resolve_data(opts, settings)
    train_rows = read_instances(data / "train.jsonl")
    dev_path = data / "dev.jsonl"
    dev_rows = read_instances(dev_path) if dev_path.is_file() else []
    if not train_rows:
        raise ConfigError(f"{data / 'train.jsonl'} holds no instances")
    tokenizer, model = load_causal_lm(opts.base)
    ret_id = add_ret_token(tokenizer, model)
    train_set = [encode(tokenizer, r, settings.max_length) for r in train_rows]
    pad = pad_id(tokenizer)
    metrics: dict[str, float] = {}
    probe = None
    # On cached states one round does: the states of the row as written come from the
    # caching pass (top layers alone), not from two more passes of the whole model.
    cached = settings.train_layers > 0 and settings.state_cache != "off"
    if settings.probe_init:
        probe = probe_ret_row(model, ret_id, train_set, pad, settings, opts.seed, opts.out,
                              rounds=1 if cached else 2, quiet=opts.quiet)  # fmt: skip
        metrics.update(probe.metrics)
    model.config.use_cache = False
    # LoRA trains the <RET> row too; top-layer training keeps it where the probe put it
    # (the input side of a tied row is below the layers that learn).
    lora = LoraSpec(settings.lora_r, settings.lora_alpha, dropout=0.0) if opts.lora else None
    rows = [ret_id] if lora and not settings.train_layers else []
    model = trainable(model, train_layers=settings.train_layers, lora=lora, token_rows=rows)
    # Random batches, not grouped by length: the <RET> instances are the short prompts, so
    # length groups would make whole batches of <RET> alternate with batches of answers.
    args = training_arguments(opts, remove_unused_columns=False, warmup_steps=0,
                              weight_decay=0.0)  # fmt: skip
    trained = train_and_save(
        opts, model, tokenizer, train_set, collator(pad),
        lambda dataset, collate: Trainer(model=model, args=args, train_dataset=dataset,
                                         data_collator=collate, processing_class=tokenizer),
        train_layers=settings.train_layers, state_cache=settings.state_cache,
        cache_dtype=settings.cache_dtype,
        on_cache=None if probe is None else lambda c: metrics.update(
            probe_as_written(c, probe, ret_id, pad, quiet=opts.quiet)),
    )  # fmt: skip
    result, final = trained.result, trained.model
    if dev_rows:  # after saving: an interrupted evaluation keeps the trained model
        dev_set = [encode(tokenizer, r, settings.max_length) for r in dev_rows]
        metrics["dev_loss"] = round(mean_loss(final, dev_set, collator(pad)), 4)
    if settings.dev_eval and (data / QUESTIONS_FILE).is_file():
        metrics.update(dev_gate_metrics(opts.out, data / QUESTIONS_FILE, opts.device))
    refs = [DataRef.of(data / "train.jsonl", len(train_rows))]
    if dev_rows:
        refs.append(DataRef.of(dev_path, len(dev_rows)))
    summary = read_summary(data)
    return Outcome(refs, result, metrics, gate_data_overlap(data), dict(
        ret_token=RET, ret_token_id=ret_id, data_dir=str(data.resolve()),
        data_llm=summary.llm if summary else None,
        lora={"r": settings.lora_r, "alpha": settings.lora_alpha, "merged": True}
        if opts.lora else None,
        max_length=settings.max_length, probe_init=settings.probe_init,
        train_layers=settings.train_layers, **trained.card_options(),
    ))  # fmt: skip


def gate_data_overlap(data: Path) -> dict[str, float]:
    """The share of every evaluation set rarx knows found among the training questions
    (a packaged set the data was split from shows its train share: evaluate on its test
    split, as ``rarx eval adaptive`` does)."""
    from rarx.eval.leakage import overlap_report

    path = data / QUESTIONS_FILE
    if not path.is_file():
        return {}
    rows = [r for _, r in read_jsonl(path)]
    return overlap_report([r["question"] for r in rows if r["split"] == "train"])


def dev_gate_metrics(model_dir: Path, questions: Path, device: str = "cpu") -> dict[str, float]:
    """The saved model, loaded as a pipeline loads it, on the dev questions: how often the
    adapt-llm gate retrieves, and the AUC of P(<RET>) for predicting the base model's
    closed-book failure (with the mean P(<RET>) of each class)."""
    from rarx.eval.adaptive import adapt_decisions, p_ret
    from rarx.llm import load_llm
    from rarx.train.common import resolve_device

    rows = [r for _, r in read_jsonl(questions)]
    dev = [r for r in rows if r["split"] == "dev"]
    if not dev:
        return {}
    llm = load_llm(str(model_dir), device=resolve_device(device), batch_size=16)
    texts = [r["question"] for r in dev]
    p = p_ret(llm, texts, 16, quiet=True, desc="P(<RET>)")
    retrieves = adapt_decisions(llm, texts, 16, quiet=True)
    failed = [not r["correct"] for r in dev]

    out = {"dev_questions": float(len(dev)),
           "dev_retrieval_rate": round(sum(retrieves) / len(dev), 4)}  # fmt: skip
    for name, want in (("failed", True), ("correct", False)):  # a class may be empty
        xs = [x for x, f in zip(p, failed, strict=True) if f is want]
        if xs:
            out[f"dev_p_ret_{name}"] = round(sum(xs) / len(xs), 4)
    out.update(auc_by_source(p, failed, [r["source"] for r in dev]))
    return out


def auc_by_source(p: list[float], failed: list[bool], sources: list[str]) -> dict[str, float]:
    """AUC of P(<RET>) for closed-book failure, pooled (``dev_auc_p_ret``) and within each
    source (``dev_auc_p_ret.<source>``). With several sources the pooled figure also rewards
    telling the sets apart (their failure rates differ), which a gate that learned only
    each set's base rate already does; the per-source ones measure the question-level
    signal. A source whose dev questions are all of one class has no AUC."""
    from rarx.eval.adaptive import roc_auc

    out = {}
    groups: dict[str, Sequence[int]] = {"": range(len(p))}
    if len(set(sources)) > 1:
        groups |= {s: [i for i, x in enumerate(sources) if x == s] for s in sorted(set(sources))}
    for name, idx in groups.items():
        auc = roc_auc([p[i] for i in idx], [failed[i] for i in idx])
        if auc is not None:
            out["dev_auc_p_ret" + (f".{name}" if name else "")] = round(auc, 4)
    return out
