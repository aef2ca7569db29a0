"""rarx in LlamaIndex (``pip install 'rarx[llamaindex]'``): a retriever and a reranking
node postprocessor::

    from rarx.integrations.llama_index import RarxReranker, RarxRetriever

    retriever = RarxRetriever(indexes=["indexes/sciq-bm25"], k=5)
    nodes = retriever.retrieve("What do plants need for photosynthesis?")
    reranked = RarxReranker(method="first", k=5).postprocess_nodes(nodes, query_str="...")

The retriever takes the same three sources as the LangChain one (local indexes, a
pipeline, or a :class:`rarx.client.Client`) and returns ``NodeWithScore`` items whose
``TextNode`` has the docid as ``id_``, the passage as text and the metadata of
:class:`rarx.integrations.source.Retrieved` (only ``title`` is shown to LLMs and
embedders). ``RarxReranker`` reranks any nodes with rarx's FIRST, listwise or
cross-encoder reranker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rarx.errors import ConfigError, require
from rarx.integrations.source import Retrieved, make_source
from rarx.types import Document, Query, Ranking

require("llama_index.core", "llamaindex")

from llama_index.core.base.base_retriever import BaseRetriever  # noqa: E402
from llama_index.core.callbacks import CallbackManager  # noqa: E402
from llama_index.core.postprocessor.types import BaseNodePostprocessor  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402
from pydantic import Field, PrivateAttr  # noqa: E402

SHOWN = ("title",)  # metadata that LLM and embedding text include; the rest is for code


def to_node(hit: Retrieved) -> NodeWithScore:
    meta = dict(hit.metadata)
    hidden = [key for key in meta if key not in SHOWN]
    node = TextNode(
        id_=hit.id, text=hit.text, metadata=meta, excluded_llm_metadata_keys=hidden,
        excluded_embed_metadata_keys=hidden,
    )  # fmt: skip
    return NodeWithScore(node=node, score=hit.score)


class RarxRetriever(BaseRetriever):
    """A LlamaIndex retriever over a rarx search, pipeline or server: the arguments of
    :func:`rarx.integrations.source.make_source`."""

    def __init__(
        self, *, indexes: Sequence[Any] | None = None, pipeline: Any = None, client: Any = None,
        k: int = 10, rerank: Any = None, fusion_depth: int = 1000, instruction: str = "",
        resources: Any = None, callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:  # fmt: skip
        self._source = make_source(
            indexes=indexes, pipeline=pipeline, client=client, k=k, rerank=rerank,
            fusion_depth=fusion_depth, instruction=instruction, resources=resources,
        )  # fmt: skip
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [to_node(h) for h in self._source.retrieve([query_bundle.query_str])[0]]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [to_node(h) for h in (await self._source.aretrieve([query_bundle.query_str]))[0]]

    def retrieve_batch(self, queries: Sequence[str]) -> list[list[NodeWithScore]]:
        """Several queries in one search (one batch through the index or pipeline)."""
        return [[to_node(h) for h in hits] for hits in self._source.retrieve(list(queries))]


class RarxReranker(BaseNodePostprocessor):
    """Reranks nodes with rarx: ``first`` (single-token listwise), ``listwise``
    (generated permutation) or ``cross-encoder``. ``model`` is the LLM for the first two
    and the cross-encoder's name or path for the third. The top ``k`` nodes are
    reranked; the rest keep their order below them. ``top_n`` keeps that many."""

    method: str = "first"
    model: str = "smollm2-135m"
    k: int = 20
    window: int = 20
    stride: int = 10
    passage_tokens: int = 300
    top_n: int | None = None
    resources: Any = Field(default=None, exclude=True)

    _reranker: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "RarxReranker"

    def _load(self) -> Any:
        if self._reranker is None:
            from rarx.rerank import make_reranker

            if self.method == "cross-encoder":
                self._reranker = make_reranker(self.method, self.model, self.k)
            else:
                extra: dict[str, Any] = {"passage_tokens": self.passage_tokens}
                if self.resources is not None:
                    extra["llm"] = self.resources.llm(self.model)
                self._reranker = make_reranker(self.method, self.model, self.k, self.window,
                                               self.stride, **extra)  # fmt: skip
        return self._reranker

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ConfigError("RarxReranker needs the query: pass query_str= or query_bundle=")
        if not nodes:
            return []
        # Hits are named by position (node ids may repeat) and ranked in the order given.
        docs = [Document(str(i), n.node.get_content(), str(n.node.metadata.get("title") or ""))
                for i, n in enumerate(nodes)]  # fmt: skip
        scores = [n.score for n in nodes]
        known = [float(s) for s in scores if s is not None]
        ordered = len(known) == len(scores) and all(
            a >= b for a, b in zip(known, known[1:], strict=False)
        )
        values = known if ordered else [float(len(nodes) - i) for i in range(len(nodes))]
        ranking = Ranking.from_arrays("q", [d.docid for d in docs], values, docs)
        reranked = self._load().rerank([Query("q", query_bundle.query_str)], [ranking])[0]
        out = [NodeWithScore(node=nodes[int(h.docid)].node, score=h.score) for h in reranked.hits]
        return out[: self.top_n] if self.top_n is not None else out
