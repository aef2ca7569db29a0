"""``rarx train first``: teach a causal LM to be a FIRST reranker.

FIRST (Reddy et al., 2024) trains on ranking windows with two losses together: the
language-modelling loss on the teacher's ranking string (``[C] > [A] > [B]``), and a
RankNet loss over the passage identifiers' scores as the start of the reply, which is
what FIRST reads at inference. RankNet's pairs are weighted by
``1 / (r_i + r_j)`` (teacher ranks from 1), so mistakes near the top cost most. The
paper's code adds the two as ``lm + 10 * ranknet``; those are the defaults here.

Windows are turned into prompts by the very code the FIRST reranker runs: the
listwise template, passages cut by the LLM's ``truncate``, rendered by its chat
template, the reply read at the tokenizer's real boundary as FIRST reads it
(:mod:`rarx.llm.reply`: Qwen writes ``[A`` as one token, so its prompt ends before
``[``). An identifier's score is the one FIRST ranks by, the log-probability of the
tokens it is read as: ``[A`` after the prompt, and for Qwen's ``O`` and ``Q`` that of
``[`` plus that of the letter after it, read on a reply branch
(:mod:`rarx.train.reply_branch`), so every passage of every window is in the rank loss.
The output directory is a plain transformers model (LoRA adapters are merged
into it) with its tokenizer and a ``rarx_model.json`` card, so it works as
``rerank: {method: first, llm: DIR}``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.llm.base import ChatPrompt, TokenizationError
from rarx.llm.reply import ReplyPlan, plan_reply
from rarx.rerank.prompts import LISTWISE, ListwiseTemplate
from rarx.train.cache_dtype import cache_dtype_setting
from rarx.train.common import TrainOptions, setting
from rarx.train.data.ranking import RankingWindow
from rarx.train.frozen_states import state_cache_setting
from rarx.train.objective import CliSpec, Outcome

log = logging.getLogger(__name__)

IGNORE = -100  # target of a position that carries no loss
RANK_PAIRS = ("order", "graded")
COUNTS = ("dev_windows", "dev_questions")  # dev metrics that are sizes: no base_ copy


@dataclass(frozen=True)
class FirstLossSettings:
    """FIRST's loss weights and what learns (every first-token objective: first, choice)."""

    lm_weight: float = setting(1.0, "Weight of the language-modelling loss on the reply.")
    rank_weight: float = setting(
        10.0, "Weight of the weighted RankNet loss on the first token's logits."
    )
    lora_r: int = setting(16, "LoRA rank (with --lora).", min=1)
    train_layers: int = setting(
        0, "Train only the top N decoder layers (0: all); much cheaper per step on a CPU.",
        min=0,
    )  # fmt: skip
    state_cache: str = state_cache_setting()
    cache_dtype: str = cache_dtype_setting()

    def __post_init__(self) -> None:
        check_weights(self.lm_weight, self.rank_weight)


@dataclass(frozen=True)
class FirstSettings(FirstLossSettings):
    """What ``rarx train first`` adds to the shared options."""

    passage_tokens: int = setting(
        300, "Cut each passage to this many tokens, as the reranker will.", min=1
    )
    dev: int = setting(32, "Windows held out and scored before and after training (0: none).",
                       min=0)  # fmt: skip
    rank_pairs: str = setting(
        "order", "RankNet's pairs: every pair the teacher's order makes (order), or only pairs "
        "of passages the qrels grade differently (graded: the relevant passage against each "
        "other one; the first stage's order among the rest is not taught as a ranking).",
        choices=RANK_PAIRS,
    )  # fmt: skip


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


