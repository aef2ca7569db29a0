"""The LangChain and LlamaIndex retrievers over local indexes and pipelines, run through
the real frameworks and compared with ``rarx search`` run as a command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from rarx.errors import ConfigError
from tests.conftest import write_jsonl

QUERIES = ["volcano lava magma", "genetic information helix", "water evaporates clouds",
           "cells energy"]  # fmt: skip
PAIRS = [
    {"id": "m1", "question": "What erupts from volcanoes?", "answer": "lava"},
    {"id": "m2", "question": "What carries genetic information?", "answer": "DNA"},
]


def rarx_searches(index: Path, queries: list[str], *extra: str,
                  k: int = 3) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """``rarx search`` as users run it (JSONL output, one process): each query's hits."""
    with tempfile.TemporaryDirectory() as tmp:
        topics = Path(tmp) / "topics.tsv"
        topics.write_text("".join(f"t{i}\t{q}\n" for i, q in enumerate(queries)))
        out = subprocess.run(
            [sys.executable, "-m", "rarx.cli.main", "search", "--index", str(index), "--topics",
             str(topics), "--k", str(k), "--format", "jsonl", *extra],
            capture_output=True, text=True,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {json.loads(line)["query"]: json.loads(line)["hits"] for line in out.stdout.splitlines()}


def rarx_search(index: Path, query: str, *extra: str, k: int = 3) -> list[dict[str, Any]]:
    return rarx_searches(index, [query], *extra, k=k)[query]


def gated_pipeline(root: Path, bm25: Path, memory: Path) -> Path:
    """A gate (always retrieve), a QA memory answering near-duplicates, BM25 retrieval."""
    file = root / "gated.yaml"
    file.write_text(
        "name: gated\nstages:\n  - gate: {mode: always}\n"
        f"  - qa_memory: {{index: {memory}, threshold: 0.95, k: 2}}\n"
        f"  - retrieve: {{index: {bm25}, k: 5}}\n"
    )
    return file


def build_memory(root: Path) -> Path:
    from rarx.index.qa_memory import QAMemoryIndex

    pairs = write_jsonl(root / "pairs.jsonl", PAIRS)
    return QAMemoryIndex.build(pairs, root / "memory", quiet=True).path


@pytest.fixture(scope="module")
def bm25(tiny_bm25: Any) -> Path:
    return Path(tiny_bm25.path)


@pytest.fixture(scope="module")
def pipeline_file(tmp_path_factory: pytest.TempPathFactory, bm25: Path) -> Path:
    root = tmp_path_factory.mktemp("gated")
    return gated_pipeline(root, bm25, build_memory(root))


@pytest.fixture(scope="module")
def cli_hits(bm25: Path) -> dict[str, list[dict[str, Any]]]:
    return rarx_searches(bm25, QUERIES)


@pytest.fixture(scope="module")
def reranked_hits(bm25: Path, tiny_cross_encoder: str) -> list[dict[str, Any]]:
    """``rarx search --rerank cross-encoder`` of QUERIES[2] (top 5 reranked)."""
    return rarx_search(bm25, QUERIES[2], "--rerank", "cross-encoder", "--rerank-llm",
                       tiny_cross_encoder, "--rerank-k", "5", k=5)  # fmt: skip


# -- LangChain ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_langchain_chain_returns_rarx_searchs_hits(bm25: Path, cli_hits: dict) -> None:
    from langchain_core.runnables import RunnableLambda

    from rarx.integrations.langchain import RarxRetriever

    retriever = RarxRetriever(indexes=[str(bm25)], k=3)
    listing = RunnableLambda(lambda docs: [(d.metadata["docid"], d.metadata["score"],
                                            d.metadata["rank"]) for d in docs])  # fmt: skip
    chain = retriever | listing
    for q in QUERIES:
        want = [(h["docid"], h["score"], h["rank"]) for h in cli_hits[q]]
        assert chain.invoke(q) == want
    docs = retriever.invoke(QUERIES[0])
    assert docs[0].page_content == cli_hits[QUERIES[0]][0]["text"]
    assert docs[0].metadata["title"] == "Volcanoes" and docs[0].metadata["index"] == bm25.name
    # batch: one search for all queries; async: the same answers
    batched = retriever.batch(QUERIES)
    assert [[d.metadata["docid"] for d in ds] for ds in batched] == [
        [h["docid"] for h in cli_hits[q]] for q in QUERIES
    ]
    assert asyncio.run(retriever.ainvoke(QUERIES[1])) == retriever.invoke(QUERIES[1])
    assert asyncio.run(retriever.abatch(QUERIES)) == batched


@pytest.mark.slow
def test_a_langchain_search_fuses_and_reranks_as_rarx_search(
    bm25: Path, tmp_path: Path, tiny_cross_encoder: str, reranked_hits: list[dict[str, Any]]
) -> None:
    from rarx.index.lucene import LuceneIndex
    from rarx.integrations.langchain import RarxRetriever
    from rarx.types import Document
    from tests.conftest import TINY_DOCS

    other = LuceneIndex.build([Document(d["id"], d["text"]) for d in TINY_DOCS[2:]],
                              tmp_path / "other", quiet=True, k1=1.2, b=0.75)  # fmt: skip
    fused = RarxRetriever(indexes=[str(bm25), str(other.path)], k=4)
    want = rarx_search(bm25, QUERIES[0], "--index", str(other.path), k=4)
    got = fused.invoke(QUERIES[0])
    assert [d.metadata["docid"] for d in got] == [h["docid"] for h in want]
    assert [d.metadata["score"] for d in got] == [h["score"] for h in want]
    assert got[0].metadata["index"] == f"{bm25.name}+other"

    rerank = {"method": "cross-encoder", "llm": tiny_cross_encoder, "k": 5}
    reranked = RarxRetriever(indexes=[str(bm25)], k=5, rerank=rerank)
    got = reranked.invoke(QUERIES[2])
    assert [d.metadata["docid"] for d in got] == [h["docid"] for h in reranked_hits]


@pytest.mark.slow
def test_a_pipeline_retriever_gives_the_gate_and_memory_fields(pipeline_file: Path,
                                                               cli_hits: dict) -> None:  # fmt: skip
    from rarx.integrations.langchain import RarxRetriever

    retriever = RarxRetriever(pipeline=str(pipeline_file), k=3)
    remembered, searched = retriever.batch(["What carries genetic information?", QUERIES[0]])
    # The memory answered: no retrieval, one Document holding the answer.
    assert len(remembered) == 1 and remembered[0].page_content == "DNA"
    meta = remembered[0].metadata
    assert meta["kind"] == "answer" and meta["memory_answer"] == "DNA"
    assert meta["memory_score"] >= 0.95 and meta["gate"] == {"mode": "always", "retrieve": True}
    # The memory missed: BM25's hits, each with the gate's decision and the memory's score.
    assert [d.metadata["docid"] for d in searched] == [h["docid"] for h in cli_hits[QUERIES[0]]]
    assert searched[0].metadata["memory_answer"] is None
    assert searched[0].metadata["memory_score"] < 0.95 and searched[0].metadata["retrieve"] is True


def test_arguments_are_checked_before_anything_loads(bm25: Path) -> None:
    from rarx.integrations.langchain import RarxRetriever

    with pytest.raises(ConfigError, match="exactly one of indexes"):
        RarxRetriever(indexes=[str(bm25)], pipeline="p.yaml")
    with pytest.raises(ConfigError, match="exactly one of indexes"):
        RarxRetriever()
    with pytest.raises(ConfigError, match="a list of index directories"):
        RarxRetriever(indexes=str(bm25))
    with pytest.raises(ConfigError, match="rerank applies to a search"):
        RarxRetriever(pipeline="p.yaml", rerank={"method": "first"})


# -- LlamaIndex -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_llama_index_retriever_returns_rarx_searchs_hits(bm25: Path, cli_hits: dict) -> None:
    from llama_index.core import QueryBundle
    from llama_index.core.schema import MetadataMode

    from rarx.integrations.llama_index import RarxRetriever

    retriever = RarxRetriever(indexes=[str(bm25)], k=3)
    for q in QUERIES:
        nodes = retriever.retrieve(QueryBundle(q))
        assert [(n.node.node_id, n.score) for n in nodes] == [
            (h["docid"], h["score"]) for h in cli_hits[q]]  # fmt: skip
    top = retriever.retrieve(QUERIES[0])[0]
    assert top.node.get_content() == cli_hits[QUERIES[0]][0]["text"]
    # An LLM sees the passage and its title, not the bookkeeping.
    shown = top.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "title: Volcanoes" in shown and "docid" not in shown and top.node.metadata["rank"] == 1
    batched = retriever.retrieve_batch(QUERIES)
    assert [[n.node.node_id for n in ns] for ns in batched] == [
        [h["docid"] for h in cli_hits[q]] for q in QUERIES
    ]
    again = asyncio.run(retriever.aretrieve(QUERIES[1]))
    assert [n.node.node_id for n in again] == [h["docid"] for h in cli_hits[QUERIES[1]]]


@pytest.mark.slow
def test_the_llama_index_reranker_orders_as_rarx_search_reranks(
    bm25: Path, tiny_cross_encoder: str, reranked_hits: list[dict[str, Any]]
) -> None:
    from rarx.integrations.llama_index import RarxReranker, RarxRetriever

    nodes = RarxRetriever(indexes=[str(bm25)], k=5).retrieve(QUERIES[2])
    reranker = RarxReranker(method="cross-encoder", model=tiny_cross_encoder, k=5, top_n=3)
    got = reranker.postprocess_nodes(nodes, query_str=QUERIES[2])
    assert [n.node.node_id for n in got] == [h["docid"] for h in reranked_hits][:3]
    assert [n.score for n in got] == pytest.approx([h["score"] for h in reranked_hits][:3],
                                                   abs=1e-5)  # fmt: skip
    with pytest.raises(ConfigError, match="needs the query"):
        reranker.postprocess_nodes(nodes)


@pytest.mark.slow
def test_a_llama_index_pipeline_retriever_gives_the_memory_answer(pipeline_file: Path) -> None:
    from rarx.integrations.llama_index import RarxRetriever

    retriever = RarxRetriever(pipeline=pipeline_file, k=3)
    remembered = retriever.retrieve("What erupts from volcanoes?")
    assert [n.node.get_content() for n in remembered] == ["lava"]
    assert remembered[0].node.metadata["memory_answer"] == "lava" and remembered[0].score is None
    searched = retriever.retrieve(QUERIES[1])
    assert searched[0].node.node_id == "d8" and searched[0].node.metadata["gate"]["retrieve"]


# -- extras ---------------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_importing_rarx_imports_no_framework() -> None:
    out = _python(
        "import sys, rarx, rarx.client, rarx.integrations, rarx.integrations.source\n"
        "loaded = [m for m in sys.modules if m.startswith(('langchain', 'llama_index'))]\n"
        "assert not loaded, loaded\n"
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(("module", "package", "extra"), [
    ("rarx.integrations.langchain", "langchain_core", "langchain"),
    ("rarx.integrations.llama_index", "llama_index.core", "llamaindex"),
])  # fmt: skip
def test_a_missing_framework_names_its_extra(module: str, package: str, extra: str) -> None:
    out = _python(
        f"import sys\nsys.modules[{package!r}] = None  # as if not installed\n"
        "from rarx.errors import MissingDependencyError\n"
        f"try:\n    import {module}\nexcept MissingDependencyError as e:\n    print(e)\n"
    )
    assert out.returncode == 0, out.stderr
    assert f"pip install 'rarx[{extra}]'" in out.stdout
