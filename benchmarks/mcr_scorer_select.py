"""Choose an LLM's MCR scorer on clean data: ARC-Challenge *validation* questions (a
training source of ``reasoning-mc``, a different split from RAR-b's ARC-C test file), so
no RAR-b test file decides which scorer the test tables report. Speed per dtype too.

    RARX_DATA=/work/shared/data python benchmarks/mcr_scorer_select.py \\
        --llm qwen2.5-coder-1.5b --n 120 --dtypes bfloat16 --scorers choice,mean,pmi

Writes results/mcr_scorer_select.json: accuracy (with a normal 95% interval) and seconds
per question for every (dtype, scorer).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from common import table, write_result

from rarx.eval.datasets.base import McrItem
from rarx.eval.mcr_scorers import evaluate_mcr, load_scorer
from rarx.eval.report_schema import mc_chance
from rarx.llm import load_llm
from rarx.train.data.mc import build_mc


def val_chance(n: int) -> float | None:
    """Accuracy of guessing on the first ``n`` ARC-Challenge validation questions (the
    mean of 1/options); None where the packaged data cannot be read."""
    from rarx.eval.report_schema import mc_chance

    try:
        examples, _ = build_mc(sources=["arc-challenge-val"])
    except Exception:  # noqa: BLE001 - the data package is optional for reading results
        return None
    return mc_chance([len(e.options) for e in examples[:n]])


def reportable(data: dict[str, Any]) -> Any:
    """The report section: accuracy per scorer and dtype (the file's normal 95% interval,
    chance), and seconds per question."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    settings = data["settings"]
    chance = settings.get("chance") or val_chance(settings["n"])
    acc = [Measurement(e["scorer"], e["dtype"], "accuracy", e["accuracy"],
                       interval(e["ci95"]), e["n"], chance) for e in data["entries"]]  # fmt: skip
    secs = [Measurement(e["scorer"], e["dtype"], "seconds per question", e["s_per_question"],
                        n=e["n"]) for e in data["entries"]]  # fmt: skip
    return Reportable("mcr_scorer_select", (
        Section("mcr-scorer-select", f"{settings['llm']}'s MCR scorer on ARC-C validation "
                "(not a RAR-b test file)", tuple(acc + secs),
                note="Intervals: normal approximation, as the file holds them."),
    ), f"{settings['llm']} on {settings['data']}", scalars(settings))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", default="qwen2.5-coder-1.5b")
    ap.add_argument("--n", type=int, default=120, help="first N validation questions")
    ap.add_argument("--dtypes", default="bfloat16", help="comma-separated, e.g. bfloat16,float32")
    ap.add_argument("--scorers", default="choice,mean,pmi", help="choice and likelihood norms")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    examples, _ = build_mc(sources=["arc-challenge-val"])
    items = [McrItem(e.instruction, e.query, tuple(e.options), e.label) for e in examples]
    items = items[: args.n]
    rows, entries = [], []
    for dtype in args.dtypes.split(","):
        llm = load_llm(args.llm, batch_size=args.batch_size, dtype=dtype, device=args.device)
        for name in args.scorers.split(","):
            if name == "choice":
                scorer: Any = load_scorer("llm-choice", llm)
            else:
                base = load_scorer("llm-likelihood", llm, batch_size=args.batch_size)
                scorer = base.with_normalize(name)
            t = time.perf_counter()
            acc = evaluate_mcr(scorer, items).accuracy
            per_q = (time.perf_counter() - t) / len(items)
            half = 1.96 * math.sqrt(acc * (1 - acc) / len(items))
            entries.append({"dtype": dtype, "scorer": name, "n": len(items), "accuracy": acc,
                            "ci95": [acc - half, acc + half], "s_per_question": per_q})  # fmt: skip
            rows.append([dtype, name, len(items), f"{acc:.4f}", f"{per_q:.2f}"])
            print(rows[-1], flush=True)
        del llm
    print(table(["dtype", "scorer", "n", "accuracy", "s/question"], rows))
    write_result("mcr_scorer_select", {
        "settings": {"llm": args.llm, "data": "arc-challenge-val (reasoning-mc source)",
                     "n": len(items), "device": args.device, "batch_size": args.batch_size,
                     "chance": mc_chance([len(it.options) for it in items])},
        "entries": entries}, reportable)  # fmt: skip


if __name__ == "__main__":
    main()
