"""Request and response bodies. Request models are built per app from its
:class:`~rarx.serve.config.Limits`, so a value past a limit is a 422 that names the
field and the limit (and /docs shows the limits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from rarx.serve.config import NAME, Limits


def _has_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain a non-space character")
    return value


@dataclass(frozen=True)
class RequestModels:
    query: type[BaseModel]
    search: type[BaseModel]
    run: type[BaseModel]


def request_models(limits: Limits) -> RequestModels:
    Text = Annotated[
        str, Field(min_length=1, max_length=limits.max_query_chars), AfterValidator(_has_text)
    ]
    Qid = Annotated[str, Field(min_length=1, max_length=limits.max_qid_chars)]
    Name = Annotated[str, Field(pattern=NAME.pattern, max_length=64)]

    class QueryIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        qid: Qid
        text: Text

    class QueriesIn(BaseModel):
        """One ``query`` (its qid is ``q1``) or a batch of ``queries`` with unique qids."""

        model_config = ConfigDict(extra="forbid")
        query: Text | None = None
        queries: (
            Annotated[list[QueryIn], Field(min_length=1, max_length=limits.max_queries)] | None
        ) = None

        @model_validator(mode="after")
        def check_queries(self) -> Any:
            if (self.query is None) == (self.queries is None):
                raise ValueError("give exactly one of 'query' (a text) or 'queries' (a list)")
            if self.queries is not None:
                qids = [q.qid for q in self.queries]
                if len(set(qids)) != len(qids):
                    raise ValueError("'queries' must have unique qids")
            return self

        def pairs(self) -> list[tuple[str, str]]:
            if self.query is not None:
                return [("q1", self.query)]
            return [(q.qid, q.text) for q in self.queries or ()]

    class SearchRequest(QueriesIn):
        index: Name | None = None
        indexes: (
            Annotated[list[Name], Field(min_length=1, max_length=limits.max_indexes)] | None
        ) = None
        fusion: Literal["rrf"] = "rrf"
        k: Annotated[int, Field(ge=1, le=limits.max_k)] = 10
        rerank: bool = False  # apply the reranker the server was started with

        @model_validator(mode="after")
        def check_indexes(self) -> Any:
            if (self.index is None) == (self.indexes is None):
                raise ValueError("give exactly one of 'index' (a name) or 'indexes' (a list)")
            if self.indexes is not None and len(set(self.indexes)) != len(self.indexes):
                raise ValueError("'indexes' must not repeat a name")
            return self

        def names(self) -> tuple[str, ...]:
            return (self.index,) if self.index is not None else tuple(self.indexes or ())

    class RunRequest(QueriesIn):
        explain: bool = False  # add each query's context, trace and a readable account
        hits: Annotated[int, Field(ge=0, le=limits.max_k)] = 10  # ranked hits per result
        docs: bool = False  # each ranked hit's title and text (where the pipeline keeps them)
        context: bool = False  # each query's context (gate decision, QA memory, ...)

    return RequestModels(QueryIn, SearchRequest, RunRequest)


# -- responses (for /docs; handlers build the same shapes as plain dicts) ------------


class HitOut(BaseModel):
    docid: str
    score: float
    title: str | None = None
    text: str | None = None


class RankingOut(BaseModel):
    qid: str
    hits: list[HitOut]


class SearchResponse(BaseModel):
    rankings: list[RankingOut]


class RankedOut(BaseModel):
    rank: int
    docid: str
    score: float
    title: str | None = None  # with docs
    text: str | None = None  # with docs


class ResultOut(BaseModel):
    """One query through a pipeline, as ``rarx run`` writes it."""

    qid: str
    query: str
    answer: Any = None
    error: str | None = None
    ranking: list[RankedOut] | None = None
    context: dict[str, Any] | None = None  # with explain or context
    trace: list[dict[str, Any]] | None = None  # with explain
    explanation: str | None = None  # with explain


class RunResponse(BaseModel):
    pipeline: str
    results: list[ResultOut]


class IndexOut(BaseModel):
    name: str
    kind: str
    documents: int
    model: str | None = None


class PipelineOut(BaseModel):
    name: str
    stages: list[str]


class IndexesResponse(BaseModel):
    indexes: list[IndexOut]
    pipelines: list[PipelineOut]
    rerank: dict[str, Any] | None = None  # what "rerank": true applies, if configured


def ranking_json(qid: str, ranking: Any) -> dict[str, Any]:
    """A :class:`~rarx.types.Ranking` as the response record (under the request's qid)."""
    docs = ranking.docs
    hits = [
        {"docid": d, "score": s, "title": doc.title if doc else None,
         "text": doc.text if doc else None}
        for d, s, doc in zip(ranking.docids, ranking.scores.tolist(), docs, strict=True)
    ]  # fmt: skip
    return {"qid": qid, "hits": hits}
