"""``rarx serve``: the app in-process (httpx's ASGI transport) on tiny BM25 and dense
indexes, and one real uvicorn process (start, answer, SIGTERM while a request is in
flight, exit 0)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

import rarx
from rarx.errors import ConfigError
from rarx.index.base import Index, load_index
from rarx.pipeline import Pipeline, Resources, Serial
from rarx.pipeline.search import SearchOptions, search_pipeline
from rarx.serve import Limits, ServeConfig
from rarx.serve.config import parse_named
from rarx.types import Document, Query, Ranking
from tests.conftest import TINY_DOCS

QUERIES = [Query("a", "volcano lava magma"), Query("b", "genetic information helix"),
           Query("c", "water evaporates clouds")]  # fmt: skip


def app_for(resources: Resources, **settings: Any) -> Any:
    from rarx.serve import create_app

    settings.setdefault("api_key", None)
    return create_app(ServeConfig(**settings), resources)


async def started(app: Any) -> httpx.AsyncClient:
    await app.state.rarx.start()
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rarx")


def call(coro: Any) -> Any:
    return asyncio.run(coro)


@functools.cache
def opened(path: Path) -> Index:
    return load_index(path)  # apart from any app's, opened once per test run


def library(index_paths: Sequence[Path], queries: list[Query], k: int) -> list[Ranking]:
    """The library's answer: ``rarx search``'s path over indexes opened apart."""
    indexes = [opened(p) for p in index_paths]
    states = search_pipeline(indexes, SearchOptions(k=k)).run(queries)
    return [s.ranking.top(k) for s in states]


def assert_same(response: dict[str, Any], rankings: list[Ranking]) -> None:
    assert [r["qid"] for r in response["rankings"]] == [r.qid for r in rankings]
    for got, want in zip(response["rankings"], rankings, strict=True):
        assert [h["docid"] for h in got["hits"]] == want.docids
        assert [h["score"] for h in got["hits"]] == want.scores.tolist()
        assert [h["text"] for h in got["hits"]] == [d.text for d in want.docs]
        assert [h["title"] for h in got["hits"]] == [d.title for d in want.docs]


def metric(text: str, name: str) -> float:
    """One sample's value from Prometheus text (the first line starting with ``name``)."""
    line = next(x for x in text.splitlines() if x.startswith(name))
    return float(line.rsplit(" ", 1)[1])


@pytest.fixture(scope="module")
def bm25(tiny_bm25: Any) -> Path:
    return Path(tiny_bm25.path)


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Path:
    from rarx.index.dense import DenseIndex

    path = tmp_path_factory.mktemp("serve") / "dense"
    docs = [Document(d["id"], d["text"], d["title"]) for d in TINY_DOCS]
    DenseIndex.build(docs, path, encoder=minilm, quiet=True)
    return path


# -- answers equal the library's ------------------------------------------------------


@pytest.mark.slow
def test_search_answers_equal_the_library(bm25: Path, dense: Path, resources: Resources) -> None:
    app = app_for(resources, indexes={"bm25": bm25, "dense": dense})
    batch = [{"qid": q.qid, "text": q.text} for q in QUERIES]

    async def go() -> list[dict[str, Any]]:
        async with await started(app) as c:
            bodies = [
                {"index": "bm25", "query": QUERIES[0].text, "k": 3},
                {"index": "dense", "queries": batch, "k": 4},
                {"indexes": ["bm25", "dense"], "fusion": "rrf", "queries": batch, "k": 5},
            ]
            responses = [await c.post("/v1/search", json=b) for b in bodies]
            assert [r.status_code for r in responses] == [200, 200, 200]
            listed = (await c.get("/v1/indexes")).json()
            assert [(i["name"], i["kind"], i["documents"]) for i in listed["indexes"]] == [
                ("bm25", "bm25", 8), ("dense", "dense", 8)]  # fmt: skip
            assert "path" not in str(listed)  # names only: no request sees a path
            return [r.json() for r in responses]

    one, dense_batch, fused = call(go())
    assert_same(one, library([bm25], [Query("q1", QUERIES[0].text)], 3))
    assert one["rankings"][0]["hits"][0]["docid"] == "d4"  # the volcano passage
    assert_same(dense_batch, library([dense], QUERIES, 4))
    assert_same(fused, library([bm25, dense], QUERIES, 5))


