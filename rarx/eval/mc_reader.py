"""A reader answering multiple-choice questions, read by option label.

The question is shown with its options lettered (``A. ...``) in the ``generate`` stage's
``multiple-choice`` template, demonstrations as earlier chat turns, exactly as a
``demos`` + ``generate`` pipeline shows them. Instead of parsing free text (a 135M model
that writes "C" whatever it is asked scores chance), the answer is the option label with
the highest log-probability as the first token of the reply, among the labels this
question has (as the ``llm-choice`` scorer reads them). ``calibrated`` also removes the
reader's prior over labels: each label's mean log-probability over the evaluated
questions is subtracted before the argmax (no gold labels are read).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from rarx.errors import ConfigError
from rarx.llm.base import ChatPrompt
from rarx.llm.reply import reply_logprobs
from rarx.stages.templates import template

LABELS = "ABCDE"
TEMPLATE = "multiple-choice"


def lettered(question: str, options: Sequence[str]) -> str:
    """``question`` and its options, one per line, labelled A, B, C, ..."""
    if not 2 <= len(options) <= len(LABELS):
        raise ConfigError(f"a question needs 2 to {len(LABELS)} options, got {len(options)}")
    return (
        question.strip()
        + "\n"
        + "\n".join(f"{LABELS[i]}. {o.strip()}" for i, o in enumerate(options))
    )


def reader_prompt(question: str, demos: Sequence[Mapping[str, Any]] = ()) -> ChatPrompt:
    """The prompt the ``generate`` stage builds (``template: multiple-choice``) for a
    lettered question and demonstrations ``{question, answer}`` (answer: a label)."""
    return template(TEMPLATE).render(question, demos=demos)


def label_token(label: str) -> str:
    """A label as the reply's first token: the template's prefix ``Answer:`` is followed
    by a space, so the token is `` C``, not ``C``."""
    return " " + label


def label_logprobs(llm: Any, prompts: Sequence[Any], n_options: Sequence[int]) -> list[list[float]]:
    """Per prompt, the log-probability of each of its option labels as the reply's first
    token after its prefix, read at the tokenizer's real boundary (:mod:`rarx.llm.reply`)."""
    most = max(n_options, default=0)
    cands = [label_token(lab) for lab in LABELS[:most]]
    if not cands:
        return []
    # Similar lengths share a batch (less padding); results go back in prompt order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i].as_text()))
    got = reply_logprobs(llm, [prompts[i] for i in order], cands)
    rows: list[dict[str, float]] = [{} for _ in prompts]
    for i, row in zip(order, got, strict=True):
        rows[i] = row
    return [[row[c] for c in cands[:n]] for row, n in zip(rows, n_options, strict=True)]


def choose(logprobs: Sequence[Sequence[float]], calibrated: bool = False) -> list[int]:
    """The chosen option per question; ``calibrated`` subtracts each label's mean
    log-probability over these questions (among those that have that label)."""
    prior: dict[int, float] = {}
    if calibrated:
        sums: defaultdict[int, float] = defaultdict(float)
        counts: Counter[int] = Counter()
        for row in logprobs:
            for i, v in enumerate(row):
                if math.isfinite(v):
                    sums[i] += v
                    counts[i] += 1
        prior = {i: sums[i] / counts[i] for i in counts}
    return [max(range(len(row)), key=lambda i: row[i] - prior.get(i, 0.0)) for row in logprobs]


def letter_counts(choices: Sequence[int]) -> dict[str, int]:
    """How often each label was chosen, most frequent first."""
    return dict(Counter(LABELS[c] for c in choices).most_common())
