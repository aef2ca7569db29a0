"""What the framework adapters and the HTTP client cost over calling rarx directly.

BM25 over CACM (built with ``rarx index``), k=10, hits with their text, 500 queries (CACM's
64 topics cycled, each with its own qid):

1. **Adapters**: queries/s of the LangChain ``RarxRetriever`` (``invoke`` per query;
   ``batch`` of all) and the LlamaIndex ``RarxRetriever`` (``retrieve`` per query;
   ``retrieve_batch``) against the same search called directly (``search_pipeline(...).run``
   with one query; with all), best of ``--repeats`` runs. Every adapter's docids are
   checked against the direct ones.
2. **Client**: a real ``rarx serve`` process on 127.0.0.1 and ``rarx.client.Client`` (one
   shared client, one query a request) against in-process search of the same index (the
   same search path under the ``Serial`` policy a server uses), at 1 and 16 concurrent
   callers (threads); queries/s and median latency. The client's answers are checked
   against the in-process ones.

The client, the server and the callers share this machine's cores.

    python benchmarks/integrations_overhead.py [--queries 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import ROOT, WORK, best_of, cacm_bm25_index, data_dir, table, write_result

from rarx.index.base import load_index
from rarx.io.topics import read_topics
from rarx.pipeline import Resources
from rarx.pipeline.search import SearchOptions, search_pipeline
from rarx.types import Query

K = 10
LEVELS = (1, 16)


def queries(n: int) -> list[Query]:
    topics = read_topics(data_dir() / "cacm" / "topics.cacm.txt")
    return [Query(f"{i}-{topics[i % len(topics)].qid}", topics[i % len(topics)].text)
            for i in range(n)]  # fmt: skip


def per_query(call: Callable[[Query], list[str]], qs: Sequence[Query]) -> list[list[str]]:
    return [call(q) for q in qs]


def adapters(index_path: Path, qs: list[Query], repeats: int) -> tuple[list[dict], dict]:
    from rarx.integrations.langchain import RarxRetriever as LangChainRetriever
    from rarx.integrations.llama_index import RarxRetriever as LlamaIndexRetriever

    resources = Resources()
    index = resources.index(index_path)
    direct = search_pipeline([index], SearchOptions(k=K, docs=True), resources)
    lc = LangChainRetriever(indexes=[str(index_path)], k=K, resources=resources)
    li = LlamaIndexRetriever(indexes=[str(index_path)], k=K, resources=resources)
    texts = [q.text for q in qs]

    def one(q: Query) -> list[str]:
        return direct.run([q])[0].ranking.top(K).docids

    def many() -> list[list[str]]:
        return [s.ranking.top(K).docids for s in direct.run(qs)]

    cases: dict[str, tuple[str, Callable[[], list[list[str]]]]] = {
        "direct, one query a call": ("one", lambda: per_query(one, qs)),
        "LangChain invoke": ("one", lambda: [[d.metadata["docid"] for d in lc.invoke(t)]
                                             for t in texts]),
        "LlamaIndex retrieve": ("one", lambda: [[n.node.node_id for n in li.retrieve(t)]
                                                for t in texts]),
        "direct, all queries in one call": ("batch", many),
        "LangChain batch": ("batch", lambda: [[d.metadata["docid"] for d in ds]
                                              for ds in lc.batch(texts)]),
        "LlamaIndex retrieve_batch": ("batch", lambda: [[n.node.node_id for n in ns]
                                                        for ns in li.retrieve_batch(texts)]),
    }  # fmt: skip
    many()  # warm: the JVM's JIT, the docid table, both call shapes
    per_query(one, qs[:100])
    rows: list[dict[str, Any]] = []
    seconds: dict[str, float] = dict.fromkeys(cases, float("inf"))
    answers: dict[str, Any] = {}
    for _ in range(repeats):  # round-robin, so a noisy spell on the machine hits every path
        for name, (_, fn) in cases.items():
            wall, answers[name] = best_of(fn, 1)
            seconds[name] = min(seconds[name], wall)
    want = answers["direct, one query a call"]
    for name, (mode, _) in cases.items():
        base = "direct, one query a call" if mode == "one" else "direct, all queries in one call"
        rows.append({
            "path": name, "mode": mode, "seconds": round(seconds[name], 4),
            "queries_per_s": round(len(qs) / seconds[name], 1),
            "ms_per_query": round(1000 * seconds[name] / len(qs), 3),
            "added_ms_per_query": round(1000 * (seconds[name] - seconds[base]) / len(qs), 3),
            "vs_direct": round(seconds[base] / seconds[name], 3),
            "same_docids": answers[name] == want,
        })  # fmt: skip
    return rows, {"queries": len(qs), "k": K, "repeats": repeats}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_calls(call: Callable[[Query], list[str]], qs: list[Query],
                callers: int) -> tuple[float, list[float], list[list[str]]]:  # fmt: skip
    """``callers`` threads sharing the queries; wall time, each call's latency, answers."""
    latencies: list[float] = [0.0] * len(qs)
    answers: list[list[str]] = [[] for _ in qs]

    def work(i: int) -> None:
        t = time.perf_counter()
        answers[i] = call(qs[i])
        latencies[i] = time.perf_counter() - t

    start = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(work, range(len(qs))))
    return time.perf_counter() - start, latencies, answers