def test_the_search_engine_setting_opens_bm25_indexes_with_it(
    bm25: Path, resources: Resources
) -> None:
    with pytest.raises(ConfigError, match="search_engine must be one of auto, matrix, lucene, "
                       "got 'fast'"):  # fmt: skip
        ServeConfig(indexes={"bm25": bm25}, search_engine="fast")
    batch = [{"qid": q.qid, "text": q.text} for q in QUERIES]
    answers = {}
    for engine in ("lucene", "matrix", "auto"):
        app = app_for(resources, indexes={"bm25": bm25}, search_engine=engine)

        async def go() -> dict[str, Any]:
            async with await started(app) as c:  # noqa: B023 - run in this iteration
                response = await c.post("/v1/search", json={"index": "bm25", "queries": batch,
                                                            "k": 5})  # fmt: skip
                assert response.status_code == 200
                return response.json()

        answers[engine] = call(go())
        opened_with = app.state.rarx.indexes["bm25"].inner.settings["engine"]
        assert opened_with == ("matrix" if engine == "auto" else engine)
    assert answers["lucene"] == answers["matrix"] == answers["auto"]  # the same rankings
    assert_same(answers["lucene"], library([bm25], QUERIES, 5))


@pytest.mark.slow
def test_a_pipeline_runs_by_name_with_explain(bm25: Path, tmp_path: Path,
                                              resources: Resources) -> None:  # fmt: skip
    file = tmp_path / "p.yaml"
    file.write_text(f"name: tiny\nstages:\n  - retrieve: {{index: {bm25}, k: 3}}\n")
    app = app_for(resources, pipelines={"tiny": file})

    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with await started(app) as c:
            body = {"queries": [{"qid": q.qid, "text": q.text} for q in QUERIES]}
            plain = await c.post("/v1/pipelines/tiny/run", json={**body, "hits": 2})
            explained = await c.post("/v1/pipelines/tiny/run", json={**body, "explain": True})
            missing = await c.post("/v1/pipelines/nope/run", json={"query": "x"})
            return plain, explained, missing

    plain, explained, missing = call(go())
    want = Pipeline.from_yaml(file, resources).run(QUERIES)
    results = plain.json()["results"]
    assert [r["qid"] for r in results] == ["a", "b", "c"]
    assert [[h["docid"] for h in r["ranking"]] for r in results] == [
        s.ranking.docids[:2] for s in want
    ]
    assert "trace" not in results[0]
    full = explained.json()["results"][0]
    assert full["trace"][0]["stage"] == "retrieve" and full["explanation"].startswith("# a:")
    assert [h["score"] for h in full["ranking"]] == want[0].ranking.scores.tolist()
    assert missing.status_code == 404 and "tiny" in missing.json()["detail"]


@pytest.mark.slow
def test_rerank_as_configured_equals_the_library_with_the_same_llm(
    bm25: Path, resources: Resources, smol: Any
) -> None:
    from rarx.stages.rerank import RerankParams

    rerank = RerankParams("first", "smollm2-135m", k=3, window=3, stride=1, passage_tokens=30)
    app = app_for(resources, indexes={"bm25": bm25}, rerank=rerank)
    batch = [{"qid": q.qid, "text": q.text} for q in QUERIES[:2]]

    async def go() -> dict[str, Any]:
        async with await started(app) as c:
            body = {"index": "bm25", "queries": batch, "k": 3, "rerank": True}
            r = await c.post("/v1/search", json=body)
            assert r.status_code == 200, r.text
            return r.json()

    got = call(go())
    # The reranking LLM comes from the shared resources: the server loads no second copy.
    options = SearchOptions(k=3, rerank=rerank)
    want = search_pipeline([opened(bm25)], options, resources).run(QUERIES[:2])
    assert_same(got, [s.ranking.top(3) for s in want])
    assert resources.llm("smollm2-135m").inner is smol


