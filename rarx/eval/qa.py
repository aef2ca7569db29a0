"""QA answer scoring: exact match and token F1 with SQuAD's answer normalisation, the
best over all gold aliases (as the official SQuAD v1.1 script scores), and the accuracy
Adapt-LLM reports (a gold answer in the reply; on yes/no questions the reply's verdict)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from rarx.text import normalize_answer

__all__ = ["answer_correct", "contains_answer", "exact_match", "is_yes_no", "normalize_answer",
           "token_f1", "yes_no"]  # fmt: skip

YES_NO = ("yes", "no")
_WORDS = re.compile(r"[^\W_]+")  # runs of letters and digits: punctuation splits words


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    norm = normalize_answer(prediction)
    return float(any(norm == normalize_answer(g) for g in golds))


def _f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    return max((_f1(prediction, g) for g in golds), default=0.0)


def contains_answer(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when a normalised gold answer occurs in the normalised prediction as whole
    words (the accuracy of Adapt-LLM and PopQA: the gold answer is in the output)."""
    norm = f" {normalize_answer(prediction)} "
    return float(any(g and f" {g} " in norm for g in map(normalize_answer, golds)))


def yes_no(reply: str) -> str | None:
    """The reply's first word that is "yes" or "no", case and punctuation ignored
    ("No, it is not." → "no", "The answer is yes" → "yes"); None when it has neither
    ("I don't know", "Not sure"): whole words only, never a substring."""
    return next((w for w in _WORDS.findall(reply.casefold()) if w in YES_NO), None)


def is_yes_no(golds: Sequence[str]) -> bool:
    """A yes/no question: every gold answer is "yes" or "no" (BoolQ's)."""
    return bool(golds) and all(normalize_answer(g) in YES_NO for g in golds)


def answer_correct(prediction: str, golds: Sequence[str]) -> float:
    """Whether a reply answers the question: on a yes/no question its first yes/no word
    is a gold one (containment would take "Yes, there is no limit" for "no" too);
    otherwise a gold answer is contained in it (:func:`contains_answer`). The rule of
    ``rarx eval adaptive``'s accuracy and of the gate data's closed-book labels."""
    if is_yes_no(golds):
        return float(yes_no(prediction) in {normalize_answer(g) for g in golds})
    return contains_answer(prediction, golds)
