"""Paired significance tests between systems over the same queries, and bootstrap
confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence


def paired_t_test(
    base: Mapping[str, float], other: Mapping[str, float]
) -> tuple[float | None, int]:
    """Two-sided paired t-test (scipy's ``ttest_rel``) over the queries both systems have.

    Returns (p-value, number of queries); the p-value is None with fewer than two queries.
    Where the differences do not vary the t statistic is 0/0 or x/0, and scipy answers NaN
    (all zero) or p = 0 (all equal, nonzero: t = inf, "certain" even on two queries), and
    differences equal but for float rounding give a p of 1e-32 or so. Instead:

    - every difference zero (the systems score each query alike): p = 1, no evidence of a
      difference;
    - every difference the same nonzero value: the exact sign-flip permutation test of the
      same differences (the test the t-test approximates; only the observed signs and their
      mirror are as extreme), p = 2 / 2**n: 0.5 on two queries, 2e-3 on ten.
    """
    from scipy.stats import ttest_rel

    qids = sorted(set(base) & set(other))
    n = len(qids)
    if n < 2:
        return None, n
    a = [base[q] for q in qids]
    b = [other[q] for q in qids]
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    scale = max(1.0, *(abs(d) for d in diffs))
    if max(diffs) - min(diffs) <= _SAME * scale:  # constant but for float rounding
        if max(abs(d) for d in diffs) <= _SAME * scale:
            return 1.0, n
        return min(1.0, 2.0 ** (1 - n)), n
    p = float(ttest_rel(b, a).pvalue)
    return (None if math.isnan(p) else p), n


# differences closer than this (relative to the largest, or to 1) count as equal
_SAME = 1e-12


def rounded_p(p: float | None, digits: int = 3) -> float | None:
    """A p-value for a results file: ``digits`` significant digits, so a small p stays
    small (rounding to decimals writes 3e-6 as 0.0, which reads as certainty)."""
    return None if p is None else float(f"{p:.{digits}g}")


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