def test_rerank_with_a_cross_encoder_loads_it_once_and_equals_the_library(
    bm25: Path, tiny_cross_encoder: str
) -> None:
    from rarx.stages.rerank import RerankParams

    rerank = RerankParams("cross-encoder", tiny_cross_encoder, k=4)
    resources = Resources()
    app = app_for(resources, indexes={"bm25": bm25}, rerank=rerank)
    batch = [{"qid": q.qid, "text": q.text} for q in QUERIES]

    async def go() -> list[dict[str, Any]]:
        async with await started(app) as c:
            out = []
            for k in (4, 2):  # two search pipelines (one per k), one cross-encoder
                body = {"index": "bm25", "queries": batch, "k": k, "rerank": True}
                r = await c.post("/v1/search", json=body)
                assert r.status_code == 200, r.text
                out.append(r.json())
            info = (await c.get("/v1/indexes")).json()
            assert info["rerank"]["method"] == "cross-encoder"
            return out

    four, two = call(go())
    for got, k in ((four, 4), (two, 2)):  # the library loads its own copy of the model
        want = search_pipeline([opened(bm25)], SearchOptions(k=k, rerank=rerank)).run(QUERIES)
        assert_same(got, [s.ranking.top(k) for s in want])
    plain = library([bm25], QUERIES, 4)
    assert [[h["score"] for h in r["hits"]] for r in four["rankings"]] != [
        r.scores.tolist() for r in plain]  # the cross-encoder's scores, not BM25's
    assert [k for k in resources.loaded() if "cross-encoder" in k] == [
        f'["cross-encoder", "{tiny_cross_encoder}", {{"device": null}}]']


# -- batching -------------------------------------------------------------------------


class Recording(Serial):
    """Serial, plus a record of each search call's batch size (after ``start``)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def index(self, index: Index) -> Index:
        inner = super().index(index)
        calls = self.calls
        search = inner.search

        def recorded(queries: Sequence[Query], k: int = 10, **options: Any) -> list[Ranking]:
            calls.append(len(queries))
            return search(queries, k, **options)

        inner.search = recorded  # type: ignore[method-assign]
        return inner


@pytest.mark.slow
def test_concurrent_requests_merge_into_one_call(bm25: Path) -> None:
    policy = Recording()
    # A batch goes when full (4 queries); the wait is long enough never to fire first.
    app = app_for(Resources(policy=policy), indexes={"bm25": bm25}, max_batch_size=4,
                  max_wait_ms=20_000)  # fmt: skip

    async def go() -> tuple[list[httpx.Response], str]:
        async with await started(app) as c:
            policy.calls.clear()  # the warm-up search
            posts = [c.post("/v1/search", json={"index": "bm25", "query": q.text, "k": 2})
                     for q in QUERIES]  # fmt: skip
            posts.append(c.post("/v1/search", json={"index": "bm25", "query": "DNA", "k": 2}))
            responses = await asyncio.gather(*posts)
            return responses, (await c.get("/metrics")).text

    responses, metrics = call(go())
    assert policy.calls == [4]
    texts = [q.text for q in QUERIES] + ["DNA"]
    for response, text in zip(responses, texts, strict=True):
        assert_same(response.json(), library([bm25], [Query("q1", text)], 2))
    assert metric(metrics, 'rarx_batch_requests_sum{target="search:bm25"}') == 4
    assert metric(metrics, 'rarx_batch_queries_count{target="search:bm25"}') == 1


@pytest.mark.slow
def test_batching_off_makes_one_call_per_request(bm25: Path) -> None:
    policy = Recording()
    app = app_for(Resources(policy=policy), indexes={"bm25": bm25}, max_batch_size=1)

    async def go() -> None:
        async with await started(app) as c:
            policy.calls.clear()
            posts = [c.post("/v1/search", json={"index": "bm25", "query": q.text}) for q in QUERIES]
            assert {r.status_code for r in await asyncio.gather(*posts)} == {200}

    call(go())
    assert policy.calls == [1, 1, 1]


# -- load: 503 with Retry-After past the queue, and the timeout -----------------------


class Blocking(Serial):
    """A search for the text 'block' waits until ``release`` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def index(self, index: Index) -> Index:
        inner = super().index(index)
        search = inner.search

        def blocking(queries: Sequence[Query], k: int = 10, **options: Any) -> list[Ranking]:
            if any(q.text == "block" for q in queries):
                self.entered.set()
                self.release.wait(10)
            return search(queries, k, **options)

        inner.search = blocking  # type: ignore[method-assign]
        return inner


