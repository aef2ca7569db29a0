"""Turning model output into an order: repairing permutations, sorting by scores."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Repaired:
    """A full permutation of ``range(n)`` made from a possibly malformed one."""

    order: tuple[int, ...]
    missing: tuple[int, ...] = ()  # appended in their prior order
    duplicates: tuple[int, ...] = ()  # later repeats, dropped
    out_of_range: tuple[int, ...] = ()  # dropped

    @property
    def complete(self) -> bool:
        """The model's answer was already a permutation."""
        return not (self.missing or self.duplicates or self.out_of_range)


def repair_permutation(order: Sequence[int], n: int) -> Repaired:
    """Keep the first occurrence of each valid index, then add the missing ones in
    ascending (prior) order, so no candidate is ever lost."""
    seen: set[int] = set()
    kept: list[int] = []
    duplicates: list[int] = []
    out_of_range: list[int] = []
    for i in order:
        if not 0 <= i < n:
            out_of_range.append(i)
        elif i in seen:
            duplicates.append(i)
        else:
            seen.add(i)
            kept.append(i)
    missing = tuple(i for i in range(n) if i not in seen)
    return Repaired(tuple(kept) + missing, missing, tuple(duplicates), tuple(out_of_range))


def order_by_scores(scores: Sequence[float]) -> list[int]:
    """Indices by descending score; ties (and NaN, read as -inf) keep their prior order."""
    keyed = [(-math.inf if math.isnan(s) else s) for s in scores]
    return sorted(range(len(keyed)), key=lambda i: -keyed[i])


def apply_order(items: Sequence[T], order: Sequence[int]) -> list[T]:
    """``items`` rearranged by a full permutation ``order``."""
    if sorted(order) != list(range(len(items))):
        raise ValueError(f"order {list(order)} is not a permutation of range({len(items)})")
    return [items[i] for i in order]


def window_orders(n: int, m: int) -> list[tuple[int, ...]]:
    """``m`` orders of a window of ``n`` passages for permutation self-consistency, as
    tuples naming which passage each position shows; the first is the window as it is.
    Up to ``n``: rotations spaced evenly (with ``n``, every passage sits at every position
    once, so a bias that adds per position cancels exactly); beyond ``n``: the reversed
    order's rotations too. Capped at those ``2n`` (distinct) orders; for ``n <= 3`` they
    are all ``n!`` permutations."""
    if m < 1:
        raise ValueError(f"need at least one order, got {m}")
    if n < 1:
        return []

    def rotated(base: Sequence[int], count: int) -> list[tuple[int, ...]]:
        shifts = sorted({round(j * n / count) % n for j in range(count)})
        return [tuple(base[(i + s) % n] for i in range(n)) for s in shifts]

    forward = list(range(n))
    out = rotated(forward, min(m, n))
    if m > n:
        out += rotated(forward[::-1], min(m - n, n))
    return list(dict.fromkeys(out))


def combine_orders(
    orders: Sequence[Sequence[int]], scores: Sequence[Sequence[float]]
) -> list[float]:
    """Each passage's score over several orders: per order, identifier log-probabilities
    normalised over the window (log-softmax), then averaged per passage.
    ``scores[k][j]`` is the score of position ``j`` in ``orders[k]``; the result is
    indexed by passage. A passage never scored finitely gets ``-inf``."""
    if not orders:
        return []
    n = len(orders[0])
    total = [0.0] * n
    for order, row in zip(orders, scores, strict=True):
        for passage, lp in zip(order, log_softmax(row), strict=True):
            total[passage] += lp
    return [t / len(orders) for t in total]


def log_softmax(scores: Sequence[float]) -> list[float]:
    """``scores`` as log-probabilities over their finite entries (the rest stay ``-inf``):
    identifier log-probabilities of one window made a distribution over that window."""
    finite = [s for s in scores if math.isfinite(s)]
    top = max(finite, default=0.0)
    norm = top + math.log(math.fsum(math.exp(s - top) for s in finite)) if finite else 0.0
    return [s - norm if math.isfinite(s) else -math.inf for s in scores]