def read_scores(logits: Any, read_at: Any, read_tokens: Any) -> Any:
    """``[B, W]`` each shown passage's score: the sum of the log-probabilities of the
    tokens its identifier is read as (``read_tokens`` ``[B, W, D]``), each predicted at its
    position (``read_at``, in K; ``-1``: no token there), as FIRST's reader sums them."""
    import torch

    at = read_at.clamp(min=0)
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None, None]
    picked = logits[rows, at, read_tokens].float()  # [B, W, D]
    # The softmax's normaliser at the few distinct read positions only (the prompt's last
    # one, the branch's), not at every kept position and never once per passage.
    flat = (rows * logits.shape[1] + at).flatten()
    where, inverse = torch.unique(flat, return_inverse=True)
    norm = torch.logsumexp(logits.flatten(0, 1)[where].float(), dim=-1)[inverse]
    return torch.where(read_at >= 0, picked - norm.view_as(picked), 0.0).sum(-1)


def first_loss(
    logits: Any,
    targets: Any,
    read_at: Any,
    read_tokens: Any,
    ranks: Any,
    lm_weight: float = 1.0,
    rank_weight: float = 10.0,
) -> tuple[Any, Any, Any]:
    """``(total, lm, rank)`` for a batch.

    ``logits``: ``[B, K, V]`` over the last K positions; ``targets``: ``[B, K]`` the
    token each of those positions must predict (``-100`` where none); ``read_at``,
    ``read_tokens``: ``[B, W, D]`` where each passage's identifier is read, as for
    :func:`read_scores`; ``ranks``: as for :func:`weighted_ranknet`. Where every
    identifier is one token after the prompt, the rank loss is that of their logits there
    (a log-softmax shifts them all alike)."""
    import torch.nn.functional as F  # noqa: N812

    lm = F.cross_entropy(
        logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="mean"
    )
    rank = weighted_ranknet(read_scores(logits, read_at, read_tokens), ranks)
    return lm_weight * lm + rank_weight * rank, lm, rank


# -- windows as token ids -------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]  # prompt, reply, then the branch (if any)
    prompt_len: int
    ranks: list[float]  # teacher rank (1 = best) of each shown passage; inf: not ranked
    # per shown passage, (index in input_ids, token id): the tokens its identifier is read
    # as, each predicted by the logits at that index; log-probabilities summed
    reads: tuple[tuple[tuple[int, int], ...], ...]
    branch: int = 0  # trailing tokens continuing the prompt, not the reply (reply_branch)

    @classmethod
    def first_token(cls, prompt: list[int], reply: list[int], ranks: Sequence[float],
                    tokens: Sequence[int]) -> Encoded:  # fmt: skip
        """A row whose passages are read as one token each (``tokens``) right after the
        prompt."""
        at = len(prompt) - 1
        return cls(prompt + reply, len(prompt), [float(r) for r in ranks],
                   tuple(((at, t),) for t in tokens))  # fmt: skip