@pytest.mark.slow
def test_overload_is_503_with_retry_after_and_nothing_is_lost(bm25: Path) -> None:
    policy = Blocking()
    app = app_for(Resources(policy=policy), indexes={"bm25": bm25}, max_concurrency=1,
                  max_queue=1, max_batch_size=1, retry_after_s=2)  # fmt: skip
    service = app.state.rarx

    async def go() -> tuple[list[httpx.Response], httpx.Response, str]:
        async with await started(app) as c:
            first = asyncio.create_task(
                c.post("/v1/search", json={"index": "bm25", "query": "block"})
            )
            await asyncio.to_thread(policy.entered.wait, 10)  # the one slot is taken
            second = asyncio.create_task(
                c.post("/v1/search", json={"index": "bm25", "query": "DNA"})
            )
            while service.admission.waiting < 1:  # the one queue place is taken
                await asyncio.sleep(0.01)
            refused = await c.post("/v1/search", json={"index": "bm25", "query": "gravity"})
            policy.release.set()
            answered = list(await asyncio.gather(first, second))
            return answered, refused, (await c.get("/metrics")).text

    answered, refused, metrics = call(go())  # fmt: skip
    assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
    assert "busy" in refused.json()["detail"]
    assert [r.status_code for r in answered] == [200, 200]
    assert answered[1].json()["rankings"][0]["hits"][0]["docid"] == "d8"
    assert metric(metrics, 'rarx_http_errors_total{reason="overloaded"') == 1


@pytest.mark.slow
def test_a_request_past_the_timeout_is_503_and_the_server_goes_on(bm25: Path) -> None:
    policy = Blocking()
    app = app_for(Resources(policy=policy), indexes={"bm25": bm25}, timeout_s=0.2)

    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with await started(app) as c:
            slow = await c.post("/v1/search", json={"index": "bm25", "query": "block"})
            policy.release.set()
            return slow, await c.post("/v1/search", json={"index": "bm25", "query": "DNA"})

    slow, after = call(go())
    assert slow.status_code == 503 and "within 0.2 s" in slow.json()["detail"]
    assert slow.headers["retry-after"] == "1"
    assert after.status_code == 200


# -- bad input, security ----------------------------------------------------------------


@pytest.mark.slow
def test_bad_input_is_422_naming_the_field_and_the_limit(bm25: Path, resources: Resources) -> None:
    limits = Limits(max_query_chars=50, max_k=20, max_queries=2, max_body_bytes=2000)
    app = app_for(resources, indexes={"bm25": bm25}, limits=limits)
    two = [{"qid": "a", "text": "x"}, {"qid": "b", "text": "y"}]
    cases = {  # body -> (status, where, what the message or limit says)
        json.dumps({"index": "bm25", "query": "x" * 51}): (422, ["body", "query"], "50"),
        '{"index": "bm25", "query": "x", "k": 21}': (422, ["body", "k"], "20"),
        '{"index": "bm25", "query": "x", "k": 0}': (422, ["body", "k"], "1"),
        json.dumps({"index": "bm25", "queries": two * 2}): (422, ["body", "queries"], "2"),
        '{"index": "bm25", "query": "   "}': (422, ["body", "query"], "non-space"),
        '{"index": "../etc", "query": "x"}': (422, ["body", "index"], "pattern"),
        '{"index": "bm25", "query": "x", "path": "/etc"}': (422, ["body", "path"], "Extra"),
        json.dumps({"index": "bm25", "queries": [two[0], two[0]]}): (422, ["body"], "unique"),
        '{"query": "x"}': (422, ["body"], "exactly one of 'index'"),
        '{"index": "bm25", "query": "x", "fusion": "sum"}': (422, ["body", "fusion"], "rrf"),
        '{"index": "bm25", "que': (422, ["body", 18], "JSON"),
        '{"index": "bm25", "query": "x", "rerank": true}': (400, None, "--rerank"),
        '{"index": "nope", "query": "x"}': (404, None, "bm25"),
        json.dumps({"index": "bm25", "query": "x" * 3000}): (413, None, "2000 bytes"),
    }  # fmt: skip

    async def go() -> list[httpx.Response]:
        async with await started(app) as c:
            headers = {"content-type": "application/json"}
            return [await c.post("/v1/search", content=b, headers=headers) for b in cases]

    for (body, (status, loc, says)), r in zip(cases.items(), call(go()), strict=True):
        assert r.status_code == status, (body[:60], r.text)
        detail = r.json()["detail"]
        if loc is None:
            assert says in detail, (body[:60], detail)
        else:
            assert detail[0]["loc"] == loc, (body[:60], detail)
            assert says in f"{detail[0]['msg']} {detail[0].get('ctx', '')}", (body[:60], detail)
            assert "input" not in detail[0]  # the request is not echoed back


