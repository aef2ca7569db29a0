"""Core values that flow through rarx. All frozen; ids are always ``str``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None or value is _EMPTY:
        return _EMPTY
    if isinstance(value, MappingProxyType):
        return value
    return MappingProxyType(dict(value))


def _check_id(kind: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{kind} must be str, got {type(value).__name__} {value!r}")


@dataclass(frozen=True, slots=True)
class Query:
    qid: str
    text: str
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    def __post_init__(self) -> None:
        _check_id("Query.qid", self.qid)
        object.__setattr__(self, "meta", _frozen_mapping(self.meta))


@dataclass(frozen=True, slots=True)
class Document:
    docid: str
    text: str
    title: str = ""
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    def __post_init__(self) -> None:
        _check_id("Document.docid", self.docid)
        object.__setattr__(self, "meta", _frozen_mapping(self.meta))

    @property
    def contents(self) -> str:
        """Title and text as one string: what gets indexed and encoded."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True, slots=True)
class Hit:
    docid: str
    score: float
    doc: Document | None = None

    def __post_init__(self) -> None:
        _check_id("Hit.docid", self.docid)


@dataclass(frozen=True, slots=True)
class Ranking:
    """Hits of one query, sorted by descending score."""

    qid: str
    hits: tuple[Hit, ...] = ()

    def __post_init__(self) -> None:
        _check_id("Ranking.qid", self.qid)
        hits = tuple(self.hits)
        if any(a.score < b.score for a, b in zip(hits, hits[1:], strict=False)):
            raise ValueError(f"Ranking {self.qid!r}: hits must be sorted by descending score")
        object.__setattr__(self, "hits", hits)

    def __len__(self) -> int:
        return len(self.hits)

    @property
    def docids(self) -> list[str]:
        return [h.docid for h in self.hits]

    def top(self, k: int) -> Ranking:
        return Ranking(self.qid, self.hits[:k])


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One thing a stage did for one query (an LLM call, a gate decision, an error)."""

    stage: str
    event: str
    data: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _frozen_mapping(self.data))


@dataclass(frozen=True, slots=True)
class QueryState:
    """The value that flows between pipeline stages. Stages return new states."""

    query: Query
    ranking: Ranking | None = None
    context: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    trace: tuple[TraceEvent, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "context", _frozen_mapping(self.context))
        object.__setattr__(self, "trace", tuple(self.trace))

    def with_ranking(self, ranking: Ranking) -> QueryState:
        return replace(self, ranking=ranking)

    def with_context(self, **values: Any) -> QueryState:
        return replace(self, context={**self.context, **values})

    def traced(self, stage: str, event: str, **data: Any) -> QueryState:
        return replace(self, trace=(*self.trace, TraceEvent(stage, event, data)))
