"""Paired significance tests between systems over the same queries."""

from __future__ import annotations

import math
from collections.abc import Mapping


def paired_t_test(
    base: Mapping[str, float], other: Mapping[str, float]
) -> tuple[float | None, int]:
    """Two-sided paired t-test (scipy's ``ttest_rel``) over the queries both systems have.

    Returns (p-value, number of queries); the p-value is None when it is undefined
    (fewer than two queries, or every difference is zero).
    """
    from scipy.stats import ttest_rel

    qids = sorted(set(base) & set(other))
    if len(qids) < 2:
        return None, len(qids)
    a = [base[q] for q in qids]
    b = [other[q] for q in qids]
    if all(x == y for x, y in zip(a, b, strict=True)):
        return None, len(qids)
    p = float(ttest_rel(b, a).pvalue)
    return (None if math.isnan(p) else p), len(qids)
