"""rarx.eval.lenient: copies of a judged passage (same text after SQuAD normalisation)
judged as it, and the nDCG they move, on a tiny corpus built here."""

from __future__ import annotations

import pytest

from rarx.errors import InputError
from rarx.eval.lenient import lenient_qrels
from rarx.eval.metrics import evaluate

TEXTS = {
    "d0": "The Sun.",
    "d1": "the sun",
    "d2": "the moon",
    "d3": "Sun!",  # "the" is an article: the same answer
    "d4": "...",  # normalises to nothing
    "d5": "!!!",  # so does this: not a copy of d4
    "d6": "a sunny day",
}


def test_copies_of_the_gold_text_are_judged_at_its_grade_and_others_are_not() -> None:
    got = lenient_qrels({"q0": {"d0": 2}, "q1": {"d2": 1}}, TEXTS)

    assert got.qrels["q0"] == {"d0": 2, "d1": 2, "d3": 2}
    assert got.added["q0"] == {"d1": "d0", "d3": "d0"}
    assert got.qrels["q1"] == {"d2": 1}
    assert (got.queries_widened, got.documents_added) == (1, 2)


def test_text_that_normalises_to_nothing_matches_nothing() -> None:
    got = lenient_qrels({"q0": {"d4": 1}}, TEXTS)

    assert got.qrels == {"q0": {"d4": 1}}
    assert got.documents_added == 0


def test_judged_grades_are_kept_and_non_relevant_judgments_not_widened() -> None:
    # d1 is judged 1 and d0 (its copy) 3: neither grade changes; d3 takes the highest
    got = lenient_qrels({"q0": {"d0": 3, "d1": 1, "d2": 0}}, TEXTS)

    assert got.qrels["q0"] == {"d0": 3, "d1": 1, "d2": 0, "d3": 3}
    assert got.added["q0"] == {"d3": "d0"}


def test_a_run_that_ranks_a_copy_first_scores_under_lenient_qrels_only() -> None:
    qrels = {"q0": {"d0": 1}}
    run = {"q0": {"d1": 3.0, "d2": 2.0, "d6": 1.0}}  # the copy first, the gold absent

    strict = evaluate(run, qrels, ["nDCG@10"]).aggregate["nDCG@10"]
    lenient = evaluate(run, lenient_qrels(qrels, TEXTS).qrels, ["nDCG@10"]).aggregate["nDCG@10"]

    assert strict == 0.0
    # one of three relevant passages, at rank 1: DCG 1 over the ideal 1 + 1/log2(3) + 1/2
    assert lenient == pytest.approx(1 / (1 + 1 / 1.584962500721156 + 0.5))


def test_a_judged_passage_missing_from_the_corpus_is_an_error_naming_it() -> None:
    with pytest.raises(InputError, match=r"query 'q0' judges document 'd9'.*7 passages given"):
        lenient_qrels({"q0": {"d9": 1}}, TEXTS)
