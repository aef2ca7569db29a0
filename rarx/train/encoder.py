"""``rarx train encoder``: a bi-encoder trained with MultipleNegativesRankingLoss, the
question's wrong options as hard negatives.

Built on sentence-transformers' ``SentenceTransformerTrainer``. Each training row is
(query, correct option, ``negatives`` wrong options); a question with fewer wrong
options repeats them. Batches never hold the same text twice
(``BatchSamplers.NO_DUPLICATES``), so an in-batch negative is never another copy of the
positive. BoolQ is left out by default: its options are "yes"/"no" for every question,
which in-batch negatives cannot use (pass ``--sources`` to choose).

The output directory is a SentenceTransformer directory with a ``rarx_model.json`` card
whose metrics are MCR accuracy on the data's dev split, scored as RAR-b scores it
(cosine, first maximum wins).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from rarx.errors import ConfigError
from rarx.eval.datasets.base import McrItem
from rarx.train.common import TrainOptions, resolve_device, setting
from rarx.train.data.mc import card_data, default_sources, mc_splits, scorer_accuracy
from rarx.train.objective import CliSpec, Outcome

log = logging.getLogger(__name__)

OBJECTIVE = "encoder"


@dataclass(frozen=True)
class EncoderSettings:
    """What ``rarx train encoder`` adds to the shared options."""

    negatives: int = setting(3, "Wrong options per row as hard negatives (repeated when "
                             "fewer).", min=1)  # fmt: skip
    max_length: int = setting(256, "Tokens per text.", min=8)
    sources: tuple[str, ...] | None = setting(
        None, "Comma-separated data sources to keep (default: all but boolq, whose yes/no "
        "options in-batch negatives cannot use)."
    )  # fmt: skip
    logging_steps: int = setting(10, "", cli=False)
    dev_limit: int | None = setting(None, "Score at most this many dev questions (spread "
                                    "over the split).", min=1)  # fmt: skip

    def __post_init__(self) -> None:
        if self.negatives < 1:
            raise ConfigError(f"--negatives must be at least 1, got {self.negatives}")


def rows(items: Sequence[McrItem], negatives: int) -> dict[str, list[str]]:
    """Columns anchor, positive, negative_1..negative_n (MNRL's order)."""
    cols: dict[str, list[str]] = {"anchor": [], "positive": []}
    cols |= {f"negative_{i + 1}": [] for i in range(negatives)}
    for it in items:
        wrong = it.negatives
        cols["anchor"].append(it.query)
        cols["positive"].append(it.positive)
        for i in range(negatives):
            cols[f"negative_{i + 1}"].append(wrong[i % len(wrong)])
    return cols


class Encoder:
    name = OBJECTIVE
    Settings = EncoderSettings
    cli = CliSpec(
        "Fine-tune a bi-encoder on multiple-choice data: the correct option is the "
        "positive, the wrong options hard negatives, other questions' options in-batch "
        "negatives. The output directory is a model name.",
        base="minilm", lr=2e-5, batch_size=16,
    )  # fmt: skip

    def train(self, opts: TrainOptions, settings: EncoderSettings) -> Outcome:
        return _train(opts, settings)


def _train(opts: TrainOptions, settings: EncoderSettings) -> Outcome:
    """Train, save the model into ``opts.out``, score the dev split."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from rarx.models.registry import hub_error, resolve_model
    from rarx.train.common import training_arguments
    from rarx.train.driver import fit_and_save

    data = mc_splits(opts.data, settings.sources, settings.dev_limit, default_sources())
    path, items, train, dev = data.path, data.items, data.train, data.dev
    device = resolve_device(opts.device)
    try:
        model = SentenceTransformer(resolve_model(opts.base).source, device=device)
    except OSError as exc:
        raise hub_error(opts.base, exc) from exc
    model.max_seq_length = settings.max_length
    args = training_arguments(opts, cls=SentenceTransformerTrainingArguments,
                              batch_sampler=BatchSamplers.NO_DUPLICATES,
                              logging_steps=settings.logging_steps)  # fmt: skip
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(rows(train, settings.negatives)),
        loss=MultipleNegativesRankingLoss(model),
    )
    result = fit_and_save(trainer, opts)
    from rarx.eval.mcr_scorers.bi_encoder import BiEncoderScorer

    scored = scorer_accuracy(BiEncoderScorer(model), dev)
    metrics = {f"dev_{k}": v for k, v in scored.items()}
    if result.loss_history:
        metrics["final_loss"] = result.loss_history[-1]
    refs, overlap = card_data(path, items)
    return Outcome(refs, result, metrics, overlap, dict(
        loss="mnrl", negatives=settings.negatives, max_length=settings.max_length,
        sources=sorted({it.source for it in items}),
        train_questions=len(train), dev_questions=len(dev),
    ))  # fmt: skip