SERVERS = {  # label -> rarx serve options
    "defaults": [],  # a lone request waits up to 5 ms for others to batch with
    "--max-wait-ms 0": ["--max-wait-ms", "0"],
}


def client_vs_local(index_path: Path, qs: list[Query], repeats: int) -> list[dict[str, Any]]:
    rows = []
    for label, options in SERVERS.items():
        rows += [{"server": label, **r} for r in _client_vs_local(index_path, qs, repeats, options)]
    return rows


def _client_vs_local(index_path: Path, qs: list[Query], repeats: int,
                     options: list[str]) -> list[dict[str, Any]]:  # fmt: skip
    from rarx.client import Client

    port = _free_port()
    log = (WORK / "integrations-serve.log").open("w")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("RARX_API_KEY", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "rarx.cli.main", "serve", "--index", f"cacm={index_path}",
         "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--quiet", *options],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    rows = []
    try:
        client = Client(f"http://127.0.0.1:{port}", timeout=120)
        client.wait_ready(120)
        resources = Resources()  # Serial, as the server's
        local = search_pipeline([resources.index(index_path)], SearchOptions(k=K, docs=True),
                                resources)  # fmt: skip

        def in_process(q: Query) -> list[str]:
            return local.run([q])[0].ranking.top(K).docids

        def over_http(q: Query) -> list[str]:
            return client.search(q, index="cacm", k=K).docids

        for call in (in_process, over_http):
            timed_calls(call, qs[:50], 4)  # warm both sides
        for callers in LEVELS:
            results: dict[str, Any] = {}
            for _ in range(repeats):  # round-robin, keeping each path's fastest run
                for name, call in (("in-process", in_process), ("client", over_http)):
                    run = timed_calls(call, qs, callers)
                    if name not in results or run[0] < results[name][0]:
                        results[name] = run
            base = results["in-process"][0]
            for name, (wall, latencies, answers) in results.items():
                rows.append({
                    "path": name, "callers": callers, "seconds": round(wall, 4),
                    "queries_per_s": round(len(qs) / wall, 1),
                    "p50_ms": round(1000 * statistics.median(latencies), 3),
                    "vs_in_process": round(base / wall, 3),
                    "same_docids": answers == results["in-process"][2],
                })  # fmt: skip
        client.close()
    finally:
        server.terminate()
        server.wait(60)
        log.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    index_path = cacm_bm25_index()
    index = load_index(index_path)
    qs = queries(args.queries)
    adapter_rows, setup = adapters(index_path, qs, args.repeats)
    print(f"\nAdapters vs direct: BM25 CACM ({index.manifest.documents:,} documents), "
          f"{len(qs)} queries, k={K}, best of {args.repeats}")  # fmt: skip
    print(table(["path", "queries/s", "ms/query", "added ms", "vs direct", "same docids"],
                [(r["path"], r["queries_per_s"], r["ms_per_query"], r["added_ms_per_query"],
                  r["vs_direct"], r["same_docids"]) for r in adapter_rows]))  # fmt: skip
    client_rows = client_vs_local(index_path, qs, args.repeats)
    print(f"\nClient (rarx serve on 127.0.0.1) vs in-process search, {len(qs)} queries, "
          f"one a call, best of {args.repeats}")  # fmt: skip
    print(table(["server", "path", "callers", "queries/s", "p50 ms", "vs in-process",
                 "same docids"],
                [(r["server"], r["path"], r["callers"], r["queries_per_s"], r["p50_ms"],
                  r["vs_in_process"], r["same_docids"]) for r in client_rows]))  # fmt: skip
    write_result("integrations_overhead", reportable=reportable, payload={
        "setup": {**setup, "index": "CACM BM25 (rarx index)", "documents": index.manifest.documents,
                  "queries_from": "CACM's 64 topics, cycled", "cpus": os.cpu_count()},
        "adapters": adapter_rows, "client": client_rows,
        "seconds_total": round(time.perf_counter() - start, 1),
    })  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: queries per second through the LangChain / LlamaIndex
    adapters and through the HTTP client, against calling rarx directly."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section, scalars

    setup = data["setup"]
    adapters = [M(a["path"], a["mode"], "queries/s", a["queries_per_s"], n=setup["queries"])
                for a in data["adapters"]]  # fmt: skip
    client = [M(c["path"], f"{c['server']}, {c['callers']} caller(s)", "queries/s",
                c["queries_per_s"], n=setup["queries"]) for c in data["client"]]  # fmt: skip
    return Reportable("integrations_overhead", (
        Section("integrations-adapters", "Integrations: LangChain and LlamaIndex adapters",
                tuple(adapters)),
        Section("integrations-client", "Integrations: the HTTP client against in-process",
                tuple(client)),
    ), setup["index"], scalars(setup, "queries", "k", "repeats", "cpus"))


if __name__ == "__main__":
    main()
