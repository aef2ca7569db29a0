"""QA answer scoring: exact match and token F1 with SQuAD's answer normalisation, the
best over all gold aliases (as the official SQuAD v1.1 script scores)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rarx.text import normalize_answer

__all__ = ["contains_answer", "exact_match", "normalize_answer", "token_f1"]


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