class WindowEncoder:
    """Windows → token ids, through the FIRST reranker's own prompt path."""

    def __init__(self, llm: Any, template: ListwiseTemplate = LISTWISE, passage_tokens: int = 300,
                 rank_pairs: str = "order"):  # fmt: skip
        if rank_pairs not in RANK_PAIRS:
            raise ConfigError(f"rank_pairs must be one of {', '.join(RANK_PAIRS)}, got "
                              f"{rank_pairs!r}")  # fmt: skip
        self.llm = llm
        self.template = template
        self.passage_tokens = int(passage_tokens)
        self.rank_pairs = rank_pairs
        tok = llm.tokenizer
        self.eos = [tok.eos_token_id] if tok.eos_token_id is not None else []

    def plan(self, n: int, prompt: Any = None) -> ReplyPlan:
        """How FIRST reads a window of ``n`` identifiers after ``prompt`` (a stand-in
        window's by default): at the tokenizer's real boundary (:mod:`rarx.llm.reply`)."""
        if prompt is None:
            prompt = self.template.build("query", ["passage"] * n)
        return plan_reply(self.llm, prompt, self.template.ids(n), self.template.after_id)

    def branch(self, plan: ReplyPlan) -> tuple[str, ...]:
        """The tokens after the prompt that FIRST reads some identifier after (Qwen's
        ``[`` for ``O`` and ``Q``; none where every identifier is one token), fed as the
        row's reply branch."""
        paths = [p for p in plan.paths if p]
        if len(paths) > 1:
            raise TokenizationError(
                f"{self.llm.name}'s tokenizer reads FIRST's identifiers along {len(paths)} "
                f"token paths ({paths}); training reads one branch after the prompt: use a "
                f"template whose identifiers stand alone"
            )
        return paths[0] if paths else ()

    def prompt(self, w: RankingWindow) -> Any:
        """The ChatPrompt FIRST builds for this window (passages cut as it cuts them)."""
        texts = [self.llm.truncate(p, self.passage_tokens) for p in w.passages]
        return self.template.build(w.query, texts, instruction=w.instruction)

    def encode(self, w: RankingWindow) -> Encoded:
        chat = self.prompt(w)
        ids = self.template.ids(len(w.passages))
        plan = self.plan(len(w.passages), chat)
        # The prompt ends where FIRST reads (before "[" where the tokenizer merges it into
        # the identifiers), and the reply opens with the first identifier as the model
        # writes it there; the rest is taught piece by piece, identifiers as one token.
        prompt = self.llm.prompt_ids(ChatPrompt(chat.messages, plan.given))
        parts = self.template.reply_parts([ids[i] for i in w.order])
        reply = [self.llm.token_id(t) for t in plan.tokens[parts[0]]]
        for j, part in enumerate(parts[1:], 1):
            if j % 2 == 0:
                reply.append(self.llm.token_id(part))
            else:
                reply += self.llm.tokenizer.encode(part, add_special_tokens=False)
        reply += self.eos
        # Each identifier is read as FIRST reads it: its first token after the prompt, each
        # further one after the tokens before it, on the branch (Qwen's "[" then "O").
        branch = self.branch(plan)
        at_branch = len(prompt) + len(reply)  # where the branch's first token sits
        reads = []
        for c in ids:
            toks = plan.tokens[c]
            if toks[:-1] != branch[: len(toks) - 1]:
                raise TokenizationError(f"{c!r} is read as {toks}, off the branch {branch}")
            reads.append(tuple(
                (len(prompt) - 1 if j == 0 else at_branch + j - 1, self.llm.token_id(t))
                for j, t in enumerate(toks)))  # fmt: skip
        ranks = [0.0] * len(w.order)
        for r, pos in enumerate(w.order, 1):
            ranks[pos] = float(r)
        if self.rank_pairs == "graded":
            if not w.grades:
                raise ConfigError(
                    f"window {w.qid!r} has no grades (built with a teacher run?): "
                    "--rank-pairs graded needs windows built with the qrels teacher"
                )
            levels = sorted(set(w.grades), reverse=True)  # equal grades tie: no pair
            ranks = [float(levels.index(g) + 1) for g in w.grades]
        branch_ids = [self.llm.token_id(t) for t in branch]
        return Encoded(prompt + reply + branch_ids, len(prompt), ranks, tuple(reads),
                       len(branch_ids))  # fmt: skip


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Left-padded inputs (as the reranker pads them) and targets for the last K
    positions only, K = the longest reply (and branch) + 1, so logits are computed where
    a loss is. Where a row has a reply branch, ``tree_mask`` ([B, W, W], True: attends)
    says which tokens each one sees (:mod:`rarx.train.reply_branch`)."""
    import torch

    from rarx.train.reply_branch import tree_layout

    size = len(batch)
    width = max(len(e.input_ids) for e in batch)
    keep = max(len(e.input_ids) - e.prompt_len for e in batch) + 1
    n_max = max(len(e.ranks) for e in batch)
    depth = max((len(r) for e in batch for r in e.reads), default=1)
    input_ids = torch.full((size, width), pad_id, dtype=torch.long)
    mask = torch.zeros((size, width), dtype=torch.long)
    targets = torch.full((size, keep), IGNORE, dtype=torch.long)
    read_at = torch.full((size, n_max, depth), -1, dtype=torch.long)
    read_tokens = torch.zeros((size, n_max, depth), dtype=torch.long)
    ranks = torch.full((size, n_max), float("inf"))
    for b, e in enumerate(batch):
        n = len(e.input_ids)
        reply = n - e.prompt_len - e.branch
        input_ids[b, width - n :] = torch.tensor(e.input_ids)
        mask[b, width - n :] = 1
        # Token t of the row sits at kept position t - n + keep; it predicts the next one.
        start = e.prompt_len - 1 - n + keep
        targets[b, start : start + reply] = torch.tensor(e.input_ids[e.prompt_len : n - e.branch])
        for w, reads in enumerate(e.reads):
            for d, (t, token) in enumerate(reads):
                read_at[b, w, d] = t - n + keep
                read_tokens[b, w, d] = token
        ranks[b, : len(e.ranks)] = torch.tensor(e.ranks, dtype=torch.float)
    out = {"input_ids": input_ids, "attention_mask": mask, "targets": targets,
           "read_at": read_at, "read_tokens": read_tokens, "ranks": ranks}  # fmt: skip
    if any(e.branch for e in batch):
        positions, out["tree_mask"] = tree_layout(
            mask, torch.tensor([e.prompt_len for e in batch]),
            torch.tensor([e.branch for e in batch]))  # fmt: skip
    else:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out["position_ids"] = positions
    return out


# -- the trainer ----------------------------------------------------------------------


def _trainer_class() -> type:
    from transformers import Trainer

    class FirstTrainer(Trainer):
        """transformers' Trainer with FIRST's loss; the lm and rank parts are logged
        beside the total."""

        loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it

        def __init__(self, *args: Any, lm_weight: float, rank_weight: float, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.lm_weight = lm_weight
            self.rank_weight = rank_weight
            self._parts: list[tuple[float, float]] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN201
            from rarx.train.reply_branch import attention_mask

            targets = inputs["targets"]
            feed = {k: inputs[k] for k in ("input_ids", "inputs_embeds") if k in inputs}
            mask = inputs["attention_mask"]
            if "tree_mask" in inputs:  # a reply branch: each token sees its own tree
                mask = attention_mask(model, inputs["tree_mask"])
            out = model(
                **feed,  # inputs_embeds: cached frozen states (rarx.train.frozen_states)
                attention_mask=mask,
                position_ids=inputs["position_ids"],
                logits_to_keep=targets.shape[1],
            )
            total, lm, rank = first_loss(
                out.logits,
                targets,
                inputs["read_at"],
                inputs["read_tokens"],
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
    llm: Any, windows: Sequence[RankingWindow], template: ListwiseTemplate, passage_tokens: int
) -> dict[str, float]:
    """Held-out windows ranked by the FIRST reranker itself
    (:class:`rarx.rerank.listwise.FirstReranker`: its prompt, its passage cut, the
    identifiers read at the tokenizer's boundary): how often its first passage is the
    teacher's best (``dev_top1``), and the reciprocal rank of the teacher's best
    (``dev_mrr``)."""
    from rarx.rerank.listwise import FirstReranker
    from rarx.types import Document, Hit, Query, Ranking

    size = max(len(w.passages) for w in windows)
    queries = [Query(f"dev-{i}", w.query) for i, w in enumerate(windows)]
    shown = [Ranking(q.qid, [Hit(str(j), float(-j), Document(str(j), p))
                             for j, p in enumerate(w.passages)])
             for q, w in zip(queries, windows, strict=True)]  # fmt: skip
    ranked_by: dict[int, Any] = {}
    for instruction in dict.fromkeys(w.instruction for w in windows):  # one reranker each
        reranker = FirstReranker(llm, k=size, window=size, stride=size - 1,  # one window each
                                 passage_tokens=passage_tokens, template=template,
                                 instruction=instruction)  # fmt: skip
        mine = [i for i, w in enumerate(windows) if w.instruction == instruction]
        got = reranker.rerank([queries[i] for i in mine], [shown[i] for i in mine])
        ranked_by.update(zip(mine, got, strict=True))
    top1 = rr = 0.0
    for i, w in enumerate(windows):
        order = [h.docid for h in ranked_by[i].hits]
        best = str(w.order[0])  # the teacher's best passage
        top1 += order[0] == best
        rr += 1.0 / (order.index(best) + 1)
    n = max(1, len(windows))
    return {"dev_top1": round(top1 / n, 4), "dev_mrr": round(rr / n, 4),
            "dev_windows": float(len(windows))}  # fmt: skip


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
    from rarx.train.data.ranking import build_ranking_data

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


class First:
    name = "first"
    Settings = FirstSettings
    cli = CliSpec(
        """Train an LLM as a FIRST reranker on ranking windows.

    --data is a windows file from `rarx train data ranking`, or a packaged dataset name
    (its windows are built on first use). The result in --out is a model directory:
    use it as `rerank: {method: first, llm: OUT}` in a pipeline, or
    `rarx search ... --rerank first --rerank-llm OUT`.""",
        base="smollm2-135m", lr=1e-5, batch_size=2, lora=True,
    )  # fmt: skip

    def train(self, opts: TrainOptions, settings: FirstSettings) -> Outcome:
        return _train(opts, settings)


def _train(
    opts: TrainOptions, settings: FirstSettings | None = None,
    template: ListwiseTemplate = LISTWISE,
) -> Outcome:  # fmt: skip
    """Train ``opts.base`` on ranking windows; write the model and its tokenizer to
    ``opts.out``. ``settings.dev`` windows (a seeded sample, at
    most a fifth) are held out and scored before and after training. ``train_layers`` > 0
    trains only the top that many decoder layers (with ``opts.lora``: puts adapters
    only there), on cached states of the layers below (``state_cache``), so an epoch
    costs the top layers only, which is what makes CPU training of an LLM practical."""
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.models.card import DataRef
    from rarx.train.causal import load_causal_lm
    from rarx.train.data.ranking import data_overlap, read_windows

    s = settings or FirstSettings()
    data_path = windows_file(opts.data, opts.quiet)
    windows = read_windows(data_path)
    tokenizer, model = load_causal_lm(opts.base)
    llm = TransformersLLM.wrap(model, tokenizer, opts.base)
    encoder = WindowEncoder(llm, template, s.passage_tokens, s.rank_pairs)
    encoded = [encoder.encode(w) for w in windows]
    fitting = [i for i, e in enumerate(encoded) if len(e.input_ids) <= llm.context_length]
    fits = [encoded[i] for i in fitting]
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
    held = set(random.Random(opts.seed).sample(range(len(fits)), min(s.dev, len(fits) // 5)))
    train_rows = [e for i, e in enumerate(fits) if i not in held]
    dev = [windows[fitting[i]] for i in sorted(held)]

    def evaluate(trained: Any) -> dict[str, float]:
        return dev_metrics(as_llm(trained, tokenizer, opts.base), dev, template, s.passage_tokens)

    dev_key = {"objective": "first", "windows": [repr(w) for w in dev],
               "template": repr(template), "passage_tokens": s.passage_tokens}  # fmt: skip
    result, metrics, cache, before = fit_first(opts, llm, train_rows, evaluate if dev else None,
                                               s, dev_key)  # fmt: skip
    options = dict(
        passage_tokens=s.passage_tokens, lm_weight=s.lm_weight, rank_weight=s.rank_weight,
        dev=len(dev), train_windows=len(train_rows),
        lora_r=s.lora_r if opts.lora else None, train_layers=s.train_layers,
        template="listwise", loss_history=result.loss_history, rank_pairs=s.rank_pairs,
        windows_with_instruction=sum(w.instruction != "" for w in windows),
        **({"state_cache": cache} if cache else {}),
        **({"data_built": built} if (built := data_recipe(data_path)) else {}),
    )  # fmt: skip
    data = [DataRef.of(data_path, len(windows))]
    return Outcome(data, result, metrics, data_overlap(data_path, windows), options,
                   before)  # fmt: skip


def data_recipe(path: Path) -> dict[str, Any] | None:
    """How the windows file was built (its manifest's recipe: kind, sources, first stages,
    teacher, window, shuffle, ...) when the manifest describes this very file; for the card."""
    from rarx.train.data.manifest import describes, read_manifest

    manifest = read_manifest(path)
    if not manifest or not describes(manifest, path):
        return None
    keys = ("name", "dataset", "data", "split", "sources", "teacher", "first_stages",
            "first_stage", "window", "limit", "shuffle", "insert_at", "instruction_share", "seed")
    return {k: manifest[k] for k in keys if k in manifest}


def check_weights(lm_weight: float, rank_weight: float) -> None:
    if lm_weight < 0 or rank_weight < 0 or lm_weight + rank_weight == 0:
        raise ConfigError(
            f"loss weights must be >= 0 and not both 0, got lm={lm_weight}, rank={rank_weight}"
        )


def as_llm(model: Any, tokenizer: Any, name: str) -> Any:
    """A model in training (or just trained) as the LLM its evaluator reads."""
    from rarx.llm.transformers_backend import TransformersLLM

    return TransformersLLM.wrap(model, tokenizer, name, device=str(model.device))


def fit_first(
    opts: TrainOptions,
    llm: Any,
    train_rows: Sequence[Encoded],
    evaluate: Callable[[Any], dict[str, float]] | None,
    settings: FirstLossSettings,
    dev_key: Any = None,
) -> tuple[Any, dict[str, float], dict[str, Any] | None, dict[str, Any] | None]:
    """Train ``llm``'s model with FIRST's loss on encoded rows and save it (adapters
    merged) with its tokenizer into ``opts.out``. Returns the fit result, the dev
    metrics ``evaluate(model)`` gives before (``base_*``) and after training, the
    frozen-state cache's report (None without one) and where the figures before came
    from (:func:`rarx.train.driver.before_training`, keyed by ``dev_key``: what they
    follow from besides the weights; None without dev). Shared by every objective that
    teaches a first-token choice (:mod:`rarx.train.choice`)."""
    from functools import partial

    from rarx.train.causal import LoraSpec, trainable
    from rarx.train.common import training_arguments
    from rarx.train.driver import before_training, train_and_save

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
    before = None
    if evaluate is not None:
        model = model.to(device)
        before = before_training(opts, model, dev_key, lambda: {
            f"base_{k}": v for k, v in evaluate(model).items() if k not in COUNTS})  # fmt: skip
        metrics.update(before.metrics)
    s = settings
    model = trainable(model, train_layers=s.train_layers,
                      lora=LoraSpec(s.lora_r) if opts.lora else None)  # fmt: skip
    trained = train_and_save(
        opts, model, llm.tokenizer, train_rows, partial(collate, pad_id=pad_id),
        lambda dataset, collator: first_trainer(model, args, dataset, collator,
                                                s.lm_weight, s.rank_weight),
        train_layers=s.train_layers, state_cache=s.state_cache, cache_dtype=s.cache_dtype,
    )  # fmt: skip
    if evaluate is not None:
        metrics.update(evaluate(trained.model))
    return trained.result, metrics, trained.state_cache, before.record if before else None


def first_trainer(
    model: Any, args: Any, dataset: Any, collator: Any, lm_weight: float, rank_weight: float,
) -> Any:  # fmt: skip
    """transformers' Trainer with FIRST's loss over ``dataset``."""
    return _trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        lm_weight=lm_weight,
        rank_weight=rank_weight,
    )


def _bf16(device: str) -> bool:
    """Mixed precision on a GPU that has bf16; fp32 on the CPU."""
    if not device.startswith(("cuda", "auto")):
        return False
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
