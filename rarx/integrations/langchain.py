"""rarx as a LangChain retriever (``pip install 'rarx[langchain]'``)::

    from rarx.integrations.langchain import RarxRetriever

    retriever = RarxRetriever(indexes=["indexes/sciq-bm25"], k=5)          # a local search
    retriever = RarxRetriever(pipeline="pipelines/adaptive-rag.yaml")     # a local pipeline
    retriever = RarxRetriever(client=Client(url), indexes=["sciq"])       # rarx serve
    docs = retriever.invoke("What do plants need for photosynthesis?")

Each hit is a ``Document`` with the passage as ``page_content`` and ``metadata``:
docid, score, rank, title, index, and for a pipeline the gate's decision (``gate``,
``retrieve``) and the QA memory's answer (``memory_answer``, ``memory_score``). A
pipeline that answered without retrieving returns one Document holding the answer
(``metadata["kind"] == "answer"``). ``batch`` searches all its queries in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rarx.errors import require
from rarx.integrations.source import Retrieved, Source, make_source

require("langchain_core", "langchain")

from langchain_core.callbacks import (  # noqa: E402 - after the check that names the extra
    AsyncCallbackManager,
    AsyncCallbackManagerForRetrieverRun,
    CallbackManager,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langchain_core.runnables.config import get_config_list  # noqa: E402
from pydantic import ConfigDict, PrivateAttr  # noqa: E402


def to_document(hit: Retrieved) -> Document:
    return Document(page_content=hit.text, metadata=dict(hit.metadata), id=hit.id)


class RarxRetriever(BaseRetriever):
    """A LangChain retriever over a rarx search, pipeline or server (see the module)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    indexes: Any = None
    """Index directories (or opened indexes) to search, fused when several; with
    ``client``, the names the server serves them under."""
    pipeline: Any = None
    """A pipeline file or :class:`rarx.Pipeline`; with ``client``, a served pipeline's name."""
    client: Any = None
    """A :class:`rarx.client.Client` (or AsyncClient, for the async calls only)."""
    k: int = 10
    rerank: Any = None
    """Local: a RerankParams or its fields ({"method": "first", "k": 20, ...});
    with ``client``: True applies the server's reranker."""
    fusion_depth: int = 1000
    instruction: str = ""
    resources: Any = None
    """A :class:`rarx.pipeline.Resources` to share loaded models and indexes."""

    _source: Source = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._source = make_source(
            indexes=self.indexes, pipeline=self.pipeline, client=self.client, k=self.k,
            rerank=self.rerank, fusion_depth=self.fusion_depth, instruction=self.instruction,
            resources=self.resources,
        )  # fmt: skip

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [to_document(h) for h in self._source.retrieve([query])[0]]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [to_document(h) for h in (await self._source.aretrieve([query]))[0]]

    def _managers(self, configs: list[RunnableConfig], cls: Any) -> list[Any]:
        return [
            cls.configure(c.get("callbacks"), None, inheritable_tags=c.get("tags"),
                          local_tags=self.tags,
                          inheritable_metadata={**(c.get("metadata") or {}),
                                                **self._get_ls_params()},
                          local_metadata=self.metadata)
            for c in configs
        ]  # fmt: skip

    def batch(
        self, inputs: list[str], config: RunnableConfig | list[RunnableConfig] | None = None,
        *, return_exceptions: bool = False, **kwargs: Any,
    ) -> list[Any]:  # fmt: skip
        """All queries in one search (one batch through the index or pipeline), with a
        retriever run reported to the callbacks for each."""
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        runs = [
            m.on_retriever_start(None, text, name=c.get("run_name") or self.get_name())
            for m, c, text in zip(self._managers(configs, CallbackManager), configs, inputs,
                                  strict=True)
        ]  # fmt: skip
        try:
            found = self._source.retrieve(list(inputs))
        except Exception as exc:
            for run in runs:
                run.on_retriever_error(exc)
            if return_exceptions:
                return [exc] * len(inputs)
            raise
        return self._finish(runs, found)

    async def abatch(
        self, inputs: list[str], config: RunnableConfig | list[RunnableConfig] | None = None,
        *, return_exceptions: bool = False, **kwargs: Any,
    ) -> list[Any]:  # fmt: skip
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        runs = [
            await m.on_retriever_start(None, text, name=c.get("run_name") or self.get_name())
            for m, c, text in zip(self._managers(configs, AsyncCallbackManager), configs, inputs,
                                  strict=True)
        ]  # fmt: skip
        try:
            found = await self._source.aretrieve(list(inputs))
        except Exception as exc:
            for run in runs:
                await run.on_retriever_error(exc)
            if return_exceptions:
                return [exc] * len(inputs)
            raise
        out = [[to_document(h) for h in hits] for hits in found]
        for run, docs in zip(runs, out, strict=True):
            await run.on_retriever_end(docs)
        return out

    @staticmethod
    def _finish(runs: Sequence[Any], found: list[list[Retrieved]]) -> list[Any]:
        out = [[to_document(h) for h in hits] for hits in found]
        for run, docs in zip(runs, out, strict=True):
            run.on_retriever_end(docs)
        return out
