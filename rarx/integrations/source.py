"""What the framework retrievers retrieve from, with no framework imported: a local
search (indexes, fusion, rerank; the path of ``rarx search``), a local pipeline, or a
``rarx serve`` server through :class:`~rarx.client.Client`. Each turns query texts into
:class:`Retrieved` hits whose ``metadata`` the LangChain and LlamaIndex adapters attach
as they are."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rarx.client import AsyncClient, Client, PipelineResult
from rarx.errors import ConfigError
from rarx.pipeline.output import jsonable
from rarx.pipeline.resources import Resources
from rarx.stages.common import ANSWER, FINAL, GATE, MEMORY
from rarx.stages.rerank import RerankParams
from rarx.types import Query, QueryState, Ranking


@dataclass(frozen=True)
class Retrieved:
    """One hit as the frameworks see it: the document's ``text`` and ``metadata``
    (docid, score, rank, title, index, and for a pipeline its gate decision and QA
    memory answer). A pipeline that answered without retrieving gives one item with
    the answer as ``text`` and ``metadata["kind"] == "answer"``."""

    id: str
    text: str
    score: float | None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Source(Protocol):
    def retrieve(self, texts: Sequence[str]) -> list[list[Retrieved]]: ...

    async def aretrieve(self, texts: Sequence[str]) -> list[list[Retrieved]]: ...


def _queries(texts: Sequence[str]) -> list[Query]:
    if isinstance(texts, str):
        raise ConfigError("retrieve takes a list of query texts, got one string")
    return [Query(f"q{i}", t) for i, t in enumerate(texts, 1)]


def _hits(ranking: Ranking | None, k: int, index: str, extra: Mapping[str, Any]) -> list[Retrieved]:
    if ranking is None:
        return []
    out = []
    for rank, hit in enumerate(ranking.hits[:k], 1):
        doc = hit.doc
        meta = {"docid": hit.docid, "score": hit.score, "rank": rank,
                "title": doc.title if doc else "", "index": index, **extra}  # fmt: skip
        out.append(Retrieved(hit.docid, doc.text if doc else "", hit.score, meta))
    return out


def pipeline_fields(context: Mapping[str, Any]) -> dict[str, Any]:
    """What a pipeline decided for a query, from its context: the gate's decision, the
    QA memory's answer (when its nearest stored question passed the threshold) and
    score, and the pipeline's answer."""
    fields: dict[str, Any] = {}
    if context.get(GATE) is not None:
        fields["gate"] = jsonable(context[GATE])
        fields["retrieve"] = bool(context[GATE].get("retrieve", True))
    memory = context.get(MEMORY)
    if memory is not None:
        pairs = list(memory)
        fields["memory_score"] = pairs[0]["score"] if pairs else None
        fields["memory_answer"] = context.get(ANSWER) if context.get(FINAL) else None
    if context.get(ANSWER) is not None:
        fields["answer"] = context[ANSWER]
    return fields


def _pipeline_hits(ranking: Ranking | None, k: int, index: str, answer: Any,
                   fields: Mapping[str, Any]) -> list[Retrieved]:  # fmt: skip
    hits = _hits(ranking, k, index, fields)
    if not hits and answer is not None:  # answered by the gate or the memory: no ranking
        hits = [Retrieved("answer", str(answer), None, {"kind": "answer", "index": index,
                                                        **fields})]  # fmt: skip
    return hits


class _InThread:
    """``aretrieve`` as ``retrieve`` on a worker thread (the event loop stays free)."""

    def retrieve(self, texts: Sequence[str]) -> list[list[Retrieved]]:
        raise NotImplementedError

    async def aretrieve(self, texts: Sequence[str]) -> list[list[Retrieved]]:
        return await asyncio.to_thread(self.retrieve, texts)


class _Lazy:
    """A value built on first use, once, even when several threads ask at the same time."""

    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._value: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._make()
        return self._value


class LocalSearch(_InThread):
    """Indexes opened in this process (fused when several, reranked if asked), searched
    through ``search_pipeline``: the rankings of ``rarx search``."""

    def __init__(self, indexes: Sequence[str | Path | Any], k: int = 10,
                 rerank: RerankParams | Mapping[str, Any] | None = None,
                 fusion_depth: int = 1000, instruction: str = "",
                 resources: Resources | None = None) -> None:  # fmt: skip
        from rarx.pipeline.search import SearchOptions, search_pipeline

        if not indexes or isinstance(indexes, str | Path):
            raise ConfigError(
                f"indexes: give a list of index directories, e.g. ['indexes/sciq-bm25']; got "
                f"{indexes!r}"
            )
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if isinstance(rerank, Mapping):
            rerank = RerankParams(**rerank)
        self.k = k
        resources = resources if resources is not None else Resources()
        opened = [resources.index(i) if isinstance(i, str | Path) else i for i in indexes]
        self.name = "+".join(Path(str(getattr(i, "path", "index"))).name for i in opened)
        options = SearchOptions(k=k, instruction=instruction, fusion_depth=fusion_depth,
                                docs=True, rerank=rerank)  # fmt: skip
        self._pipeline = _Lazy(lambda: search_pipeline(opened, options, resources))

    def retrieve(self, texts: Sequence[str]) -> list[list[Retrieved]]:
        queries = _queries(texts)
        if not queries:
            return []
        states = self._pipeline.get().run(queries)
        return [_hits(s.ranking, self.k, self.name, {}) for s in states]


