import pytest

from rarx.eval.qa import exact_match, normalize_answer, token_f1


def test_squad_normalisation() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple, a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words


def test_exact_match_takes_any_alias() -> None:
    assert exact_match("the Denver Broncos", ["Broncos", "Denver Broncos"]) == 1.0
    assert exact_match("Broncos of Denver", ["Denver Broncos"]) == 0.0


def test_token_f1_is_the_best_over_aliases() -> None:
    # "denver broncos team" vs "denver broncos": p = 2/3, r = 1 -> f1 = 0.8
    assert token_f1("Denver Broncos team", ["Carolina Panthers", "Denver Broncos"]) == (
        pytest.approx(0.8)
    )
    assert token_f1("nothing shared", ["Denver"]) == 0.0
    assert token_f1("anything", []) == 0.0
