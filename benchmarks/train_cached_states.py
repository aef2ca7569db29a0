"""What cached frozen states save when only the top N decoder layers learn, with the
caching pass in float32 and in bfloat16.

For each N, one epoch of ``rarx train choice``'s training (FIRST's loss on llm-choice's
prompt, transformers' Trainer, AdamW) on the same fixed questions, twice on the same
loaded model: on the full model (the layers below run forward every step, without
gradients), and on cached states (the caching pass runs the layers below once per
question, then the epoch runs the top N layers only). Times are the process's CPU
seconds, all threads (the machine is shared; wall seconds are recorded too). The
learning rate is 0, so both runs see the same weights and the same seeded batches: their
per-step losses must agree, and the table shows the largest difference.

``--cache-dtypes float32,bfloat16`` runs the cached epoch once per dtype of the caching
pass (``rarx train --cache-dtype``; the states and the top layers stay float32). A
bfloat16 row also times a float32 caching pass back to back with its own (the
``paired_float32`` figures), so the two passes' CPU seconds are compared under the same
load; its loss difference is against the full float32 epoch.

    nice -n 5 python benchmarks/train_cached_states.py --base qwen2.5-coder-1.5b \
        --questions 4 --batch-size 2 --layers 2,4,8 --cache-dtypes float32,bfloat16 --resume
    nice -n 5 python benchmarks/train_cached_states.py --base qwen2.5-coder-1.5b \
        --questions 48 --batch-size 8 --layers 4 --cache-dtypes float32,bfloat16 \
        --name train_cached_states_q48

The questions are the first ``--questions`` of ``reasoning-mc``'s training split spread
over its sources (training data only; no evaluation set). ``--resume`` keeps the (N,
dtype) rows already in the results file (rows without a dtype are float32) and reuses a
row's full epoch for the other dtype of the same N. The model is float32 on the CPU;
check ``free -g`` first (about 7 GB for the model plus AdamW state and gradients of the
trained layers: 12 GB at N = 8 for qwen2.5-coder-1.5b; a bfloat16 caching pass holds a
bfloat16 copy of the layers below the split while it runs, about 3 GB more).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from functools import partial
from typing import Any

from common import RESULTS, WORK, table, write_result

NAME = "train_cached_states"


def rows_for(llm: Any, questions: int) -> list[Any]:
    from rarx.train.choice import ChoiceEncoder
    from rarx.train.data.mc import read_mc, resolve_data, split_items, spread

    train, _ = split_items(read_mc(resolve_data("reasoning-mc")))
    items = spread(train, questions)
    encoder = ChoiceEncoder(llm)
    return [encoder.encode(it) for it in items]


def one_epoch(
    model: Any, llm: Any, rows: list[Any], n: int, cached: bool, batch: int,
    cache_dtype: str = "float32",
) -> dict:  # fmt: skip
    from rarx.train.common import TrainOptions, fit, training_arguments
    from rarx.train.first import collate, first_trainer
    from rarx.train.frozen_states import cached_training

    out = WORK / NAME
    opts = TrainOptions(data="reasoning-mc", base="bench", out=out, epochs=1.0, lr=0.0,
                        batch_size=batch, save_steps=10**6, quiet=True)  # fmt: skip
    args = training_arguments(opts, remove_unused_columns=False, label_names=["targets"],
                              logging_steps=1, save_strategy="no")  # fmt: skip
    pad_id = llm.tokenizer.pad_token_id
    collate_rows = partial(collate, pad_id=pad_id)
    cache = None
    if cached:
        c0 = time.process_time()
        cache = cached_training(model, rows, collate_rows, n, "memory", out, "cpu", quiet=True,
                                cache_dtype=cache_dtype)  # fmt: skip
        caching_cpu = time.process_time() - c0
        trainer = first_trainer(model, args, cache.dataset, cache.collate, 1.0, 10.0)
        c0 = time.process_time()
        with cache.top_only():
            result = fit(trainer, opts)
    else:
        caching_cpu = 0.0
        trainer = first_trainer(model, args, list(rows), collate_rows, 1.0, 10.0)
        c0 = time.process_time()
        result = fit(trainer, opts)
    epoch_cpu = time.process_time() - c0
    report = cache.finish() if cache else None
    del trainer, cache
    gc.collect()
    return {"epoch_s": result.seconds, "epoch_cpu_s": round(epoch_cpu, 1),
            "caching_cpu_s": round(caching_cpu, 1), "steps": result.steps,
            "losses": result.loss_history, "cache": report}  # fmt: skip


def caching_pass(model: Any, rows: list[Any], n: int, dtype: str) -> dict[str, float]:
    """The caching pass alone (the paired timing of a bfloat16 row)."""
    from rarx.train.cache_dtype import choose_cache_dtype
    from rarx.train.frozen_states import cache_states, split_layer

    c0, t0 = time.process_time(), time.perf_counter()
    cache_states(model, [r.input_ids for r in rows], split_layer(model, n),
                 dtype=choose_cache_dtype(dtype, "cpu"))  # fmt: skip
    return {"cpu_s": round(time.process_time() - c0, 1),
            "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip


def row_key(r: dict[str, Any]) -> str:
    return f"{r['train_layers']}/{r.get('cache_dtype', 'float32')}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="qwen2.5-coder-1.5b")
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--layers", default="2,4,8")
    ap.add_argument(
        "--cache-dtypes",
        default="float32",
        help="comma-separated dtypes of the caching pass (float32, bfloat16)",
    )
    ap.add_argument("--resume", action="store_true", help="keep the (N, dtype) rows measured")
    ap.add_argument("--name", default=NAME, help="results file name (benchmarks/results/NAME.json)")
    a = ap.parse_args()

    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.train.cache_dtype import CACHE_DTYPES, bf16_is_fast
    from rarx.train.causal import trainable
    from rarx.train.common import seed_everything

    dtypes = [d for d in a.cache_dtypes.split(",") if d]
    if not dtypes or any(d not in CACHE_DTYPES[1:] for d in dtypes):
        ap.error(f"--cache-dtypes: float32 and/or bfloat16, got {a.cache_dtypes!r}")
    path = RESULTS / f"{a.name}.json"
    done: dict[str, Any] = {}
    if a.resume and path.is_file():
        old = json.loads(path.read_text())
        if (old["questions"], old["batch_size"], old["base"]) != (a.questions, a.batch_size,
                                                                    a.base):  # fmt: skip
            ap.error(
                f"--resume: {path} holds {old['questions']} questions, batch "
                f"{old['batch_size']}, {old['base']}; run with those or another --name"
            )
        done = {row_key(r): {"cache_dtype": "float32", **r} for r in old["runs"]}
    seed_everything(42)
    t_load = time.perf_counter()
    llm = TransformersLLM(a.base, device="cpu", quiet=True)
    load_s = time.perf_counter() - t_load
    rows = rows_for(llm, a.questions)
    tokens = sum(len(r.input_ids) for r in rows)
    total_layers = len(llm.model.model.layers)
    fast, why = bf16_is_fast("cpu")
    print(
        f"{a.base}: {total_layers} layers, loaded in {load_s:.0f} s; {len(rows)} questions, "
        f"{tokens} tokens, batch {a.batch_size}; bfloat16 {'fast' if fast else 'slow'}: {why}"
    )

    def ordered() -> list[dict[str, Any]]:
        return [done[k] for k in sorted(done, key=lambda k: (int(k.split("/")[0]), k))]

    def save() -> None:
        write_result(a.name, reportable=reportable, payload={
            "base": a.base, "dtype": "float32", "device": "cpu", "questions": len(rows),
            "tokens": tokens, "batch_size": a.batch_size, "decoder_layers": total_layers,
            "bfloat16_units": {"fast": fast, "why": why},
            "source": "reasoning-mc train split (spread over its sources)",
            "objective": "choice (FIRST loss on llm-choice's prompt), lr 0, 1 epoch",
            "dtype_note": "dtype is the model's; cache_dtype the caching pass's (states and "
                          "top layers float32); rows without a date were measured in the "
                          "file's first run, 2026-12-06T18:24",
            "runs": ordered(),
        })  # fmt: skip

    for n in [int(x) for x in a.layers.split(",")]:
        todo = [d for d in dtypes if f"{n}/{d}" not in done]
        if not todo:
            continue
        model = trainable(llm.model, train_layers=n)
        # The full epoch does not depend on the cache's dtype: one per N.
        full = next((r["full"] for r in done.values()
                     if r["train_layers"] == n and "full" in r), None)  # fmt: skip
        if full is None:
            earlier = next((r for r in done.values() if r["train_layers"] == n), None)
            if earlier is not None:  # a row of the file's first layout
                full = {"epoch_s": earlier["wall_s"]["full_epoch"],
                        "epoch_cpu_s": earlier["cpu_s"]["full_epoch"],
                        "steps": earlier["steps"], "losses": earlier["losses_full"],
                        "date": earlier.get("date", "2026-12-06T18:24")}  # fmt: skip
            else:
                measured = one_epoch(model, llm, rows, n, cached=False, batch=a.batch_size)
                full = {k: measured[k] for k in ("epoch_s", "epoch_cpu_s", "steps", "losses")}
                full["date"] = time.strftime("%Y-%m-%dT%H:%M")
        float32_pass: dict[str, float] | None = None
        for dtype in todo:
            paired = None
            if dtype == "bfloat16":
                paired = float32_pass or caching_pass(model, rows, n, "float32")
            cached = one_epoch(model, llm, rows, n, cached=True, batch=a.batch_size,
                               cache_dtype=dtype)  # fmt: skip
            if dtype == "float32":
                float32_pass = {"cpu_s": cached["caching_cpu_s"],
                                "wall_s": cached["cache"]["seconds"]}  # fmt: skip
            done[f"{n}/{dtype}"] = record(n, dtype, full, cached, paired)
            save()  # partial results after every row
    print(table(*summary(ordered()), places=2))


def record(n: int, dtype: str, full: dict, cached: dict, paired: dict | None) -> dict:
    diff = max((abs(x - y) for x, y in zip(full["losses"], cached["losses"], strict=True)),
               default=None)  # fmt: skip
    f_cpu, c_cpu, t_cpu = full["epoch_cpu_s"], cached["caching_cpu_s"], cached["epoch_cpu_s"]
    out = {
        "train_layers": n, "cache_dtype": cached["cache"]["dtype"], "asked": dtype,
        "date": time.strftime("%Y-%m-%dT%H:%M"), "steps": full["steps"], "full": full,
        "wall_s": {"full_epoch": full["epoch_s"], "caching": cached["cache"]["seconds"],
                   "cached_epoch": cached["epoch_s"]},
        "cpu_s": {"full_epoch": f_cpu, "caching": c_cpu, "cached_epoch": t_cpu},
        "epoch_speedup_cpu": round(f_cpu / t_cpu, 2),
        "speedup_1_epoch_incl_caching_cpu": round(f_cpu / (c_cpu + t_cpu), 2),
        "speedup_3_epochs_incl_caching_cpu": round(3 * f_cpu / (c_cpu + 3 * t_cpu), 2),
        "epoch_speedup_wall": round(full["epoch_s"] / cached["epoch_s"], 2),
        "cache_mb": round(cached["cache"]["bytes"] / 1e6, 1),
        "max_step_loss_diff": diff, "losses_full": full["losses"],
        "losses_cached": cached["losses"],
    }  # fmt: skip
    if paired is not None:
        out["paired_float32"] = {
            "caching_cpu_s": paired["cpu_s"], "caching_wall_s": paired["wall_s"],
            "caching_speedup_cpu": round(paired["cpu_s"] / c_cpu, 2),
            "caching_speedup_wall": round(paired["wall_s"] / cached["cache"]["seconds"], 2),
        }  # fmt: skip
    return out


def summary(runs: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    cols = ["N", "cache dtype", "full epoch cpu s", "caching cpu s", "cached epoch cpu s",
            "epoch x", "1 ep incl. cache x", "3 ep incl. cache x", "caching x vs fp32 (paired)",
            "cache MB", "max |loss diff|"]  # fmt: skip
    out = []
    for r in runs:
        c = r["cpu_s"]
        pair = r.get("paired_float32", {}).get("caching_speedup_cpu", "-")
        out.append([r["train_layers"], r["cache_dtype"], c["full_epoch"], c["caching"],
                    c["cached_epoch"], r["epoch_speedup_cpu"],
                    r["speedup_1_epoch_incl_caching_cpu"], r["speedup_3_epochs_incl_caching_cpu"],
                    pair, r["cache_mb"], f"{r['max_step_loss_diff']:.2e}"])  # fmt: skip
    return cols, out


def reportable(data: dict[str, Any]) -> Any:
    """The report section: per number of trained top layers, the epoch speed-up (CPU and
    wall) and with the caching pass for 1 and 3 epochs, seconds per part, cache size and
    the largest per-step loss difference between cached and full (a line per measure)."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, scalars

    speed, seconds, check = [], [], []
    for r in data["runs"]:
        x = (f"top {r['train_layers']} of {data['decoder_layers']}, "
             f"{r.get('cache_dtype', 'float32')} pass")  # fmt: skip
        for m in ("epoch_speedup_cpu", "epoch_speedup_wall", "speedup_1_epoch_incl_caching_cpu",
                  "speedup_3_epochs_incl_caching_cpu"):  # fmt: skip
            if r.get(m) is not None:
                speed.append(Measurement(m.replace("_", " "), x, "speed-up (x)", r[m],
                                         n=r["steps"]))  # fmt: skip
        for clock in ("cpu_s", "wall_s"):
            for part, v in r[clock].items():
                seconds.append(Measurement(part.replace("_", " "), x, clock, v, n=r["steps"]))
        check.append(Measurement("cached vs full", x, "max |step loss difference|",
                                 r["max_step_loss_diff"], n=r["steps"]))  # fmt: skip
        check.append(Measurement("cache", x, "cache MB", r["cache_mb"]))
    return Reportable("train_cached_states", (
        Section("cached-states-speedup", f"Top-layer training on cached frozen states: "
                f"{data['base']}", tuple(speed), plot="lines",
                note="1.0 is no gain; 'incl caching' counts the caching pass once."),
        Section("cached-states-seconds", "Cached frozen states: seconds per part",
                tuple(seconds)),
        Section("cached-states-check", "Cached frozen states: equality and size",
                tuple(check), plot="table"),
    ), f"{data['objective']} on {data['base']}, {data['questions']} questions",
        scalars(data, "base", "dtype", "device", "questions", "tokens", "batch_size"))


if __name__ == "__main__":
    main()
