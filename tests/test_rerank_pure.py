"""Sliding windows, permutation repair and the listwise template: pure and fast."""

from __future__ import annotations

import itertools
import math

import pytest

from rarx.errors import ConfigError
from rarx.rerank import (
    LISTWISE,
    apply_order,
    order_by_scores,
    repair_permutation,
    sliding_windows,
)

# -- sliding windows --------------------------------------------------------------------


def test_windows_rankgpt_defaults() -> None:
    assert sliding_windows(100) == [(s, s + 20) for s in range(80, -1, -10)]
    assert sliding_windows(100, 20, 10, 100)[0] == (80, 100)  # last window first
    assert sliding_windows(500) == sliding_windows(100)  # only the top k
    assert sliding_windows(30) == [(10, 30), (0, 20)]
    assert sliding_windows(25) == [(5, 25), (0, 15)]


def test_windows_k_smaller_than_window() -> None:
    assert sliding_windows(20) == [(0, 20)]
    assert sliding_windows(7) == [(0, 7)]
    assert sliding_windows(50, k=5) == [(0, 5)]
    assert sliding_windows(2) == [(0, 2)]


def test_windows_nothing_to_rank() -> None:
    assert sliding_windows(0) == []
    assert sliding_windows(1) == []
    assert sliding_windows(30, k=1) == []
    assert sliding_windows(30, k=0) == []


@pytest.mark.parametrize(
    ("window", "stride", "k"), [(1, 1, 10), (5, 0, 10), (5, 5, 10), (5, 6, 10), (5, 2, -1)]
)
def test_windows_bad_settings(window: int, stride: int, k: int) -> None:
    with pytest.raises(ConfigError):
        sliding_windows(10, window, stride, k)


def _oracle_pass(values: list[int], windows: list[tuple[int, int]]) -> list[int]:
    """Apply a perfect window ranker (descending value) along the windows."""
    out = list(values)
    for s, e in windows:
        out[s:e] = sorted(out[s:e], reverse=True)
    return out


def test_windows_invariants_exhaustive() -> None:
    for n, window, k in itertools.product(range(0, 45), range(2, 11), (3, 10, 25, 100)):
        for stride in range(1, window):
            ws = sliding_windows(n, window, stride, k)
            m = min(n, k)
            if m < 2:
                assert ws == []
                continue
            assert ws[0][1] == m and ws[-1][0] == 0
            assert set().union(*(range(s, e) for s, e in ws)) == set(range(m))
            for (s, e), (s2, e2) in itertools.pairwise(ws):
                assert s2 < s and e2 < e  # moving up
                assert e2 > s  # overlapping, so a winner is carried up
            for s, e in ws:
                assert 0 <= s < e <= m and 2 <= e - s <= window
            # The best candidate always reaches the top (RankGPT's bubbling).
            values = list(range(m))  # worst first: the best starts at the bottom
            assert _oracle_pass(values, ws)[0] == m - 1


def test_windows_carry_top_stride_overlap() -> None:
    # With window 20 / stride 10, a perfect ranker puts the true top 10 of 100 on top.
    values = list(range(100))
    out = _oracle_pass(values, sliding_windows(100))
    assert out[:10] == list(range(99, 89, -1))


# -- permutations -----------------------------------------------------------------------


def test_repair_examples() -> None:
    assert repair_permutation([2, 0, 1], 3).order == (2, 0, 1)
    assert repair_permutation([2, 0, 1], 3).complete
    r = repair_permutation([3, 3, 9, 1, -1], 5)
    assert r.order == (3, 1, 0, 2, 4)
    assert r.missing == (0, 2, 4) and r.duplicates == (3,) and r.out_of_range == (9, -1)
    assert not r.complete
    assert repair_permutation([], 3).order == (0, 1, 2)
    assert repair_permutation([], 0).order == ()


def test_repair_exhaustive_small() -> None:
    for n in range(0, 5):
        for length in range(0, 5):
            for seq in itertools.product(range(-1, n + 1), repeat=length):
                r = repair_permutation(seq, n)
                assert sorted(r.order) == list(range(n))
                first_seen = list(dict.fromkeys(i for i in seq if 0 <= i < n))
                assert list(r.order[: len(first_seen)]) == first_seen
                assert list(r.order[len(first_seen) :]) == sorted(r.missing)
                assert r.complete == (sorted(seq) == list(range(n)))


