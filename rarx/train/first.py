"""``rarx train first``: teach a causal LM to be a FIRST reranker.

FIRST (Reddy et al., 2024) trains on ranking windows with two losses together: the
language-modelling loss on the teacher's ranking string (``[C] > [A] > [B]``), and a
RankNet loss over the logits of the passage identifiers as the reply's first token,
the one position FIRST reads at inference. RankNet's pairs are weighted by
``1 / (r_i + r_j)`` (teacher ranks from 1), so mistakes near the top cost most. The
paper's code adds the two as ``lm + 10 * ranknet``; those are the defaults here.

Windows are turned into prompts by the very code the FIRST reranker runs: the
listwise template, passages cut by the LLM's ``truncate``, rendered by its chat
template, identifiers as its single tokens. The output directory is a plain
transformers model (LoRA adapters are merged into it) with its tokenizer and a
``rarx_model.json`` card, so it works as ``rerank: {method: first, llm: DIR}``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.rerank.prompts import LISTWISE, ListwiseTemplate
from rarx.train.common import TrainOptions
from rarx.train.ranking_data import RankingWindow

log = logging.getLogger(__name__)

IGNORE = -100  # target of a position that carries no loss
DEFAULTS = {"lm_weight": 1.0, "rank_weight": 10.0, "passage_tokens": 300, "dev": 32,
            "lora_r": 16, "train_layers": 0}  # fmt: skip


# -- the loss -------------------------------------------------------------------------


def weighted_ranknet(scores: Any, ranks: Any) -> Any:
    """FIRST's ranking loss for a batch of windows.

    ``scores``: ``[B, W]`` identifier logits in the order the prompt shows the
    passages; ``ranks``: ``[B, W]`` the teacher's rank of each (1 = best, ``inf`` for
    padding). For every pair where the teacher puts ``i`` above ``j``, the loss is
    ``-log sigmoid(s_i - s_j)`` weighted by ``1 / (r_i + r_j)``; pairs are averaged
    within a window, windows over the batch."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    s = scores.float()
    r_i, r_j = ranks[:, :, None], ranks[:, None, :]
    pairs = (r_i < r_j) & torch.isfinite(r_j)
    weight = 1.0 / (r_i + r_j)
    loss = F.softplus(-(s[:, :, None] - s[:, None, :])) * weight
    per_window = torch.where(pairs, loss, 0.0).sum((1, 2)) / pairs.sum((1, 2)).clamp(min=1)
    return per_window.mean()


