"""Paired significance tests between systems over the same queries, and bootstrap
confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence


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


def bootstrap_ci(
    n: int,
    statistic: Callable[[Sequence[int]], float],
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``statistic`` over ``n`` items: each resample
    draws ``n`` item indices with replacement (paired: pass a statistic that reads every
    system at the same indices). Resamples where the statistic is undefined (None or
    NaN, e.g. an AUC with one class) are left out; None when none is defined."""
    import numpy as np

    if n < 1:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        v = statistic(rng.integers(0, n, n).tolist())
        if v is not None and not math.isnan(v):
            values.append(v)
    if not values:
        return None
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def mean_ci(
    values: Sequence[float], resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """Bootstrap interval of the mean of per-query values (or of paired differences):
    :func:`bootstrap_ci`'s resamples (the same draws), each mean taken by numpy."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    if arr.size < 1:
        return None
    rng = np.random.default_rng(seed)
    means = [float(arr[rng.integers(0, arr.size, arr.size)].mean()) for _ in range(resamples)]
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test (scipy's ``ttest_ind``, unequal variances) of two samples of
    different items (a model's accuracy on training against dev questions); None where it
    is undefined (fewer than two values in a sample, or no variance at all)."""
    from scipy.stats import ttest_ind

    if len(a) < 2 or len(b) < 2:
        return None
    p = float(ttest_ind(b, a, equal_var=False).pvalue)
    return None if math.isnan(p) else p


def difference_ci(
    a: Sequence[float], b: Sequence[float], resamples: int = 1000, level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:  # fmt: skip
    """Bootstrap interval of ``mean(b) - mean(a)`` for two samples of different items:
    each resample draws each sample with replacement on its own."""
    import numpy as np

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size < 1 or y.size < 1:
        return None
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        diffs.append(float(y[rng.integers(0, y.size, y.size)].mean()
                           - x[rng.integers(0, x.size, x.size)].mean()))  # fmt: skip
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)
