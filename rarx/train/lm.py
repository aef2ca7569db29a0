"""``rarx train lm``: continued pre-training of a causal LM on a corpus (ARR's domain
adaptation of its drafter).

Every document of the corpus (any format :mod:`rarx.io.corpus` reads; title and text)
is tokenised and followed by the end-of-text token, the token stream is packed into
blocks of ``block_size`` tokens (the last, partial block is dropped), and the model is
trained on the causal LM loss with transformers' ``Trainer`` and
``DataCollatorForLanguageModeling(mlm=False)``. A seeded share of the blocks is held
out: the card records the held-out loss before and after training. The output is a
plain transformers model directory (LoRA adapters merged), usable as ``llm:`` or
``draft_llm:`` anywhere.

When the tokenizer pads with its end-of-text token, the collator also masks the
separators between documents from the loss; the model then never learns to predict a
document's end, which continued pre-training does not need.

``--train-layers N`` trains the top N decoder layers only, by default on the frozen
layers' states computed once per block (:mod:`rarx.train.frozen_states`): what makes a
1.5B drafter trainable on a CPU. The held-out loss is then measured with the saved,
whole model, as before training.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import Any

from rarx.errors import ConfigError, InputError
from rarx.io.corpus import Corpus, corpus_checksum, corpus_files
from rarx.models.card import DataRef
from rarx.train.cache_dtype import cache_dtype_setting
from rarx.train.common import TrainOptions, setting, training_arguments
from rarx.train.frozen_states import state_cache_setting
from rarx.train.objective import CliSpec, Outcome

log = logging.getLogger(__name__)

OBJECTIVE = "lm"


@dataclass(frozen=True)
class LmSettings:
    """What ``rarx train lm`` adds to the shared options."""

    block_size: int = setting(256, "Tokens per packed training sequence.", min=2)
    dev_fraction: float = setting(0.05, "Share of blocks held out for the loss on the card.")
    limit: int | None = setting(None, "First N documents only.", min=1)
    train_layers: int = setting(0, "Train only the top N decoder layers (0: all); cheaper "
                                "steps on a CPU.", min=0)  # fmt: skip
    state_cache: str = state_cache_setting()
    cache_dtype: str = cache_dtype_setting()

    def __post_init__(self) -> None:
        if not 0.0 <= self.dev_fraction < 1.0:
            raise ConfigError(f"--dev-fraction must be in [0, 1), got {self.dev_fraction}")


@dataclass(frozen=True)
class Blocks:
    train: list[list[int]]
    dev: list[list[int]]
    documents: int
    tokens: int


def document_text(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text


def pack(token_lists: list[list[int]], eos_id: int | None, block_size: int) -> list[list[int]]:
    """Concatenate the documents' tokens (each followed by ``eos_id``) and cut the stream
    into blocks of exactly ``block_size`` tokens; the remainder is dropped."""
    if block_size < 2:
        raise ConfigError(f"--block-size must be at least 2, got {block_size}")
    stream: list[int] = []
    for ids in token_lists:
        stream.extend(ids)
        if eos_id is not None:
            stream.append(eos_id)
    return [stream[i : i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]


def corpus_blocks(
    corpus: str, tokenizer: Any, block_size: int, dev_fraction: float, seed: int,
    limit: int | None = None,
) -> Blocks:  # fmt: skip
    docs = []
    for i, d in enumerate(Corpus(corpus)):
        if limit is not None and i >= limit:
            break
        docs.append(document_text(d.title, d.text))
    if not docs:
        raise InputError("no documents", corpus)
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    blocks = pack(ids, tokenizer.eos_token_id, block_size)
    tokens = sum(len(x) for x in ids)
    if len(blocks) < 2:
        raise InputError(
            f"{len(docs)} documents make {tokens} tokens, fewer than two blocks of "
            f"{block_size}; give a larger corpus or a smaller --block-size", corpus
        )  # fmt: skip
    order = list(range(len(blocks)))
    random.Random(seed).shuffle(order)
    n_dev = max(1, round(len(blocks) * dev_fraction)) if dev_fraction > 0 else 0
    n_dev = min(n_dev, len(blocks) - 1)
    dev = [blocks[i] for i in sorted(order[:n_dev])]
    train = [blocks[i] for i in sorted(order[n_dev:])]
    return Blocks(train, dev, len(docs), tokens)


class Lm:
    name = OBJECTIVE
    Settings = LmSettings
    cli = CliSpec(
        "Continue pre-training --base on --corpus (causal LM loss over packed sequences); "
        "the result in --out works as llm: or draft_llm: of any stage.",
        lr=5e-5, batch_size=8, lora=True, data_flag="corpus",
        data_help="In-domain text: any corpus rarx indexes (JSONL, BEIR folder, Parquet).",
    )  # fmt: skip

    def train(self, opts: TrainOptions, settings: LmSettings) -> Outcome:
        return _train(opts, settings)


def _train(opts: TrainOptions, settings: LmSettings | None = None) -> Outcome:
    """Continue pre-training ``opts.base`` on the corpus ``opts.data``."""
    from rarx.errors import require

    require("transformers", "train")
    from transformers import DataCollatorForLanguageModeling, Trainer

    from rarx.train.causal import LoraSpec, load_causal_lm, trainable
    from rarx.train.driver import before_training, train_and_save

    s = settings or LmSettings()
    block_size, dev_fraction, limit = s.block_size, s.dev_fraction, s.limit
    if not corpus_files(opts.data):
        raise InputError("no corpus files", opts.data)
    tokenizer, model = load_causal_lm(opts.base)
    if tokenizer.pad_token_id is None:  # the collator pads (and masks) with it
        tokenizer.pad_token = tokenizer.eos_token
    blocks = corpus_blocks(opts.data, tokenizer, block_size, dev_fraction, opts.seed, limit)
    log.info("%d documents, %d tokens: %d training and %d held-out blocks of %d tokens",
             blocks.documents, blocks.tokens, len(blocks.train), len(blocks.dev),
             block_size)  # fmt: skip
    args = training_arguments(opts, per_device_eval_batch_size=opts.batch_size,
                              remove_unused_columns=False)  # fmt: skip
    collate = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    dev = [{"input_ids": b} for b in blocks.dev]
    metrics: dict[str, float] = {}
    before = None
    if dev:  # the base model's held-out loss, once per run: a resumed piece reuses it
        before = before_training(opts, model, {"objective": "lm", "dev": blocks.dev}, lambda: {
            "dev_loss_before": round(float(Trainer(
                model=model, args=args, eval_dataset=dev, data_collator=collate,
            ).evaluate()["eval_loss"]), 4)})  # fmt: skip
        metrics.update(before.metrics)
    model = trainable(model, train_layers=s.train_layers,
                      lora=LoraSpec(16, 32) if opts.lora else None)  # fmt: skip
    trained = train_and_save(
        opts, model, tokenizer, [{"input_ids": b} for b in blocks.train], collate,
        lambda dataset, collator: Trainer(model=model, args=args, train_dataset=dataset,
                                          data_collator=collator),
        train_layers=s.train_layers, state_cache=s.state_cache, cache_dtype=s.cache_dtype,
    )  # fmt: skip
    result = trained.result
    if dev:  # the saved model whole (a state cache's collator feeds the top layers only)
        loss = float(Trainer(model=trained.model, args=args, eval_dataset=dev,
                             data_collator=collate).evaluate()["eval_loss"])  # fmt: skip
        metrics["dev_loss"] = round(loss, 4)
        metrics["dev_perplexity"] = round(math.exp(min(loss, 50.0)), 3)
    if result.loss_history:
        metrics["train_loss_last"] = round(result.loss_history[-1], 4)
    data = [DataRef(opts.data, corpus_checksum(opts.data), blocks.documents)]
    return Outcome(data, result, metrics, {}, dict(
        block_size=block_size, dev_fraction=dev_fraction, limit=limit,
        train_blocks=len(blocks.train), dev_blocks=len(blocks.dev), corpus_tokens=blocks.tokens,
        train_layers=s.train_layers, **trained.card_options(),
    ), before.record if before else None)  # fmt: skip
