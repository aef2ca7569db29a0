from dataclasses import FrozenInstanceError

import pytest

from rarx.types import Document, Hit, Query, QueryState, Ranking


def test_values_are_frozen_and_ids_are_str():
    q = Query("1", "what is dna")
    with pytest.raises(FrozenInstanceError):
        q.text = "x"  # type: ignore[misc]
    with pytest.raises(TypeError, match="qid must be str"):
        Query(1, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="docid must be str"):
        Hit(3, 1.0)  # type: ignore[arg-type]


def test_meta_is_a_read_only_copy():
    meta = {"answers": ["paris"]}
    q = Query("1", "capital of france", meta)
    meta["answers"] = []
    assert q.meta["answers"] == ["paris"]
    with pytest.raises(TypeError):
        q.meta["x"] = 1  # type: ignore[index]


def test_document_contents_joins_title_and_text():
    assert Document("a", "body", "Title").contents == "Title\nbody"
    assert Document("a", "body").contents == "body"


def test_ranking_must_be_sorted():
    Ranking("q", (Hit("a", 2.0), Hit("b", 2.0), Hit("c", 1.0)))
    with pytest.raises(ValueError, match="descending"):
        Ranking("q", (Hit("a", 1.0), Hit("b", 2.0)))
    assert Ranking("q", (Hit("a", 2.0), Hit("b", 1.0))).top(1).docids == ["a"]


def test_query_state_updates_return_new_values():
    s = QueryState(Query("1", "x"))
    s2 = s.with_context(answer="y").traced("gate", "decision", retrieve=False)
    assert s.context == {} and s.trace == ()
    assert s2.context["answer"] == "y"
    assert s2.trace[0].stage == "gate" and s2.trace[0].data["retrieve"] is False