def first_loss(
    logits: Any,
    targets: Any,
    rank_at: Any,
    id_tokens: Any,
    ranks: Any,
    lm_weight: float = 1.0,
    rank_weight: float = 10.0,
) -> tuple[Any, Any, Any]:
    """``(total, lm, rank)`` for a batch.

    ``logits``: ``[B, K, V]`` over the last K positions; ``targets``: ``[B, K]`` the
    token each of those positions must predict (``-100`` where none); ``rank_at``:
    ``[B]`` the position (in K) whose next token is the first identifier; ``id_tokens``:
    ``[W]`` the identifiers' token ids; ``ranks``: as for :func:`weighted_ranknet`."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    lm = F.cross_entropy(
        logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="mean"
    )
    at = logits[torch.arange(logits.shape[0], device=logits.device), rank_at]  # [B, V]
    rank = weighted_ranknet(at[:, id_tokens[: ranks.shape[1]]], ranks)
    return lm_weight * lm + rank_weight * rank, lm, rank


# -- windows as token ids -------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]  # prompt then reply
    prompt_len: int
    ranks: list[int]  # teacher rank (1 = best) of each shown passage


class WindowEncoder:
    """Windows → token ids, through the FIRST reranker's own prompt path."""

    def __init__(self, llm: Any, template: ListwiseTemplate = LISTWISE, passage_tokens: int = 300):
        self.llm = llm
        self.template = template
        self.passage_tokens = int(passage_tokens)
        tok = llm.tokenizer
        self.eos = [tok.eos_token_id] if tok.eos_token_id is not None else []

    def id_tokens(self, n: int) -> list[int]:
        ids = self.template.ids(n)
        self.llm.check_single_tokens(ids)
        return [self.llm.token_id(c) for c in ids]

    def prompt(self, w: RankingWindow) -> Any:
        """The ChatPrompt FIRST builds for this window (passages cut as it cuts them)."""
        texts = [self.llm.truncate(p, self.passage_tokens) for p in w.passages]
        return self.template.build(w.query, texts)

    def encode(self, w: RankingWindow) -> Encoded:
        prompt = self.llm.prompt_ids(self.prompt(w))
        ids = self.template.ids(len(w.passages))
        reply: list[int] = []
        for j, part in enumerate(self.template.reply_parts([ids[i] for i in w.order])):
            if j % 2 == 0:  # an identifier: the single token FIRST scores
                reply.append(self.llm.token_id(part))
            else:
                reply += self.llm.tokenizer.encode(part, add_special_tokens=False)
        ranks = [0] * len(w.order)
        for r, pos in enumerate(w.order, 1):
            ranks[pos] = r
        return Encoded(prompt + reply + self.eos, len(prompt), ranks)


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Left-padded inputs (as the reranker pads them) and targets for the last K
    positions only, K = the longest reply + 1, so logits are computed where a loss is."""
    import torch

    size = len(batch)
    width = max(len(e.input_ids) for e in batch)
    keep = max(len(e.input_ids) - e.prompt_len for e in batch) + 1
    n_max = max(len(e.ranks) for e in batch)
    input_ids = torch.full((size, width), pad_id, dtype=torch.long)
    mask = torch.zeros((size, width), dtype=torch.long)
    targets = torch.full((size, keep), IGNORE, dtype=torch.long)
    rank_at = torch.zeros(size, dtype=torch.long)
    ranks = torch.full((size, n_max), float("inf"))
    for b, e in enumerate(batch):
        n, reply = len(e.input_ids), len(e.input_ids) - e.prompt_len
        input_ids[b, width - n :] = torch.tensor(e.input_ids)
        mask[b, width - n :] = 1
        # Kept position j sits at width - keep + j and predicts the token after it.
        targets[b, keep - 1 - reply : keep - 1] = torch.tensor(e.input_ids[e.prompt_len :])
        rank_at[b] = keep - 1 - reply
        ranks[b, : len(e.ranks)] = torch.tensor(e.ranks, dtype=torch.float)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {
        "input_ids": input_ids,
        "attention_mask": mask,
        "position_ids": positions,
        "targets": targets,
        "rank_at": rank_at,
        "ranks": ranks,
    }


# -- the trainer ----------------------------------------------------------------------


def _trainer_class() -> type:
    from transformers import Trainer

    class FirstTrainer(Trainer):
        """transformers' Trainer with FIRST's loss; the lm and rank parts are logged
        beside the total."""

        loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it

        def __init__(
            self,
            *args: Any,
            id_tokens: list[int],
            lm_weight: float,
            rank_weight: float,
            **kwargs: Any,
        ):
            super().__init__(*args, **kwargs)
            self.id_tokens = id_tokens
            self.lm_weight = lm_weight
            self.rank_weight = rank_weight
            self._parts: list[tuple[float, float]] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN201
            import torch

            targets = inputs["targets"]
            out = model(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                position_ids=inputs["position_ids"],
                logits_to_keep=targets.shape[1],
            )
            ids = torch.tensor(self.id_tokens, device=targets.device)
            total, lm, rank = first_loss(
                out.logits,
                targets,
                inputs["rank_at"],
                ids,
                inputs["ranks"],
                self.lm_weight,
                self.rank_weight,
            )
            if model.training:
                self._parts.append((float(lm.detach()), float(rank.detach())))
            return (total, out) if return_outputs else total

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "loss" in logs and self._parts:
                logs["lm_loss"] = round(sum(p[0] for p in self._parts) / len(self._parts), 4)
                logs["rank_loss"] = round(sum(p[1] for p in self._parts) / len(self._parts), 4)
                self._parts = []
            super().log(logs, start_time)

    return FirstTrainer


def dev_metrics(
    model: Any,
    encoded: Sequence[Encoded],
    id_tokens: list[int],
    pad_id: int,
    device: str,
    batch_size: int = 4,
) -> dict[str, float]:
    """On held-out windows, read as FIRST reads them (the prompt alone, the next token's
    logits): how often the model's first passage is the teacher's best (``dev_top1``),
    and the reciprocal rank of the teacher's best (``dev_mrr``)."""
    import torch

    top1 = rr = 0.0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            chunk = [
                Encoded(e.input_ids[: e.prompt_len], e.prompt_len, e.ranks)
                for e in encoded[i : i + batch_size]
            ]
            batch = collate(chunk, pad_id)
            logits = (
                model(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    position_ids=batch["position_ids"].to(device),
                    logits_to_keep=1,
                )
                .logits[:, -1]
                .float()
                .cpu()
            )
            for b, e in enumerate(chunk):
                scores = logits[b, id_tokens[: len(e.ranks)]].tolist()
                order = sorted(range(len(scores)), key=lambda j: -scores[j])
                best = e.ranks.index(1)
                top1 += order[0] == best
                rr += 1.0 / (order.index(best) + 1)
    if was_training:
        model.train()
    n = max(1, len(encoded))
    return {
        "dev_top1": round(top1 / n, 4),
        "dev_mrr": round(rr / n, 4),
        "dev_windows": float(len(encoded)),
    }


