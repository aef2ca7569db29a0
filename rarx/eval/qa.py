"""QA answer scoring: exact match and token F1 with SQuAD's answer normalisation, the
best over all gold aliases (as the official SQuAD v1.1 script scores)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rarx.text import normalize_answer

__all__ = ["exact_match", "normalize_answer", "token_f1"]


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
