"""Sliding windows over a ranked list, RankGPT style: the last window first, each next
window ``stride`` positions higher, so strong passages bubble up to the top."""

from __future__ import annotations

from rarx.errors import ConfigError


def sliding_windows(
    n: int, window: int = 20, stride: int = 10, k: int = 100
) -> list[tuple[int, int]]:
    """``(start, end)`` slices over the first ``min(n, k)`` candidates, in the order they
    are processed. The last one starts at 0; every window holds at least two
    candidates (none is returned for fewer than two); windows are at most ``window``
    long and consecutive ones overlap by ``window - stride``."""
    if window < 2:
        raise ConfigError(f"window must be at least 2, got {window}")
    if not 1 <= stride < window:
        # stride == window would sort disjoint chunks and carry no winner upwards.
        raise ConfigError(
            f"stride must be at least 1 and smaller than the window ({window}) so the best "
            f"passages are carried up, got {stride}"
        )
    if k < 0 or n < 0:
        raise ConfigError(f"n and k must be non-negative, got n={n}, k={k}")
    m = min(n, k)
    if m < 2:
        return []
    end = m
    start = max(0, end - window)
    windows = [(start, end)]
    while start > 0:
        end -= stride
        start = max(0, end - window)
        windows.append((start, end))  # at least 2 long, as stride < window
    return windows