# -- the objective ----------------------------------------------------------------------


def windows_file(data: str, quiet: bool = True) -> Path:
    """``--data``: a windows file, or a packaged dataset name whose windows (qrels
    teacher over BM25, :data:`DATA_DEFAULTS`) are built into rarx's cache on first use."""
    from rarx.eval.datasets.prepare import DATASETS

    path = Path(data)
    if path.is_file():
        return path
    if data not in DATASETS:
        raise ConfigError(
            f"--data {data!r} is neither a file nor a packaged dataset ({', '.join(DATASETS)}); "
            f"build windows with `rarx train data ranking --dataset NAME --out FILE`"
        )
    from rarx.models.cache import cache_dir
    from rarx.train.ranking_data import build_ranking_data

    target = cache_dir() / "train-data" / f"ranking-{data}.jsonl"
    if not target.is_file():
        log.info("building ranking windows for %s into %s (once)", data, target)
        build_ranking_data(
            data,
            target,
            work_dir=cache_dir() / "train-data" / "indexes",
            quiet=quiet,
            **DATA_DEFAULTS,
        )
    return target


# What ``--data NAME`` builds: qrels teacher, one window of 20 per query, half of the
# windows shown shuffled (see make_windows).
DATA_DEFAULTS: dict[str, Any] = {"window": 20, "shuffle": 0.5, "seed": 42}


class _Windows:
    def __init__(self, rows: Sequence[Encoded]):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Encoded:
        return self.rows[i]


