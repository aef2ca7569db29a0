"""What cached frozen states save when only the top N decoder layers learn.

For each N, one epoch of ``rarx train choice``'s training (FIRST's loss on llm-choice's
prompt, transformers' Trainer, AdamW) on the same fixed questions, twice on the same
loaded model: on the full model (the layers below run forward every step, without
gradients), and on cached states (the caching pass runs the layers below once per
question, then the epoch runs the top N layers only). Times are the process's CPU
seconds, all threads (the machine is shared; wall seconds are recorded too). The
learning rate is 0, so both runs see the same weights and the same seeded batches: their
per-step losses must agree, and the table shows the largest difference.

    nice -n 10 python benchmarks/train_cached_states.py --base qwen2.5-coder-1.5b \
        --questions 8 --layers 2,4,8

The questions are the first ``--questions`` of ``reasoning-mc``'s training split spread
over its sources (training data only; no evaluation set). ``--resume`` keeps the N
already in the results file. Float32 on the CPU; check ``free -g`` first (about 7 GB for
the model plus AdamW state and gradients of the trained layers: 12 GB at N = 8 for
qwen2.5-coder-1.5b).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from functools import partial
from typing import Any

from benchmarks.common import RESULTS, WORK, table, write_result

NAME = "train_cached_states"


def rows_for(llm: Any, questions: int) -> list[Any]:
    from rarx.train.choice import ChoiceEncoder
    from rarx.train.data.mc import read_mc, resolve_data, split_items, spread

    train, _ = split_items(read_mc(resolve_data("reasoning-mc")))
    items = spread(train, questions)
    encoder = ChoiceEncoder(llm)
    return [encoder.encode(it) for it in items]


def one_epoch(model: Any, llm: Any, rows: list[Any], n: int, cached: bool, batch: int) -> dict:
    from rarx.train.choice import ChoiceEncoder
    from rarx.train.common import TrainOptions, fit, training_arguments
    from rarx.train.first import collate, first_trainer
    from rarx.train.frozen_states import cached_training

    out = WORK / NAME
    opts = TrainOptions(data="reasoning-mc", base="bench", out=out, epochs=1.0, lr=0.0,
                        batch_size=batch, save_steps=10**6, quiet=True)  # fmt: skip
    args = training_arguments(opts, remove_unused_columns=False, label_names=["targets"],
                              logging_steps=1, save_strategy="no")  # fmt: skip
    pad_id = llm.tokenizer.pad_token_id
    id_tokens = ChoiceEncoder(llm).id_tokens(max(len(r.ranks) for r in rows))
    collate_rows = partial(collate, pad_id=pad_id)
    cache = None
    if cached:
        c0 = time.process_time()
        cache = cached_training(model, rows, collate_rows, n, "memory", out, "cpu", quiet=True)
        caching_cpu = time.process_time() - c0
        trainer = first_trainer(model, args, cache.dataset, cache.collate, id_tokens, 1.0, 10.0)
        c0 = time.process_time()
        with cache.top_only():
            result = fit(trainer, opts)
    else:
        caching_cpu = 0.0
        trainer = first_trainer(model, args, list(rows), collate_rows, id_tokens, 1.0, 10.0)
        c0 = time.process_time()
        result = fit(trainer, opts)
    epoch_cpu = time.process_time() - c0
    report = cache.finish() if cache else None
    del trainer, cache
    gc.collect()
    return {"epoch_s": result.seconds, "epoch_cpu_s": round(epoch_cpu, 1),
            "caching_cpu_s": round(caching_cpu, 1), "steps": result.steps,
            "losses": result.loss_history, "cache": report}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="qwen2.5-coder-1.5b")
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--layers", default="2,4,8")
    ap.add_argument("--resume", action="store_true", help="keep the N already measured")
    ap.add_argument("--name", default=NAME, help="results file name (benchmarks/results/NAME.json)")
    a = ap.parse_args()

    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.train.causal import trainable
    from rarx.train.common import seed_everything

    path = RESULTS / f"{a.name}.json"
    done: dict[str, Any] = {}
    if a.resume and path.is_file():
        done = {str(r["train_layers"]): r for r in json.loads(path.read_text())["runs"]}
    seed_everything(42)
    t_load = time.perf_counter()
    llm = TransformersLLM(a.base, device="cpu", quiet=True)
    load_s = time.perf_counter() - t_load
    rows = rows_for(llm, a.questions)
    tokens = sum(len(r.input_ids) for r in rows)
    total_layers = len(llm.model.model.layers)
    print(f"{a.base}: {total_layers} layers, loaded in {load_s:.0f} s; {len(rows)} questions, "
          f"{tokens} tokens, batch {a.batch_size}")  # fmt: skip

    def save() -> None:
        runs = [done[k] for k in sorted(done, key=int)]
        write_result(a.name, reportable=reportable, payload={
            "base": a.base, "dtype": "float32", "device": "cpu", "questions": len(rows),
            "tokens": tokens, "batch_size": a.batch_size, "decoder_layers": total_layers,
            "source": "reasoning-mc train split (spread over its sources)",
            "objective": "choice (FIRST loss on llm-choice's prompt), lr 0, 1 epoch",
            "runs": runs,
        })  # fmt: skip

    for n in [int(x) for x in a.layers.split(",")]:
        if str(n) in done:
            continue
        model = trainable(llm.model, train_layers=n)
        full = one_epoch(model, llm, rows, n, cached=False, batch=a.batch_size)
        cached = one_epoch(model, llm, rows, n, cached=True, batch=a.batch_size)
        diff = max((abs(x - y) for x, y in zip(full["losses"], cached["losses"], strict=True)),
                   default=None)  # fmt: skip
        caching_s = cached["cache"]["seconds"]
        f_cpu, c_cpu, t_cpu = full["epoch_cpu_s"], cached["caching_cpu_s"], cached["epoch_cpu_s"]
        done[str(n)] = {
            "train_layers": n, "steps": full["steps"],
            "wall_s": {"full_epoch": full["epoch_s"], "caching": caching_s,
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
        save()  # partial results after every N
    cols = ["N", "full epoch cpu s", "caching cpu s", "cached epoch cpu s", "epoch x",
            "1 ep incl. cache x", "3 ep incl. cache x", "epoch x (wall)", "cache MB",
            "max |loss diff|"]  # fmt: skip
    rows_out = []
    for r in (done[k] for k in sorted(done, key=int)):
        c = r["cpu_s"]
        rows_out.append([r["train_layers"], c["full_epoch"], c["caching"], c["cached_epoch"],
                         r["epoch_speedup_cpu"], r["speedup_1_epoch_incl_caching_cpu"],
                         r["speedup_3_epochs_incl_caching_cpu"], r["epoch_speedup_wall"],
                         r["cache_mb"], f"{r['max_step_loss_diff']:.2e}"])  # fmt: skip
    print(table(cols, rows_out))

def reportable(data: dict[str, Any]) -> Any:
    """The report section: per number of trained top layers, the epoch speed-up (CPU and
    wall) and with the caching pass for 1 and 3 epochs, seconds per part, cache size and
    the largest per-step loss difference between cached and full (a line per measure)."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, scalars

    speed, seconds, check = [], [], []
    for r in data["runs"]:
        x = f"top {r['train_layers']} of {data['decoder_layers']}"
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