@pytest.mark.slow
def test_odd_query_texts_are_answered_not_500(bm25: Path, dense: Path,
                                              resources: Resources) -> None:  # fmt: skip
    app = app_for(resources, indexes={"bm25": bm25, "dense": dense})
    odd = ["AND", "((", 'a:b "c', "*", "\x00", "🙂 ∑", "OR NOT -", "\\", "x" * 2000]

    async def go() -> list[int]:
        async with await started(app) as c:
            return [(await c.post("/v1/search", json={"index": i, "query": q})).status_code
                    for i in ("bm25", "dense") for q in odd]  # fmt: skip

    assert set(call(go())) == {200}


@pytest.mark.slow
def test_an_api_key_guards_v1_and_metrics(bm25: Path, resources: Resources) -> None:
    app = app_for(resources, indexes={"bm25": bm25}, api_key="s3cret-key")

    async def go() -> dict[str, int | str]:
        async with await started(app) as c:
            body = {"index": "bm25", "query": "DNA"}
            none = await c.post("/v1/search", json=body)
            wrong = await c.post("/v1/search", json=body, headers={"authorization": "Bearer nope"})
            right = await c.post("/v1/search", json=body,
                                 headers={"authorization": "Bearer s3cret-key"})  # fmt: skip
            return {
                "none": none.status_code, "challenge": none.headers.get("www-authenticate", ""),
                "wrong": wrong.status_code, "right": right.status_code,
                "metrics": (await c.get("/metrics")).status_code,
                "indexes": (await c.get("/v1/indexes")).status_code,
                "healthz": (await c.get("/healthz")).status_code,
                "readyz": (await c.get("/readyz")).status_code,
            }  # fmt: skip

    assert call(go()) == {
        "none": 401, "challenge": "Bearer", "wrong": 401, "right": 200,
        "metrics": 401, "indexes": 401, "healthz": 200, "readyz": 200,
    }  # fmt: skip


def test_the_api_key_comes_from_the_environment_and_is_not_shown(
    monkeypatch: pytest.MonkeyPatch, bm25: Path
) -> None:
    monkeypatch.setenv("RARX_API_KEY", "from-env")
    config = ServeConfig(indexes={"x": bm25})
    assert config.api_key == "from-env" and "from-env" not in repr(config)
    monkeypatch.setenv("RARX_API_KEY", "")
    assert ServeConfig(indexes={"x": bm25}).api_key is None


@pytest.mark.slow
def test_no_cors_unless_asked_and_docs_are_served(bm25: Path, resources: Resources) -> None:
    origin = {"origin": "https://app.example"}

    async def go(app: Any) -> httpx.Response:
        async with await started(app) as c:
            assert (await c.get("/docs")).status_code == 200
            assert "/v1/search" in (await c.get("/openapi.json")).json()["paths"]
            return await c.get("/healthz", headers=origin)

    plain = call(go(app_for(resources, indexes={"bm25": bm25})))
    assert "access-control-allow-origin" not in plain.headers
    cors = app_for(resources, indexes={"bm25": bm25}, cors_origins=("https://app.example",))
    assert call(go(cors)).headers["access-control-allow-origin"] == "https://app.example"