def train_first(
    opts: TrainOptions,
    *,
    passage_tokens: int = DEFAULTS["passage_tokens"],
    lm_weight: float = DEFAULTS["lm_weight"],
    rank_weight: float = DEFAULTS["rank_weight"],
    dev: int = DEFAULTS["dev"],
    lora_r: int = DEFAULTS["lora_r"],
    train_layers: int = DEFAULTS["train_layers"],
    template: ListwiseTemplate = LISTWISE,
) -> Any:
    """Train ``opts.base`` on ranking windows; write the model, its tokenizer and its
    card to ``opts.out``; return the card. ``dev`` windows (a seeded sample, at most a
    fifth) are held out and scored before and after training. ``train_layers`` > 0
    trains only the top that many decoder layers (with ``opts.lora``: puts adapters
    only there): the layers below run without gradients, so a step costs little more
    than a forward pass, which is what makes CPU training of a 135M model practical."""
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.models.card import DataRef
    from rarx.train.common import seed_everything, write_card
    from rarx.train.ranking_data import data_overlap, read_windows

    check_weights(lm_weight, rank_weight)
    seed_everything(opts.seed)
    data_path = windows_file(opts.data, opts.quiet)
    windows = read_windows(data_path)
    llm = TransformersLLM(opts.base, device="cpu", quiet=opts.quiet)
    encoder = WindowEncoder(llm, template, passage_tokens)
    id_tokens = encoder.id_tokens(max(len(w.passages) for w in windows))
    encoded = [encoder.encode(w) for w in windows]
    fits = [e for e in encoded if len(e.input_ids) <= llm.context_length]
    if len(fits) < len(encoded):
        log.warning(
            "%d of %d windows exceed the context of %d tokens and are left out; "
            "lower --passage-tokens",
            len(encoded) - len(fits),
            len(encoded),
            llm.context_length,
        )
    if not fits:
        raise ConfigError(
            f"no window of {data_path} fits the context of {llm.context_length} "
            "tokens; lower --passage-tokens"
        )
    held = set(random.Random(opts.seed).sample(range(len(fits)), min(dev, len(fits) // 5)))
    train_rows = [e for i, e in enumerate(fits) if i not in held]
    dev_rows = [e for i, e in enumerate(fits) if i in held]
    result, metrics = fit_first(
        opts, llm, train_rows, dev_rows, id_tokens, lm_weight=lm_weight,
        rank_weight=rank_weight, lora_r=lora_r, train_layers=train_layers,
    )  # fmt: skip
    return write_card(
        opts,
        "first",
        [DataRef.of(data_path, len(windows))],
        result,
        metrics,
        overlap=data_overlap(data_path, windows),
        passage_tokens=passage_tokens,
        lm_weight=lm_weight,
        rank_weight=rank_weight,
        dev=len(dev_rows),
        train_windows=len(train_rows),
        lora_r=lora_r if opts.lora else None,
        train_layers=train_layers,
        template="listwise",
        loss_history=result.loss_history,
    )


def check_weights(lm_weight: float, rank_weight: float) -> None:
    if lm_weight < 0 or rank_weight < 0 or lm_weight + rank_weight == 0:
        raise ConfigError(
            f"loss weights must be >= 0 and not both 0, got lm={lm_weight}, rank={rank_weight}"
        )


def fit_first(
    opts: TrainOptions,
    llm: Any,
    train_rows: Sequence[Encoded],
    dev_rows: Sequence[Encoded],
    id_tokens: list[int],
    *,
    lm_weight: float,
    rank_weight: float,
    lora_r: int,
    train_layers: int,
) -> tuple[Any, dict[str, float]]:
    """Train ``llm``'s model with FIRST's loss on encoded rows and save it (adapters
    merged) with its tokenizer into ``opts.out``. Returns the fit result and the dev
    metrics before (``base_*``) and after training. Shared by every objective that
    teaches a first-token choice (:mod:`rarx.train.choice`)."""
    from functools import partial

    from rarx.train.common import fit, training_arguments

    pad_id = llm.tokenizer.pad_token_id
    args = training_arguments(
        opts,
        remove_unused_columns=False,
        label_names=["targets"],
        logging_steps=1 if 0 < opts.max_steps <= 50 else 5,
        bf16=_bf16(opts.device),
    )
    device = args.device
    model = llm.model
    metrics: dict[str, float] = {}
    if dev_rows:
        base = dev_metrics(model.to(device), dev_rows, id_tokens, pad_id, device)
        metrics.update({f"base_{k}": v for k, v in base.items() if k != "dev_windows"})
    model = _trainable(model, opts.lora, lora_r, train_layers)
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=_Windows(train_rows),
        data_collator=partial(collate, pad_id=pad_id),
        id_tokens=id_tokens,
        lm_weight=lm_weight,
        rank_weight=rank_weight,
    )
    result = fit(trainer, opts)
    final = trainer.model.merge_and_unload() if opts.lora else trainer.model
    if dev_rows:
        metrics.update(dev_metrics(final, dev_rows, id_tokens, pad_id, device))
    final.save_pretrained(opts.out)
    llm.tokenizer.save_pretrained(opts.out)
    return result, metrics


def _trainable(model: Any, lora: bool, lora_r: int, train_layers: int) -> Any:
    """The model as it trains: all weights, LoRA adapters (peft) on every linear layer,
    or either restricted to the top ``train_layers`` decoder layers."""
    top = None
    if train_layers:
        layers = getattr(getattr(model, "model", None), "layers", None)
        if layers is None:
            raise ConfigError(
                f"--train-layers needs a decoder whose layers are model.model.layers "
                f"(Llama, Qwen, Mistral, ...); {type(model).__name__} has none: drop the flag"
            )
        if train_layers > len(layers):
            raise ConfigError(f"--train-layers {train_layers}: the model has {len(layers)}")
        top = list(range(len(layers) - train_layers, len(layers)))
    if lora:
        from peft import LoraConfig, get_peft_model

        targets: Any = "all-linear"
        if top is not None:  # peft wants module names when it is given layers
            import torch

            linear = model.model.layers.named_modules()
            targets = sorted(
                {n.rsplit(".", 1)[-1] for n, m in linear if isinstance(m, torch.nn.Linear)}
            )
        config = LoraConfig(
            r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05, target_modules=targets,
            task_type="CAUSAL_LM", layers_to_transform=top,
            layers_pattern="layers" if top else None,
        )  # fmt: skip
        return get_peft_model(model, config)
    if top is not None:
        model.requires_grad_(False)
        for i in top:
            model.model.layers[i].requires_grad_(True)
        if getattr(model.model, "norm", None) is not None:
            model.model.norm.requires_grad_(True)
    return model


def _bf16(device: str) -> bool:
    """Mixed precision on a GPU that has bf16; fp32 on the CPU."""
    if not device.startswith(("cuda", "auto")):
        return False
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
