"""Reciprocal rank fusion on hand-made rankings (no index needed)."""

import pytest

from rarx.index.fusion import rrf
from rarx.types import Document, Hit, Ranking


def test_rrf_sums_reciprocal_ranks_and_breaks_ties_by_docid():
    bm25 = [Ranking("q", (Hit("c", 9.0), Hit("b", 8.0), Hit("a", 7.0)))]
    dense = [Ranking.from_arrays("q", ["a", "b", "c", "d"], [0.9, 0.8, 0.7, 0.6])]
    (fused,) = rrf([bm25, dense], k=3, rrf_k=1)
    # a and c: 1/2 + 1/4 (a tie, broken by docid); b: 1/3 + 1/3; d: 1/5
    assert fused.docids == ["a", "c", "b"]
    assert fused.scores.tolist() == [3 / 4, 3 / 4, 1 / 3 + 1 / 3]
    (swapped,) = rrf([dense, bm25], k=10, rrf_k=1)
    assert swapped.docids == ["a", "c", "b", "d"] and swapped.scores[3] == 1 / 5


def test_rrf_keeps_a_document_any_run_carried():
    doc = Document("b", "text of b")
    with_doc = [Ranking("q", (Hit("b", 2.0, doc), Hit("a", 1.0)))]
    without = [Ranking("q", (Hit("a", 5.0), Hit("b", 4.0)))]
    (fused,) = rrf([with_doc, without], k=2)
    assert dict(zip(fused.docids, fused.docs, strict=True)) == {"a": None, "b": doc}


def test_rrf_needs_aligned_runs():
    assert rrf([]) == []
    with pytest.raises(ValueError, match="one ranking per query"):
        rrf([[Ranking("q")], []])
    with pytest.raises(ValueError, match="disagree on query order"):
        rrf([[Ranking("q")], [Ranking("p")]])
