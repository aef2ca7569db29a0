"""``llm-choice``: FIRST's single-token idea applied to MCR. The options, labelled A, B,
C, ..., go into one prompt (a user message, chat template applied when the model has
one); each option's score is the log-probability of its label as the first token of the
reply, read at the tokenizer's real boundary (:mod:`rarx.llm.reply`: a label the
tokenizer merges with what opens the reply is read as the merged token). One forward
pass per question where labels stand alone as tokens; any LLM backend that renders,
tokenises and gives next-token log-probabilities works. At most 26 options per
question."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rarx.errors import ConfigError
from rarx.eval.datasets.base import McrItem
from rarx.eval.mcr_scorers._llm import llm_dtype, scorer_llm
from rarx.llm.base import ChatPrompt
from rarx.llm.reply import ReplyReader
from rarx.progress import progress

LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CHUNK = 256  # prompts per LLM call (the backend batches inside it), one progress step


@dataclass(frozen=True)
class ChoicePrompt:
    """``str.format`` templates; ``instruction`` opens the message when instructions are
    used, ``option`` is repeated per option, ``prefix`` opens the reply."""

    instruction: str = "{instruction}\n"
    question: str = "Question: {query}\n"
    option: str = "{label}. {text}\n"
    footer: str = "Answer with the letter of the correct option."
    prefix: str = ""
    system: str = ""
    labels: str = LABELS

    def build(self, item: McrItem, with_instructions: bool) -> ChatPrompt:
        head = ""
        if with_instructions and item.instruction:
            head = self.instruction.format(instruction=item.instruction)
        body = "".join(self.option.format(label=lab, text=text)
                       for lab, text in zip(self.labels, item.options, strict=False))  # fmt: skip
        user = head + self.question.format(query=item.query) + body + self.footer
        return ChatPrompt.user(user, system=self.system or None, prefix=self.prefix)


class ChoiceScorer:
    name: ClassVar[str] = "llm-choice"
    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {"device", "dtype", "batch_size", "prompt", "quiet"}
    )

    def __init__(
        self,
        model: Any = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int | None = None,
        prompt: ChoicePrompt | None = None,
        quiet: bool = True,
    ):
        self.prompt = prompt or ChoicePrompt()
        self.quiet = quiet
        self.model_name, self.llm = scorer_llm(model, device, batch_size, dtype)

    def scores(self, items: Sequence[McrItem], with_instructions: bool) -> list[np.ndarray]:
        most = max(len(it.options) for it in items)
        if most > len(self.prompt.labels):
            over = sum(len(it.options) > len(self.prompt.labels) for it in items)
            raise ConfigError(
                f"llm-choice labels options {self.prompt.labels[0]}..{self.prompt.labels[-1]} "
                f"({len(self.prompt.labels)} at most); {over} question(s) here have more "
                f"(up to {most}): score them with llm-likelihood"
            )
        labels = list(self.prompt.labels[:most])
        reader = ReplyReader(self.llm, labels)
        prompts = [self.prompt.build(it, with_instructions) for it in items]
        reader.plan(prompts[0])  # fails before any forward pass where no boundary works
        # Similar lengths share a batch (less padding); results go back in item order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i].messages[-1][1]))
        by_item: list[dict[str, float]] = [{} for _ in items]
        starts = range(0, len(order), CHUNK)
        for at in progress(starts, "questions", unit="chunk", quiet=self.quiet or len(starts) < 2):
            chunk = order[at : at + CHUNK]
            rows = reader.score([prompts[i] for i in chunk])
            for i, row in zip(chunk, rows, strict=True):
                by_item[i] = dict(row.scores)
        return [np.asarray([by_item[i].get(lab, -math.inf) for lab in labels[: len(it.options)]],
                           dtype=np.float64) for i, it in enumerate(items)]  # fmt: skip

    def settings(self) -> dict[str, Any]:
        p = self.prompt
        return {
            "scorer": self.name,
            "model": self.model_name,
            "dtype": llm_dtype(self.llm),
            "prompt": {
                "instruction": p.instruction,
                "question": p.question,
                "option": p.option,
                "footer": p.footer,
                "prefix": p.prefix,
                "system": p.system,
            },
            "labels": p.labels,
            "ties": "first option",
        }