def test_order_by_scores_ties_and_nan() -> None:
    assert order_by_scores([0.1, 0.5, 0.3]) == [1, 2, 0]
    assert order_by_scores([1.0, 2.0, 1.0, 2.0]) == [1, 3, 0, 2]  # ties: prior order
    assert order_by_scores([math.nan, -1.0, -math.inf, math.nan]) == [1, 0, 2, 3]
    assert order_by_scores([]) == []


def test_apply_order() -> None:
    assert apply_order("abc", [2, 0, 1]) == ["c", "a", "b"]
    with pytest.raises(ValueError):
        apply_order("abc", [0, 0, 1])


# -- the template -----------------------------------------------------------------------


def test_template_build_and_parse() -> None:
    prompt = LISTWISE.build("why is the sky blue", ["Rayleigh scattering.", "Bananas."])
    assert prompt.prefix == "["
    user = prompt.messages[-1][1]
    assert "[A] Rayleigh scattering." in user and "[B] Bananas." in user
    assert "why is the sky blue" in user and "2 passages" in user
    # The reply continues the "[" prefix.
    assert LISTWISE.parse("B] > [A]", 2) == [1, 0]
    assert LISTWISE.parse("[B] > [A]", 2) == [1, 0]  # a reply that repeats the bracket
    assert LISTWISE.parse("C] > [A] > [Z] > [B", 3) == [2, 0, -1]
    assert LISTWISE.parse("I think passage two", 2) == []
    assert LISTWISE.ids(20) == list("ABCDEFGHIJKLMNOPQRST")
    with pytest.raises(ConfigError, match="identifiers"):
        LISTWISE.ids(27)


def test_template_parse_roundtrip_exhaustive() -> None:
    for n in range(1, 7):
        ids = LISTWISE.ids(n)
        for perm in itertools.permutations(range(n)):
            reply = " > ".join(f"[{ids[i]}]" for i in perm)[1:]  # the "[" is the prefix
            assert LISTWISE.parse(reply, n) == list(perm)


# -- candidate orders (FIRST's permutation self-consistency) ------------------------------


def test_window_orders_put_every_passage_at_every_position() -> None:
    from rarx.rerank.permutation import window_orders

    assert window_orders(4, 1) == [(0, 1, 2, 3)]  # the window as it is comes first
    assert window_orders(4, 2) == [(0, 1, 2, 3), (2, 3, 0, 1)]  # spread, not neighbours
    latin = window_orders(5, 5)
    assert all(sorted(o[j] for o in latin) == list(range(5)) for j in range(5))
    assert sorted(window_orders(3, 6)) == sorted(itertools.permutations(range(3)))
    assert len(window_orders(4, 100)) == 8  # rotations and reversed rotations, no more
    assert window_orders(2, 4) == [(0, 1), (1, 0)]  # distinct only
    with pytest.raises(ValueError):
        window_orders(3, 0)


def test_combining_orders_cancels_a_bias_that_adds_per_position() -> None:
    from rarx.rerank.permutation import combine_orders, window_orders

    merit = [0.3, -1.0, 0.9, 0.0]  # per passage
    bias = [6.0, 4.0, 2.0, 0.0]  # per position, stronger than the merit
    orders = window_orders(4, 4)
    scores = [[merit[p] + bias[j] for j, p in enumerate(o)] for o in orders]
    assert order_by_scores(scores[0]) == [0, 1, 2, 3]  # one order: the bias wins
    combined = combine_orders(orders, scores)
    assert order_by_scores(combined) == [2, 0, 3, 1]  # all rotations: the merit
    gaps = [c - m for c, m in zip(combined, merit, strict=True)]
    assert max(gaps) - min(gaps) < 1e-9  # exactly merit plus one constant
    never = combine_orders([(0, 1)], [[-1.0, -math.inf]])
    assert never[1] == -math.inf and math.isfinite(never[0])


def test_template_carries_a_task_instruction() -> None:
    plain = LISTWISE.build("why is the sky blue", ["a", "b"])
    assert LISTWISE.build("why is the sky blue", ["a", "b"], instruction="") == plain
    told = LISTWISE.build("why is the sky blue", ["a", "b"],
                          instruction=" Retrieve the answer to the question. ")  # fmt: skip
    user = told.messages[-1][1]
    assert user.startswith("Retrieve the answer to the question.\n\n")
    assert user.endswith(plain.messages[-1][1]) and told.prefix == plain.prefix
    assert LISTWISE.after_id == "]"
