"""MCR scorers: each gives every option of a question a score; the first maximum wins.

=================  ==========================  ============================================
name               model (default)             an option's score
=================  ==========================  ============================================
``bi-encoder``     sentence-transformers       cosine(query, option), as RAR-b computes it
                   (``minilm``)
``cross-encoder``  a ``CrossEncoder`` path     CrossEncoder(query, option), as RAR-b's
                   (none packaged)             ``AutoCrossEncoder.evaluate_mcr``
``llm-likelihood`` causal LM, transformers     log P(" {option}" | "Question: {q}\\nAnswer:"):
                   (``smollm2-135m``)          ``sum``, ``mean`` per token, or ``pmi``
``llm-choice``     any LLM backend             log-probability of the option's label (A, B,
                   (``smollm2-135m``)          C, ...) as the reply's first token
=================  ==========================  ============================================

From Python::

    scorer = load_scorer("cross-encoder", "path/to/model", device="cuda")
    score = evaluate_mcr(scorer, items, with_instructions=False)  # McrScore
    result = run_scorer(path, items, scorer, instructions=True)  # both settings

``model`` is a name/path, or an already loaded object (an Encoder, a CrossEncoder, an
LLM). A scorer is one small class in its own module, listed in :data:`SCORERS`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from rarx.errors import ConfigError, RarxError
from rarx.eval.datasets.base import McrItem
from rarx.eval.mcr import McrResult, accuracy, first_max
from rarx.eval.report_schema import mc_chance

# name -> (module under rarx.eval.mcr_scorers, class); imported on first use.
SCORERS: dict[str, tuple[str, str]] = {
    "bi-encoder": ("bi_encoder", "BiEncoderScorer"),
    "cross-encoder": ("cross_encoder", "CrossEncoderScorer"),
    "llm-likelihood": ("llm_likelihood", "LikelihoodScorer"),
    "llm-choice": ("llm_choice", "ChoiceScorer"),
}


class McrScorer(Protocol):
    """Scores every option of every question; higher is better."""

    name: ClassVar[str]
    OPTIONS: ClassVar[frozenset[str]]  # keyword options load_scorer accepts

    def __init__(self, model: Any = None, **options: Any) -> None:
        """``model``: a name or path (None: the default) or a loaded model; ``options``:
        among :attr:`OPTIONS`."""
        ...

    def scores(self, items: Sequence[McrItem], with_instructions: bool) -> list[np.ndarray]:
        """One array per question, one score per option, in option order."""
        ...

    def settings(self) -> dict[str, Any]:
        """Model and settings, for results files."""
        ...


def scorer_class(name: str) -> type[McrScorer]:
    if name not in SCORERS:
        raise ConfigError(f"unknown MCR scorer {name!r}; expected one of {', '.join(SCORERS)}")
    module, cls = SCORERS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def load_scorer(name: str, model: Any = None, **options: Any) -> McrScorer:
    """A scorer by name. ``model``: a name or path (None: the scorer's default) or a
    loaded model object. Options left as None are not passed."""
    cls = scorer_class(name)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - cls.OPTIONS)
    if unknown:
        raise ConfigError(
            f"scorer {name!r} takes no option(s) {', '.join(unknown)}; it accepts "
            f"{', '.join(sorted(cls.OPTIONS)) or 'none'}"
        )
    return cls(model, **given)


@dataclass(frozen=True)
class McrScore:
    """One scorer on one set of items, in one instruction setting."""

    accuracy: float
    predictions: list[int]
    scores: list[list[float]]
    seconds: float


def evaluate_mcr(
    scorer: McrScorer, items: Sequence[McrItem], with_instructions: bool = False
) -> McrScore:
    """Accuracy of ``scorer``: a question counts when its label is the first maximum."""
    if not items:
        raise RarxError("no MCR items to score")
    start = time.perf_counter()
    scores = scorer.scores(items, with_instructions)
    seconds = time.perf_counter() - start
    if len(scores) != len(items) or any(
        len(s) != len(it.options) for s, it in zip(scores, items, strict=True)
    ):
        raise RarxError(f"scorer {scorer.name} returned scores that do not match the options")
    preds = [first_max(s) for s in scores]
    return McrScore(accuracy(items, preds), preds, [np.asarray(s).tolist() for s in scores],
                    seconds)  # fmt: skip


def run_scorer(
    path: str | Path,
    items: Sequence[McrItem],
    scorer: McrScorer,
    instructions: bool,
    kind: str | None = None,
) -> McrResult:
    """Accuracy without (and, with ``instructions``, with) instructions for one set."""
    chance = mc_chance([len(it.options) for it in items]) if items else None
    result = McrResult(str(path), len(items), kind=kind, chance=chance)
    without = evaluate_mcr(scorer, items, False)
    result.accuracy_without, result.seconds["without"] = without.accuracy, without.seconds
    if instructions:
        with_ = evaluate_mcr(scorer, items, True)
        result.accuracy_with, result.seconds["with"] = with_.accuracy, with_.seconds
    return result


__all__ = ["SCORERS", "McrScore", "McrScorer", "evaluate_mcr", "load_scorer", "run_scorer",
           "scorer_class"]  # fmt: skip
