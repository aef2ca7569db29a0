"""``search_pipeline``: the one path from search options to rankings (``rarx search``)."""

from __future__ import annotations

from typing import Any

import pytest

from rarx.errors import ConfigError
from rarx.index.fusion import rrf
from rarx.pipeline.search import SearchOptions, search_pipeline
from rarx.types import Query

QUERIES = [Query("a", "volcano lava"), Query("b", "genetic information helix")]


@pytest.mark.slow
def test_one_index_is_its_own_search(tiny_bm25: Any) -> None:
    pipe = search_pipeline([tiny_bm25], SearchOptions(k=3, docs=False))
    assert [s.name for s in pipe.stages] == ["retrieve"]
    got = [s.ranking for s in pipe.run(QUERIES)]
    direct = tiny_bm25.search(QUERIES, 3)
    assert [r.docids for r in got] == [r.docids for r in direct]
    assert [[h.score for h in r.hits] for r in got] == [[h.score for h in r.hits] for r in direct]
    assert all(h.doc is None for r in got for h in r.hits)
    with_docs = search_pipeline([tiny_bm25], SearchOptions(k=1)).run(QUERIES[:1])
    assert with_docs[0].ranking.hits[0].doc.title == "Volcanoes"


@pytest.mark.slow
def test_several_indexes_fuse_with_rrf(tiny_bm25: Any) -> None:
    options = SearchOptions(k=4, fusion_depth=5, docs=False, instruction="Find the passage: ")
    pipe = search_pipeline([tiny_bm25, tiny_bm25], options)
    assert [s.name for s in pipe.stages] == ["fuse"]
    got = [s.ranking for s in pipe.run(QUERIES)]
    run = tiny_bm25.search(QUERIES, 5)  # BM25 takes no instruction: left out, not an error
    assert [r.docids for r in got] == [r.docids for r in rrf([run, run], k=4)]


@pytest.mark.slow
def test_an_instruction_for_an_index_that_cannot_take_it_fails(tiny_bm25: Any) -> None:
    pipe = search_pipeline([tiny_bm25], SearchOptions(instruction="Represent this: "))
    with pytest.raises(ConfigError, match="instructions"):
        pipe.run(QUERIES)
