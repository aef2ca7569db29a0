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
