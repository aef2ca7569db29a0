"""Core values that flow through rarx. All frozen; ids are always ``str``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import FrozenInstanceError, dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

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

    def __reduce__(self) -> tuple[Any, ...]:  # mappingproxy does not pickle; a dict does
        return (Query, (self.qid, self.text, dict(self.meta)))


@dataclass(frozen=True, slots=True)
class Document:
    docid: str
    text: str
    title: str = ""
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    def __post_init__(self) -> None:
        _check_id("Document.docid", self.docid)
        object.__setattr__(self, "meta", _frozen_mapping(self.meta))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Document, (self.docid, self.text, self.title, dict(self.meta)))

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


class Ranking:
    """Hits of one query, sorted by descending score.

    Stored as arrays (docids, scores, optional documents), so an index can hand over
    thousands of hits without building a Python object per hit; :class:`Hit` objects are
    built only when :attr:`hits` is read. Immutable like the other values here.
    ``Ranking(qid, hits)`` and :meth:`from_arrays` build equal values.
    """

    __slots__ = ("qid", "_docids", "_scores", "_docs", "_hits")

    qid: str
    _docids: np.ndarray  # 1-d, dtype object, str items, read-only
    _scores: np.ndarray  # 1-d, float64, read-only
    _docs: tuple[Document | None, ...] | None  # None: no hit carries a document
    _hits: tuple[Hit, ...] | None  # built on first use

    def __init__(self, qid: str, hits: Iterable[Hit] = ()):
        hits = tuple(hits)
        for h in hits:
            if not isinstance(h, Hit):
                raise TypeError(f"Ranking {qid!r}: hits must be Hit values, got {type(h).__name__}")
        docs = tuple(h.doc for h in hits)
        self._set(
            qid,
            _object_array([h.docid for h in hits]),
            _score_array([h.score for h in hits], qid),
            docs if any(d is not None for d in docs) else None,
            hits,
        )

    @classmethod
    def from_arrays(
        cls,
        qid: str,
        docids: Sequence[str] | np.ndarray,
        scores: Sequence[float] | np.ndarray,
        docs: Sequence[Document | None] | None = None,
    ) -> Ranking:
        """A ranking from parallel arrays (copied): ``docids`` (str), ``scores`` (sorted
        descending) and optionally one document (or None) per hit."""
        ids = _object_array(docids)
        values = _score_array(scores, qid)
        if ids.shape != values.shape:
            raise ValueError(
                f"Ranking {qid!r}: {ids.shape[0]} docids but {values.shape[0]} scores; "
                "pass one score per docid"
            )
        if ids.size and set(map(type, ids.tolist())) != {str}:  # one C-level pass
            for d in ids.tolist():
                _check_id(f"Ranking {qid!r}: docid", d)
        if docs is not None:
            docs = tuple(docs)
            if len(docs) != ids.size:
                raise ValueError(
                    f"Ranking {qid!r}: {len(docs)} documents for {ids.size} hits; pass one "
                    "document (or None) per hit"
                )
            if not any(d is not None for d in docs):
                docs = None
        ranking = cls.__new__(cls)
        ranking._set(qid, ids, values, docs, None)
        return ranking

    @classmethod
    def from_checked_arrays(
        cls,
        qid: str,
        docids: np.ndarray,
        scores: np.ndarray,
        docs: Sequence[Document | None] | None = None,
    ) -> Ranking:
        """:meth:`from_arrays` without copies or order checks, for index code that checked
        a whole batch at once: ``docids`` a 1-d object array of str, ``scores`` a 1-d
        float64 array of the same length in descending order, both read-only (rows of a
        read-only 2-d array are)."""
        _check_id("Ranking.qid", qid)
        if docids.flags.writeable or scores.flags.writeable:
            raise ValueError(
                f"Ranking {qid!r}: from_checked_arrays takes read-only arrays "
                "(set arr.flags.writeable = False first), or use from_arrays, which copies"
            )
        if docs is not None:
            docs = tuple(docs) if any(d is not None for d in docs) else None
        ranking = object.__new__(cls)
        ranking._fill(qid, docids, scores, docs, None)
        return ranking

    def _set(
        self,
        qid: str,
        docids: np.ndarray,
        scores: np.ndarray,
        docs: tuple[Document | None, ...] | None,
        hits: tuple[Hit, ...] | None,
        check_order: bool = True,
    ) -> None:
        _check_id("Ranking.qid", qid)
        if check_order and scores.size > 1 and bool((scores[1:] > scores[:-1]).any()):
            raise ValueError(f"Ranking {qid!r}: hits must be sorted by descending score")
        docids.flags.writeable = False
        scores.flags.writeable = False
        self._fill(qid, docids, scores, docs, hits)

    def _fill(
        self,
        qid: str,
        docids: np.ndarray,
        scores: np.ndarray,
        docs: tuple[Document | None, ...] | None,
        hits: tuple[Hit, ...] | None,
    ) -> None:
        init = object.__setattr__  # past the frozen __setattr__, once, while building
        init(self, "qid", qid)
        init(self, "_docids", docids)
        init(self, "_scores", scores)
        init(self, "_docs", docs)
        init(self, "_hits", hits)

    # -- reading -------------------------------------------------------------------

    @property
    def hits(self) -> tuple[Hit, ...]:
        if self._hits is None:
            docs = self._docs or (None,) * len(self)
            ids, scores = self._docids.tolist(), self._scores.tolist()
            hits = tuple(map(Hit, ids, scores, docs))
            object.__setattr__(self, "_hits", hits)
            return hits
        return self._hits

    @property
    def docids(self) -> list[str]:
        return self._docids.tolist()

    @property
    def docid_array(self) -> np.ndarray:
        """The docids as a read-only object array (no copy)."""
        return self._docids

    @property
    def scores(self) -> np.ndarray:
        """The scores as a read-only float64 array (no copy)."""
        return self._scores

    @property
    def docs(self) -> tuple[Document | None, ...]:
        """One document (or None) per hit."""
        return self._docs or (None,) * len(self)

    def __len__(self) -> int:
        return self._scores.shape[0]

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def top(self, k: int) -> Ranking:
        ranking = Ranking.__new__(Ranking)
        docs = self._docs[:k] if self._docs is not None else None
        hits = self._hits[:k] if self._hits is not None else None
        ranking._set(self.qid, self._docids[:k], self._scores[:k], docs, hits, check_order=False)
        return ranking

    # -- value semantics -----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ranking):
            return NotImplemented
        return (
            self.qid == other.qid
            and np.array_equal(self._scores, other._scores)
            and np.array_equal(self._docids, other._docids)
            and (self._docs == other._docs or self.docs == other.docs)
        )

    def __hash__(self) -> int:
        return hash((self.qid, tuple(self._docids.tolist()), tuple(self._scores.tolist())))

    def __repr__(self) -> str:
        return f"Ranking(qid={self.qid!r}, hits={self.hits!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_ranking, (self.qid, self._docids, self._scores, self._docs))

    def __copy__(self) -> Ranking:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Ranking:
        return self


def _object_array(values: Sequence[str] | np.ndarray) -> np.ndarray:
    """A fresh 1-d object array (never a view of the caller's array, so it stays frozen)."""
    if isinstance(values, np.ndarray):
        out = values.astype(object)  # always a copy
    else:
        out = np.empty(len(values), dtype=object)
        out[:] = values
    if out.ndim != 1:
        raise ValueError(f"docids must be 1-d, got shape {out.shape}")
    return out


def _score_array(values: Sequence[float] | np.ndarray, qid: str) -> np.ndarray:
    try:
        out = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Ranking {qid!r}: scores must be numbers ({exc})") from None
    if out.ndim != 1:
        raise ValueError(f"Ranking {qid!r}: scores must be 1-d, got shape {out.shape}")
    return out


def _restore_ranking(
    qid: str, docids: np.ndarray, scores: np.ndarray, docs: tuple[Document | None, ...] | None
) -> Ranking:
    return Ranking.from_arrays(qid, docids, scores, docs)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One thing a stage did for one query (an LLM call, a gate decision, an error)."""

    stage: str
    event: str
    data: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _frozen_mapping(self.data))

    def __reduce__(self) -> tuple[Any, ...]:
        return (TraceEvent, (self.stage, self.event, dict(self.data)))


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

    def __reduce__(self) -> tuple[Any, ...]:
        return (QueryState, (self.query, self.ranking, dict(self.context), self.trace))

    def with_ranking(self, ranking: Ranking) -> QueryState:
        return replace(self, ranking=ranking)

    def with_context(self, **values: Any) -> QueryState:
        return replace(self, context={**self.context, **values})

    def traced(self, stage: str, event: str, **data: Any) -> QueryState:
        return replace(self, trace=(*self.trace, TraceEvent(stage, event, data)))