class LocalPipeline(_InThread):
    """A pipeline (a YAML file or a :class:`~rarx.pipeline.Pipeline`) run in this process."""

    def __init__(self, pipeline: str | Path | Any, k: int = 10,
                 resources: Resources | None = None) -> None:  # fmt: skip
        from rarx.pipeline.pipeline import Pipeline

        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        self.k = k
        if isinstance(pipeline, str | Path):
            path = Path(pipeline)
            self.name = path.stem
            self._pipeline = _Lazy(lambda: Pipeline.from_yaml(path, resources))
        else:
            self.name = getattr(getattr(pipeline, "spec", None), "name", None) or "pipeline"
            self._pipeline = _Lazy(lambda: pipeline)

    def retrieve(self, texts: Sequence[str]) -> list[list[Retrieved]]:
        queries = _queries(texts)
        if not queries:
            return []
        states: list[QueryState] = self._pipeline.get().run(queries)
        out = []
        for s in states:
            fields = pipeline_fields(s.context)
            out.append(_pipeline_hits(s.ranking, self.k, self.name, s.context.get(ANSWER), fields))
        return out


class RemoteSearch:
    """Indexes served by ``rarx serve``, named as the server names them."""

    def __init__(self, client: Client | AsyncClient, indexes: Sequence[Any], k: int = 10,
                 rerank: bool = False, fusion: str = "rrf") -> None:  # fmt: skip
        if not indexes or isinstance(indexes, str) or not all(isinstance(i, str) for i in indexes):
            raise ConfigError("indexes: with a client, give the served names, e.g. ['sciq']")
        if not isinstance(rerank, bool):
            raise ConfigError(
                "rerank: with a client, True applies the reranker the server was started with "
                f"(rarx serve --rerank ...); got {rerank!r}"
            )
        self.client, self.indexes, self.k, self.rerank, self.fusion = (
            client, list(indexes), k, rerank, fusion)  # fmt: skip
        self.name = "+".join(self.indexes)

    def _convert(self, rankings: list[Ranking]) -> list[list[Retrieved]]:
        return [_hits(r, self.k, self.name, {}) for r in rankings]

    def retrieve(self, texts: Sequence[str]) -> list[list[Retrieved]]:
        client = _sync(self.client)
        queries = _queries(texts)
        found = client.search_batch(queries, index=self.indexes, k=self.k, rerank=self.rerank,
                                    fusion=self.fusion) if queries else []  # fmt: skip
        return self._convert(found)

    async def aretrieve(self, texts: Sequence[str]) -> list[list[Retrieved]]:
        queries = _queries(texts)
        if not queries:
            return []
        if isinstance(self.client, AsyncClient):
            found = await self.client.search_batch(
                queries, index=self.indexes, k=self.k, rerank=self.rerank, fusion=self.fusion
            )
            return self._convert(found)
        return await asyncio.to_thread(self.retrieve, texts)


class RemotePipeline:
    """A pipeline served by ``rarx serve``, by its served name."""

    def __init__(self, client: Client | AsyncClient, pipeline: str, k: int = 10) -> None:
        self.client, self.pipeline, self.k = client, pipeline, k
        self.name = pipeline

    def _convert(self, results: list[PipelineResult]) -> list[list[Retrieved]]:
        return [
            _pipeline_hits(r.ranking, self.k, self.name, r.answer, pipeline_fields(r.context or {}))
            for r in results
        ]

    def retrieve(self, texts: Sequence[str]) -> list[list[Retrieved]]:
        queries = _queries(texts)
        found = _sync(self.client).run_batch(self.pipeline, queries, hits=self.k) if queries else []
        return self._convert(found)

    async def aretrieve(self, texts: Sequence[str]) -> list[list[Retrieved]]:
        queries = _queries(texts)
        if not queries:
            return []
        if isinstance(self.client, AsyncClient):
            return self._convert(await self.client.run_batch(self.pipeline, queries, hits=self.k))
        return await asyncio.to_thread(self.retrieve, texts)


def _sync(client: Client | AsyncClient) -> Client:
    if isinstance(client, AsyncClient):
        raise ConfigError(
            "this retriever was given an AsyncClient, which serves the async calls (ainvoke, "
            "aretrieve) only; give it a rarx.client.Client for both"
        )
    return client


def make_source(
    *, indexes: Sequence[str | Path | Any] | None = None, pipeline: str | Path | Any = None,
    client: Client | AsyncClient | None = None, k: int = 10, rerank: Any = None,
    fusion_depth: int = 1000, instruction: str = "", resources: Resources | None = None,
) -> Source:  # fmt: skip
    """The source the arguments describe: exactly one of ``indexes`` or ``pipeline``;
    with ``client``, they name what the server serves, else local paths (or objects)."""
    if (indexes is None) == (pipeline is None):
        raise ConfigError(
            "give exactly one of indexes=[...] (a search) or pipeline=... (a pipeline file, "
            "or with a client the served pipeline's name)"
        )
    if client is not None:
        if not isinstance(client, Client | AsyncClient):
            raise ConfigError(f"client: expected a rarx.client.Client, got {type(client).__name__}")
        if instruction or resources is not None:
            raise ConfigError("instruction and resources apply to local searches, not a client")
        if pipeline is not None:
            if not isinstance(pipeline, str):
                raise ConfigError("pipeline: with a client, give the served pipeline's name")
            return RemotePipeline(client, pipeline, k)
        return RemoteSearch(client, indexes or [], k, rerank if rerank is not None else False)
    if pipeline is not None:
        if rerank is not None:
            raise ConfigError("rerank applies to a search; a pipeline reranks in its own stages")
        return LocalPipeline(pipeline, k, resources)
    return LocalSearch(indexes or [], k, rerank, fusion_depth, instruction, resources)