@pytest.mark.slow
def test_not_ready_until_loaded_then_metrics_count(bm25: Path, resources: Resources) -> None:
    app = app_for(resources, indexes={"bm25": bm25})

    async def go() -> tuple[int, int, int, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rarx") as c:
            early = await c.post("/v1/search", json={"index": "bm25", "query": "DNA"})
            ready_early = (await c.get("/readyz")).status_code
            await app.state.rarx.start()  # the first request began the loading
            ok = (await c.post("/v1/search", json={"index": "bm25", "query": "DNA"})).status_code
            return early.status_code, ready_early, ok, (await c.get("/metrics")).text

    early, ready_early, ok, metrics = call(go())
    assert (early, ready_early, ok) == (503, 503, 200)
    assert metric(metrics, 'rarx_http_requests_total{method="POST",route="/v1/search",'
                           'status="200"}') == 1  # fmt: skip
    assert metric(metrics, 'rarx_http_errors_total{reason="not_ready"') == 1
    assert metric(metrics, 'rarx_http_request_duration_seconds_count{route="/v1/search"}') == 2
    assert metric(metrics, "rarx_ready") == 1


def test_config_names_and_paths_are_checked_at_start(bm25: Path, tmp_path: Path) -> None:
    from rarx.serve import create_app

    with pytest.raises(ConfigError, match="not allowed"):
        ServeConfig(indexes={"../x": bm25})
    with pytest.raises(ConfigError, match="nothing to serve"):
        ServeConfig()
    with pytest.raises(ConfigError, match="given twice"):
        parse_named(("a=x", "a=y"), "index")
    with pytest.raises(ConfigError, match="NAME=PATH"):
        parse_named(("just-a-path",), "index")
    with pytest.raises(Exception, match="not a rarx index|no such index"):
        create_app(ServeConfig(indexes={"x": tmp_path}, api_key=None))


# -- one real uvicorn process --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_real_server_answers_and_stops_gracefully_on_sigterm(bm25: Path, tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("w")
    here = str(Path(rarx.__file__).parents[1])  # the rarx under test, in the child too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    env.pop("RARX_API_KEY", None)
    # A lone request waits 1 s for company: long enough to be in flight at SIGTERM.
    server = subprocess.Popen(
        [sys.executable, "-m", "rarx.cli.main", "serve", "--index", f"tiny={bm25}",
         "--port", str(port), "--max-wait-ms", "1000", "--no-access-log"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=url, timeout=10) as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if c.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.2)
            answer: dict[str, Any] = {}

            def ask() -> None:
                with httpx.Client(base_url=url, timeout=10) as own:
                    answer["r"] = own.post("/v1/search", json={"index": "tiny", "query": "DNA"})

            inflight = threading.Thread(target=ask)
            inflight.start()
            while metric(c.get("/metrics").text, "rarx_requests_in_flight") < 1:
                time.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        refused = False
        for _ in range(100):  # new connections are refused once the socket closes
            try:
                httpx.get(url + "/healthz", timeout=1)
            except httpx.ConnectError:
                refused = True
                break
            except (httpx.RemoteProtocolError, httpx.ReadError):
                pass  # accepted just before the socket closed, then dropped unserved: ask again
            time.sleep(0.02)
        inflight.join(10)
        code = server.wait(20)
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
    output = (tmp_path / "server.log").read_text()
    assert refused, output
    assert answer["r"].status_code == 200, output
    assert answer["r"].json()["rankings"][0]["hits"][0]["docid"] == "d8"
    assert code == 0, output
    assert "stopped" in output


def serve_until_ready(args: list[str], log_path: Path, wait_s: float = 60) -> tuple[Any, str]:
    """``rarx serve ARGS`` in a child process (the rarx under test), once it answers
    /readyz: the process and its base URL."""
    port = _free_port()
    here = str(Path(rarx.__file__).parents[1])  # the rarx under test, in the child too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    env.pop("RARX_API_KEY", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "rarx.cli.main", "serve", *args, "--port", str(port),
         "--no-access-log"], stdout=log_path.open("w"), stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise AssertionError(f"no server: {log_path.read_text()}")
        time.sleep(0.5)


