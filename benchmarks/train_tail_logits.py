"""What computing the output layer only over the answer tokens saves when the top layers
of a reader learn (``rarx train reader --train-layers N``).

The reader's loss reads the answer tokens only, but until this change its batches went
through transformers' default loss, which runs the LM head (vocabulary x hidden) at
every position; the answer-only collator (:func:`rarx.train.gate.collator`) now pads on
the left and passes ``logits_to_keep`` = the longest answer + 1. Both sides run the real
``rarx train reader`` command in a fresh process on the same instances and settings: the
"before" side with the tree of ``--before-rev`` (exported once with ``git archive``),
the "after" side with this tree; runs alternate (before, after, before, ...) so load on
the shared machine falls on both. The figure is the card's ``seconds`` (the Trainer's
fit: the epoch on cached frozen states, without the model load and the caching pass).

    nice -n 5 python benchmarks/train_tail_logits.py --base smollm2-135m --train-layers 2 \
        --examples 48 --batch-size 4 --pairs 3

Instances: the first ``--examples`` training questions of ``reasoning-mc`` (spread over
its sources; training data only), each with ``--k`` demonstrations drawn at random from
other training questions (timing only: which demonstrations is immaterial), in the
generate stage's multiple-choice prompt, as ``rarx train data reader`` writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import ROOT, WORK, table, write_result

NAME = "train_tail_logits"


def build_rows(out: Path, examples: int, k: int, seed: int) -> Path:
    from rarx.eval.mc_reader import LABELS, label_token, lettered, reader_prompt
    from rarx.train.data.mc import read_mc, resolve_data, split_items, spread

    train, _ = split_items(read_mc(resolve_data("reasoning-mc")))
    chosen = spread(train, examples)
    rng = random.Random(seed)
    rows = []
    for it in chosen:
        others = rng.sample([x for x in train if x.id != it.id], k)
        demos = [{"question": lettered(x.query, x.options), "answer": LABELS[x.label]}
                 for x in others]  # fmt: skip
        prompt = reader_prompt(lettered(it.query, it.options), demos)
        rows.append({"id": it.id, "source": it.source, "split": "train",
                     "messages": [list(m) for m in prompt.messages], "prefix": prompt.prefix,
                     "target": label_token(LABELS[it.label])})  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def export_tree(rev: str) -> Path:
    target = WORK / f"tree-{rev}"
    if not (target / "rarx").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "rarx"],
                                 check=True, capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def one_run(tree: Path, data: Path, out: Path, args: argparse.Namespace) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "rarx.cli.main", "train", "reader", "--demos", "--data",
           str(data), "--base", args.base, "--out", str(out), "--train-layers",
           str(args.train_layers), "--epochs", "1", "--batch-size", str(args.batch_size),
           "--dev-limit", "0", "--seed", str(args.seed), "--quiet"]  # fmt: skip
    # cwd too: `python -m` puts the working directory ahead of PYTHONPATH
    probe = "import rarx.train.gate as g; print(g.__file__)"
    where = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tree, check=True,
                           capture_output=True, text=True)  # fmt: skip
    if not where.stdout.strip().startswith(str(tree)):
        sys.exit(f"{tree}: rarx imports from {where.stdout.strip()} instead")
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True)
    card = json.loads((out / "rarx_model.json").read_text())
    losses = card["options"]["loss_history"]  # logged every 10 steps
    return {"fit_seconds": card["seconds"], "process_seconds": round(time.perf_counter() - t0, 1),
            "steps": card["steps"], "loss_logged": losses}  # fmt: skip


def reportable(data: dict[str, Any]) -> Any:
    """The report section: each side's training seconds per run and their median, and the
    after/before ratio (medians and per interleaved pair)."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, scalars

    settings = data["settings"]
    seconds = [
        Measurement(side, f"run {i + 1}", "fit seconds", r["fit_seconds"], n=r["steps"])
        for side, runs in data["runs"].items()
        for i, r in enumerate(runs)
    ]
    seconds += [Measurement(side, "median", "fit seconds", v)
                for side, v in data["median_fit_seconds"].items()]  # fmt: skip
    ratio = [Measurement("after / before", "medians", "ratio", data["ratio_after_before"])]
    ratio += [Measurement("after / before", f"pair {i + 1}", "ratio", x)
              for i, x in enumerate(data["ratio_per_pair"])]  # fmt: skip
    return Reportable("train_tail_logits", (
        Section("tail-logits-seconds", f"rarx train reader, head over the whole row (before) "
                f"or the reply only (after): {settings['base']}", tuple(seconds)),
        Section("tail-logits-ratio", "Training time, after / before", tuple(ratio),
                plot="table", note="Below 1 is faster; runs interleaved before/after."),
    ), f"{settings['base']}, top {settings['train_layers']} layers, {data['instances']} "
       "instances",
       scalars(settings, "base", "train_layers", "batch_size", "before_rev"))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--train-layers", type=int, default=2)
    ap.add_argument("--examples", type=int, default=48)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--before-rev", default="b2785ea", help="the tree before the change")
    ap.add_argument("--name", default=NAME)
    args = ap.parse_args()

    data = build_rows(WORK / NAME / "data", args.examples, args.k, args.seed)
    trees = {"before": export_tree(args.before_rev), "after": ROOT}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for p in range(args.pairs):
        for side in ("before", "after"):
            r = one_run(trees[side], data, WORK / NAME / f"{side}-{p}", args)
            runs[side].append(r)
            print(f"pair {p} {side}: {r}", flush=True)
    med = {s: statistics.median(r["fit_seconds"] for r in runs[s]) for s in runs}
    pairs = [a["fit_seconds"] / b["fit_seconds"]
             for a, b in zip(runs["after"], runs["before"], strict=True)]  # fmt: skip
    rows = [[s, len(runs[s]), runs[s][0]["steps"], f"{med[s]:.1f}",
             " ".join(f"{r['fit_seconds']:.1f}" for r in runs[s])] for s in runs]  # fmt: skip
    print(table(["side", "runs", "steps", "median fit s", "each"], rows))
    ratio = med["after"] / med["before"]
    print(
        f"after / before (medians): {ratio:.3f}; per pair: " + ", ".join(f"{x:.3f}" for x in pairs)
    )
    write_result(args.name, {
        "settings": vars(args), "instances": args.examples, "runs": runs,
        "median_fit_seconds": med, "ratio_after_before": round(ratio, 4),
        "ratio_per_pair": [round(x, 4) for x in pairs],
    }, reportable=reportable)  # fmt: skip


if __name__ == "__main__":
    main()
