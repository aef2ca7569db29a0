import pickle
from dataclasses import FrozenInstanceError

import numpy as np
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


def test_both_constructors_build_the_same_ranking():
    doc = Document("b", "text b")
    from_hits = Ranking("q", (Hit("a", 3.0), Hit("b", 2.5, doc), Hit("c", 2.5)))
    from_arrays = Ranking.from_arrays(
        "q", np.array(["a", "b", "c"]), np.array([3.0, 2.5, 2.5], dtype=np.float32),
        [None, doc, None],
    )  # fmt: skip
    assert from_arrays == from_hits and hash(from_arrays) == hash(from_hits)
    assert from_arrays.hits == from_hits.hits == tuple(from_arrays)
    assert from_arrays.hits[1] == Hit("b", 2.5, doc)
    assert from_arrays.docids == ["a", "b", "c"] and isinstance(from_arrays.docids, list)
    assert from_arrays.scores.dtype == np.float64 and list(from_arrays.scores) == [3.0, 2.5, 2.5]
    assert from_arrays.docs == (None, doc, None) and len(from_arrays) == 3
    assert from_arrays.top(2) == from_hits.top(2) == Ranking("q", from_hits.hits[:2])
    assert Ranking.from_arrays("q", [], []) == Ranking("q") and not Ranking("q")


def test_rankings_differ_by_qid_docid_score_or_document():
    base = Ranking.from_arrays("q", ["a", "b"], [2.0, 1.0])
    assert base != Ranking.from_arrays("p", ["a", "b"], [2.0, 1.0])
    assert base != Ranking.from_arrays("q", ["a", "c"], [2.0, 1.0])
    assert base != Ranking.from_arrays("q", ["a", "b"], [2.0, 0.5])
    assert base != Ranking.from_arrays("q", ["a", "b"], [2.0, 1.0], [Document("a", "x"), None])
    assert base == Ranking.from_arrays("q", ["a", "b"], [2.0, 1.0], [None, None])


def test_hits_are_built_only_when_read_and_then_kept():
    r = Ranking.from_arrays("q", ["a", "b"], [2.0, 1.0])
    assert r._hits is None  # no Hit objects until someone asks
    assert r.docids == ["a", "b"] and r._hits is None
    hits = r.hits
    assert hits == (Hit("a", 2.0), Hit("b", 1.0)) and r.hits is hits
    assert type(hits[0].score) is float  # plain Python floats, as before


def test_from_arrays_rejects_what_ranking_rejects():
    with pytest.raises(ValueError, match="descending"):
        Ranking.from_arrays("q", ["a", "b"], [1.0, 2.0])
    with pytest.raises(ValueError, match="2 docids but 3 scores"):
        Ranking.from_arrays("q", ["a", "b"], [3.0, 2.0, 1.0])
    with pytest.raises(TypeError, match="docid must be str, got int"):
        Ranking.from_arrays("q", ["a", 7], [2.0, 1.0])
    with pytest.raises(ValueError, match="1 documents for 2 hits"):
        Ranking.from_arrays("q", ["a", "b"], [2.0, 1.0], [None])
    with pytest.raises(ValueError, match="1-d"):
        Ranking.from_arrays("q", ["a"], [[1.0]])
    with pytest.raises(TypeError, match="qid must be str"):
        Ranking.from_arrays(1, ["a"], [1.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be Hit"):
        Ranking("q", [("a", 1.0)])  # type: ignore[list-item]


def test_array_backed_ranking_is_immutable():
    ids, scores = np.array(["a", "b"], dtype=object), np.array([2.0, 1.0])
    r = Ranking.from_arrays("q", ids, scores)
    ids[0], scores[0] = "z", 9.0  # the caller's arrays were copied
    assert r.docids == ["a", "b"] and r.scores[0] == 2.0
    with pytest.raises(FrozenInstanceError):
        r.qid = "p"  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        r.scores[0] = 5.0
    with pytest.raises(ValueError, match="read-only"):
        r.docid_array[0] = "z"
    assert r.top(1).scores.flags.writeable is False


def test_checked_arrays_are_shared_read_only():
    names = np.array([["a", "b"], ["c", "d"]], dtype=object)
    values = np.array([[2.0, 1.0], [4.0, 3.0]])
    with pytest.raises(ValueError, match="read-only"):
        Ranking.from_checked_arrays("p", names[0], values[0])
    names.flags.writeable = values.flags.writeable = False
    rows = [Ranking.from_checked_arrays(q, names[i], values[i]) for i, q in enumerate("pq")]
    assert rows[1] == Ranking.from_arrays("q", ["c", "d"], [4.0, 3.0])
    assert rows[0].scores.base is values  # a view: no copy per query


def test_ranking_pickles_to_an_equal_frozen_value():
    r = Ranking.from_arrays("q", ["a", "b"], [2.0, 1.0])
    copy = pickle.loads(pickle.dumps(r))
    assert copy == r and copy is not r and copy.hits == (Hit("a", 2.0), Hit("b", 1.0))
    with pytest.raises(ValueError, match="read-only"):
        copy.scores[0] = 5.0


def test_query_state_updates_return_new_values():
    s = QueryState(Query("1", "x"))
    s2 = s.with_context(answer="y").traced("gate", "decision", retrieve=False)
    assert s.context == {} and s.trace == ()
    assert s2.context["answer"] == "y"
    assert s2.trace[0].stage == "gate" and s2.trace[0].data["retrieve"] is False
