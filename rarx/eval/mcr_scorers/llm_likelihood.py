"""``llm-likelihood``: the log-probability a causal LM gives each option after the
question, scored on raw text (no chat template):

- context ``Question: {query}\\nAnswer:``, continuation `` {option}``; with instructions
  the context starts with ``{instruction}\\n``;
- ``sum``: the option's total log-probability; ``mean``: per option token (removes the
  bias toward short options); ``pmi``: the sum minus the option's log-probability after
  the neutral context ``Answer:`` (removes the bias toward options that are likely
  anyway).

Needs a local model (transformers, or ctranslate2 through its score_batch); with
transformers, rows are batched with padding and attention
masks (:func:`rarx.llm.likelihood.continuation_logprobs`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rarx.errors import ConfigError
from rarx.eval.datasets.base import McrItem
from rarx.eval.mcr_scorers._llm import llm_dtype, scorer_llm
from rarx.llm.likelihood import continuation_logprobs, raw_model

NORMALIZE = ("sum", "mean", "pmi")


@dataclass(frozen=True)
class LikelihoodPrompt:
    """``str.format`` templates: ``context`` over ``query``, ``continuation`` over
    ``option``, ``instruction`` over ``instruction`` (prepended when instructions are
    used), and the ``neutral`` context of ``pmi``."""

    context: str = "Question: {query}\nAnswer:"
    continuation: str = " {option}"
    instruction: str = "{instruction}\n"
    neutral: str = "Answer:"

    def context_of(self, item: McrItem, with_instructions: bool) -> str:
        head = ""
        if with_instructions and item.instruction:
            head = self.instruction.format(instruction=item.instruction)
        return head + self.context.format(query=item.query)


class LikelihoodScorer:
    name: ClassVar[str] = "llm-likelihood"
    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {"device", "dtype", "batch_size", "normalize", "prompt", "quiet"}
    )

    def __init__(
        self,
        model: Any = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int | None = None,
        normalize: str = "sum",
        prompt: LikelihoodPrompt | None = None,
        quiet: bool = True,
    ):
        if normalize not in NORMALIZE:
            raise ConfigError(
                f"unknown normalization {normalize!r}; expected one of {', '.join(NORMALIZE)}"
            )
        self.normalize = normalize
        self.prompt = prompt or LikelihoodPrompt()
        self.model_name, self.llm = scorer_llm(model, device, batch_size, dtype)
        raw_model(self.llm)  # fail now, not mid-run, for a backend without logits
        self.batch_size = batch_size
        self.quiet = quiet
        # (context, continuation) -> token log-probabilities, shared with the scorers
        # made by with_normalize, so sum, mean and pmi of one model cost one pass.
        self._memo: dict[tuple[str, str], list[float]] = {}

    def with_normalize(self, normalize: str) -> LikelihoodScorer:
        """This scorer with another normalization, sharing its model and computed
        log-probabilities."""
        twin = copy.copy(self)
        if normalize not in NORMALIZE:
            raise ConfigError(
                f"unknown normalization {normalize!r}; expected one of {', '.join(NORMALIZE)}"
            )
        twin.normalize = normalize
        return twin

    def _logprobs(self, pairs: list[tuple[str, str]]) -> list[list[float]]:
        todo = list(dict.fromkeys(p for p in pairs if p not in self._memo))
        if todo:
            got = continuation_logprobs(self.llm, todo, self.batch_size, self.quiet)
            self._memo.update(zip(todo, got, strict=True))
        return [self._memo[p] for p in pairs]

    def scores(self, items: Sequence[McrItem], with_instructions: bool) -> list[np.ndarray]:
        options = [self.prompt.continuation.format(option=o) for it in items for o in it.options]
        contexts = [self.prompt.context_of(it, with_instructions)
                    for it in items for _ in it.options]  # fmt: skip
        lps = self._logprobs(list(zip(contexts, options, strict=True)))
        if self.normalize == "mean":
            flat = [sum(x) / len(x) if x else 0.0 for x in lps]
        else:
            flat = [float(sum(x)) for x in lps]
        if self.normalize == "pmi":
            neutral = self._logprobs([(self.prompt.neutral, o) for o in options])
            flat = [s - float(sum(n)) for s, n in zip(flat, neutral, strict=True)]
        out, at = [], 0
        for it in items:
            out.append(np.asarray(flat[at : at + len(it.options)], dtype=np.float64))
            at += len(it.options)
        return out

    def settings(self) -> dict[str, Any]:
        return {
            "scorer": self.name,
            "model": self.model_name,
            "dtype": llm_dtype(self.llm),
            "normalize": self.normalize,
            "context": self.prompt.context,
            "continuation": self.prompt.continuation,
            "instruction": self.prompt.instruction,
            "neutral_context": self.prompt.neutral if self.normalize == "pmi" else None,
            "chat_template": False,
            "ties": "first option",
        }
