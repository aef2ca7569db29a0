"""What every reranker returns, and the helpers they share."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from rarx.errors import ConfigError, RarxError
from rarx.types import Document, Hit, Query, Ranking

DocLookup = Callable[[str], Document | None]


class RerankError(RarxError):
    """A window could not be reranked and the reranker runs in strict mode."""


@dataclass(frozen=True, slots=True)
class RerankResult:
    """A reranked ranking and what happened on the way, as trace events
    (``(event, data)``: ``llm_call``, ``window_failed``, ``permutation_repaired``)."""

    ranking: Ranking
    events: tuple[tuple[str, Mapping[str, Any]], ...] = ()


@runtime_checkable
class Reranker(Protocol):
    method: ClassVar[str]
    k: int

    def rerank(self, queries: Sequence[Query], rankings: Sequence[Ranking]) -> list[Ranking]: ...

    def rerank_detailed(
        self, queries: Sequence[Query], rankings: Sequence[Ranking]
    ) -> list[RerankResult]: ...


def check_pairs(queries: Sequence[Query], rankings: Sequence[Ranking]) -> None:
    if len(queries) != len(rankings):
        raise ConfigError(f"got {len(queries)} queries but {len(rankings)} rankings; pass one each")
    for q, r in zip(queries, rankings, strict=True):
        if q.qid != r.qid:
            raise ConfigError(f"query {q.qid!r} is paired with the ranking of {r.qid!r}")


def passage_text(hit: Hit, docs: DocLookup | None) -> str:
    """A hit's title and text on one line; looked up by docid when the hit carries none."""
    doc = hit.doc if hit.doc is not None else (docs(hit.docid) if docs else None)
    if doc is None:
        raise ConfigError(
            f"hit {hit.docid!r} carries no document text; search with with_docs=True "
            f"(LuceneIndex.search(..., with_docs=True)) or pass docs=index.doc"
        )
    return " ".join(doc.contents.split())


def reordered(
    ranking: Ranking, order: Sequence[int], scores: Sequence[float] | None = None
) -> Ranking:
    """``ranking`` with its first ``len(order)`` hits in ``order`` and the rest after them
    in their prior order. Without ``scores`` the new scores are ranks counted down
    (``len(ranking) - position``); with them, the reranked hits take those scores and
    the rest sit below the lowest."""
    hits = ranking.hits
    head = [hits[i] for i in order]
    tail = hits[len(order) :]
    if scores is None:
        n = len(hits)
        new = [Hit(h.docid, float(n - i), h.doc) for i, h in enumerate([*head, *tail])]
    else:
        head_scores = [float(scores[i]) for i in order]
        floor = min(head_scores, default=0.0)
        new = [Hit(h.docid, s, h.doc) for h, s in zip(head, head_scores, strict=True)]
        new += [Hit(h.docid, floor - 1.0 - j, h.doc) for j, h in enumerate(tail)]
    return Ranking(ranking.qid, tuple(new))
