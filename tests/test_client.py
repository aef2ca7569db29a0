"""``rarx.client`` against a real ``rarx serve`` started here on 127.0.0.1 (and, for the
retry on 503, the app in-process while it loads); the framework retrievers over it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rarx
from rarx.client import AsyncClient, Client
from rarx.errors import ConfigError, ServerError
from rarx.index.base import load_index
from rarx.pipeline.search import SearchOptions, search_pipeline
from rarx.types import Document, Query, Ranking
from tests.conftest import TINY_DOCS
from tests.test_integrations import build_memory, gated_pipeline

KEY = "test-key-123"
QUERIES = [Query("a", "volcano lava magma"), Query("b", "genetic information helix"),
           Query("c", "water evaporates clouds")]  # fmt: skip


def library(paths: list[Path], queries: list[Query], k: int) -> list[Ranking]:
    """``rarx search``'s path in this process."""
    states = search_pipeline([load_index(p) for p in paths], SearchOptions(k=k)).run(queries)
    return [s.ranking.top(k) for s in states]


def same(got: list[Ranking], want: list[Ranking]) -> None:
    assert [r.qid for r in got] == [r.qid for r in want]
    for g, w in zip(got, want, strict=True):
        assert g.docids == w.docids and g.scores.tolist() == w.scores.tolist()
        assert [(d.title, d.text) for d in g.docs] == [(d.title, d.text) for d in w.docs]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_bm25: Any) -> Iterator[dict[str, Any]]:
    """A real server: two BM25 indexes and a gated pipeline, behind an API key."""
    from rarx.index.lucene import LuceneIndex

    root = tmp_path_factory.mktemp("served")
    bm25 = Path(tiny_bm25.path)
    other = LuceneIndex.build([Document(d["id"], d["text"]) for d in TINY_DOCS[2:]],
                              root / "other", quiet=True, k1=1.2, b=0.75).path  # fmt: skip
    pipeline = gated_pipeline(root, bm25, build_memory(root))
    port = _free_port()
    here = str(Path(rarx.__file__).parents[1])
    env = {**os.environ, "RARX_API_KEY": KEY,
           "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    log = (root / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "rarx.cli.main", "serve", "--host", "127.0.0.1", "--port",
         str(port), "--index", f"tiny={bm25}", "--index", f"other={other}", "--pipeline",
         f"gated={pipeline}", "--max-wait-ms", "1", "--no-access-log"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        with Client(url, api_key=KEY) as client:
            deadline = time.monotonic() + 120
            while not _ready(client):
                assert server.poll() is None, (root / "server.log").read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield {"url": url, "bm25": bm25, "other": other}
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _ready(client: Client) -> bool:
    try:
        return client.ready()
    except ServerError:
        return False


@pytest.fixture
def client(served: dict[str, Any]) -> Iterator[Client]:
    with Client(served["url"], api_key=KEY) as c:
        yield c


@pytest.mark.slow
def test_searches_equal_the_library(client: Client, served: dict[str, Any]) -> None:
    bm25, other = served["bm25"], served["other"]
    one = client.search("volcano lava magma", index="tiny", k=3)
    same([one], library([bm25], [Query("q1", "volcano lava magma")], 3))
    assert one.hits[0].doc.title == "Volcanoes"
    # A batch larger than the client's batch size goes as several requests, in order.
    small = Client(served["url"], api_key=KEY, batch_size=2)
    same(small.search_batch(QUERIES, index="tiny", k=4), library([bm25], QUERIES, 4))
    same(client.search_batch(QUERIES, index=["tiny", "other"], k=5),
         library([bm25, other], QUERIES, 5))  # fmt: skip
    texts = client.search_batch(["DNA", "gravity"], index="tiny", k=1)
    assert [(r.qid, r.docids) for r in texts] == [("q1", ["d8"]), ("q2", ["d5"])]
    listed = client.indexes()
    assert [i["name"] for i in listed["indexes"]] == ["tiny", "other"]
    assert listed["pipelines"] == [{"name": "gated", "stages": ["gate", "qa_memory", "retrieve"]}]


@pytest.mark.slow
def test_the_async_client_answers_as_the_sync_one(client: Client, served: dict[str, Any]) -> None:
    async def go() -> tuple[list[Ranking], Any, list[Ranking]]:
        async with AsyncClient(served["url"], api_key=KEY, batch_size=2) as c:
            await c.wait_ready(10)
            fused = await c.search_batch(QUERIES, index=["tiny", "other"], k=5)
            run = await c.run("gated", "What carries genetic information?")
            many = await asyncio.gather(*(c.search(q, index="tiny", k=3) for q in QUERIES))
            return fused, run, list(many)

    fused, run, many = asyncio.run(go())
    same(fused, client.search_batch(QUERIES, index=["tiny", "other"], k=5))
    assert run.answer == "DNA" and run.ranking is None
    assert [r.docids for r in many] == [r.docids for r in client.search_batch(QUERIES, index="tiny",
                                                                                k=3)]  # fmt: skip


@pytest.mark.slow
def test_a_pipeline_run_carries_answers_rankings_and_context(client: Client) -> None:
    remembered, searched = client.run_batch(
        "gated", ["What carries genetic information?", "volcano lava magma"], hits=3
    )
    assert remembered.answer == "DNA" and remembered.context["final"] is True
    assert remembered.context["gate"] == {"mode": "always", "retrieve": True}
    assert remembered.context["memory"][0]["answer"] == "DNA"
    assert searched.answer is None and searched.ranking.docids == ["d4"]
    assert searched.ranking.docs[0].text.startswith("Magma rises")
    explained = client.run("gated", "volcano lava magma", explain=True)
    assert explained.explanation.startswith("# q1: volcano lava magma")


@pytest.mark.slow
def test_refusals_are_server_errors_with_the_servers_message(
    client: Client, served: dict[str, Any]
) -> None:
    with pytest.raises(ServerError, match="answered 404: no index named 'nope'.*tiny") as e:
        client.search("x", index="nope")
    assert e.value.status == 404
    with pytest.raises(ServerError, match=r"answered 422: body\.k: .*1000") as e:
        client.search("x", index="tiny", k=5000)
    with pytest.raises(ServerError, match="answered 400: this server has no reranker"):
        client.search("x", index="tiny", rerank=True)
    with pytest.raises(ServerError, match="answered 404: no pipeline named 'nope'"):
        client.run("nope", "x")
    with Client(served["url"], api_key="wrong") as wrong:
        with pytest.raises(ServerError, match="answered 401: missing or wrong API key") as e:
            wrong.indexes()
    assert e.value.status == 401 and "wrong" not in repr(wrong)
    with Client(f"http://127.0.0.1:{_free_port()}", timeout=2) as nobody:
        with pytest.raises(ServerError, match="cannot reach it") as e:
            nobody.search("x", index="tiny")
    assert e.value.status is None
    with pytest.raises(ConfigError, match="unique qids"):
        client.search_batch([Query("a", "x"), Query("a", "y")], index="tiny")


@pytest.mark.slow
def test_a_503_is_retried_after_retry_after(tiny_bm25: Any) -> None:
    """The app answers 503 with Retry-After while it loads (the first request starts the
    loading); the client waits and asks again, or with no retries left raises."""
    import httpx

    from rarx.serve import ServeConfig, create_app

    def app() -> Any:
        config = ServeConfig(indexes={"tiny": Path(tiny_bm25.path)}, api_key=None,
                             retry_after_s=1)  # fmt: skip
        return create_app(config)

    async def go(retries: int) -> Ranking:
        transport = httpx.ASGITransport(app=app())
        async with AsyncClient("http://rarx", transport=transport, retries=retries) as c:
            return await c.search("DNA", index="tiny", k=1)

    start = time.monotonic()
    assert asyncio.run(go(retries=5)).docids == ["d8"]
    assert time.monotonic() - start >= 1.0  # waited as told at least once
    with pytest.raises(ServerError, match="answered 503: not ready") as e:
        asyncio.run(go(retries=0))
    assert e.value.retry_after == 1.0


# -- the framework retrievers over the server --------------------------------------------


@pytest.mark.slow
def test_framework_retrievers_over_the_client(client: Client, served: dict[str, Any]) -> None:
    from rarx.integrations.langchain import RarxRetriever as LangChainRetriever
    from rarx.integrations.llama_index import RarxRetriever as LlamaIndexRetriever

    want = library([served["bm25"], served["other"]], [Query("q1", QUERIES[0].text)], 4)[0]
    chain = LangChainRetriever(client=client, indexes=["tiny", "other"], k=4)
    docs = chain.invoke(QUERIES[0].text)
    assert [d.metadata["docid"] for d in docs] == want.docids
    assert [d.metadata["score"] for d in docs] == want.scores.tolist()
    assert docs[0].metadata["index"] == "tiny+other"
    nodes = LlamaIndexRetriever(client=client, indexes=["tiny", "other"], k=4).retrieve(
        QUERIES[0].text)  # fmt: skip
    assert [n.node.node_id for n in nodes] == want.docids

    gated = LangChainRetriever(client=client, pipeline="gated", k=3)
    remembered, searched = gated.batch(["What erupts from volcanoes?", QUERIES[1].text])
    assert remembered[0].page_content == "lava"
    assert remembered[0].metadata["memory_answer"] == "lava"
    assert searched[0].metadata["docid"] == "d8" and searched[0].metadata["gate"]["retrieve"]
    assert asyncio.run(gated.ainvoke(QUERIES[1].text)) == searched

    with pytest.raises(ServerError, match="no index named 'nope'"):
        LangChainRetriever(client=client, indexes=["nope"]).invoke("x")
    with pytest.raises(ServerError, match="no pipeline named 'nope'"):
        LlamaIndexRetriever(client=client, pipeline="nope").retrieve("x")
    with pytest.raises(ConfigError, match="the served names"):
        LangChainRetriever(client=client, indexes="tiny")


@pytest.mark.slow
def test_an_async_client_serves_ainvoke(served: dict[str, Any], client: Client) -> None:
    from rarx.integrations.langchain import RarxRetriever

    async def go() -> list[Any]:
        async with AsyncClient(served["url"], api_key=KEY) as c:
            retriever = RarxRetriever(client=c, indexes=["tiny"], k=3)
            with pytest.raises(ConfigError, match="AsyncClient"):
                retriever.invoke("DNA")
            return await retriever.ainvoke("DNA helix")

    docs = asyncio.run(go())
    assert [d.metadata["docid"] for d in docs] == client.search("DNA helix", index="tiny",
                                                                 k=3).docids  # fmt: skip