def test_serve_takes_firsts_options_only_with_a_reranker(bm25: Path) -> None:
    """``rarx serve`` and ``rarx search`` share one definition of the --rerank-* flags;
    FIRST's settings without --rerank, or on a method they do not apply to, are errors
    before anything loads."""
    from click.testing import CliRunner

    from rarx.cli.main import cli
    from rarx.cli.search import search
    from rarx.cli.serve import serve

    def flags(command: Any) -> set[str]:
        return {o for p in command.params for o in p.opts if o.startswith("--rerank")}

    assert flags(serve) == flags(search) >= {
        "--rerank", "--rerank-instruction", "--rerank-orders", "--rerank-calibrate"}  # fmt: skip
    runner = CliRunner()
    r = runner.invoke(cli, ["serve", "--index", f"tiny={bm25}", "--rerank-calibrate", "query"])
    assert r.exit_code == 2 and "--rerank-calibrate apply to a reranker; add --rerank" in r.output
    r = runner.invoke(cli, ["search", "--index", str(bm25), "--query", "x", "--rerank-orders", "2"])
    assert r.exit_code == 2 and "--rerank-orders apply to a reranker" in r.output


@pytest.mark.slow
def test_serve_cli_reranks_with_firsts_options_as_the_library_does(
    bm25: Path, resources: Resources, smol: Any, tmp_path: Path
) -> None:
    """``rarx serve --rerank first`` with the task instruction, two candidate orders and
    query-free calibration: /v1/indexes reports them, and a search with "rerank": true
    ranks as the library's search pipeline with the same settings."""
    from rarx.rerank.permutation import window_orders
    from rarx.stages.rerank import RerankParams

    instruction = "Retrieve the passage that answers the question."
    queries = [Query("a", "water sun earth cells"), Query("b", "the energy of cells and water")]
    server, url = serve_until_ready(
        ["--index", f"tiny={bm25}", "--rerank", "first", "--rerank-k", "3", "--rerank-window",
         "3", "--rerank-stride", "1", "--rerank-instruction", instruction, "--rerank-orders",
         "2", "--rerank-calibrate", "query-free"], tmp_path / "server.log", wait_s=300,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            info = c.get("/v1/indexes").json()["rerank"]
            batch = [{"qid": q.qid, "text": q.text} for q in queries]
            r = c.post("/v1/search", json={"index": "tiny", "queries": batch, "k": 3,
                                           "rerank": True})  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)
    assert (info["instruction"], info["orders"], info["calibrate"]) == (
        instruction, 2, "query-free")  # fmt: skip
    assert r.status_code == 200, r.text
    rerank = RerankParams("first", "smollm2-135m", 3, 3, 1, instruction=instruction, orders=2,
                          calibrate="query-free")  # fmt: skip
    want = search_pipeline([opened(bm25)], SearchOptions(k=3, rerank=rerank), resources).run(
        queries)  # fmt: skip
    for got, state in zip(r.json()["rankings"], want, strict=True):
        assert len(got["hits"]) == 3  # a window of three candidates to rerank
        assert [h["docid"] for h in got["hits"]] == state.ranking.top(3).docids
        (call,) = [t.data for t in state.trace if t.event == "llm_call"]  # one window
        assert [tuple(o) for o in call["meta"]["orders"]] == window_orders(3, 2)
        assert call["meta"]["calibration"]["mode"] == "query-free"


@pytest.mark.slow
def test_the_app_mounts_in_another_and_loads_on_first_use(bm25: Path, resources: Resources) -> None:
    from fastapi import FastAPI

    inner = app_for(resources, indexes={"bm25": bm25})
    outer = FastAPI(lifespan=inner.router.lifespan_context)
    outer.mount("/search", inner)

    async def go() -> tuple[int, int, dict[str, Any]]:
        transport = httpx.ASGITransport(app=outer)
        async with httpx.AsyncClient(transport=transport, base_url="http://rarx") as c:
            before = (await c.get("/search/readyz")).status_code  # begins loading
            await inner.state.rarx.start()
            after = (await c.get("/search/readyz")).status_code
            r = await c.post("/search/v1/search", json={"index": "bm25", "query": "DNA", "k": 1})
            return before, after, r.json()

    before, after, body = call(go())
    assert (before, after) == (503, 200)
    assert body["rankings"][0]["hits"][0]["docid"] == "d8"
