"""Adapt-LLM (Labruna et al., "When to Retrieve") on CPU: build the gate data, train
the <RET> gate (time-limited), and evaluate NR / AR / Adapt and dev-calibrated threshold
gates on held-out SciQ and SQuAD questions, each with its own corpus as the retrieval
source.

    nice -n 10 .venv/bin/python benchmarks/adapt_llm.py [--limit 150] [--max-minutes 20]

The 1.5B model, with every LLM that only generates or scores (gate data, evaluation)
through the int8 ctranslate2 backend; training stays on transformers and the trained
directory is converted once into the ctranslate2 cache:

    nice -n 5 .venv/bin/python benchmarks/adapt_llm.py --base qwen2.5-coder-1.5b \
        --backend ctranslate2 --name adapt_llm_qwen --limit 300 --dev-limit 100 \
        --train-layers 4 --max-minutes 60 --resume

Every step is the real command line (printed before it runs), and a step whose output
exists is reused (delete benchmarks/work/NAME/ to start over):

1. ``rarx train data gate --questions sciq,squad``: the base model answers the train and
   dev questions closed-book (train: at most --train-limit per source); the answers are
   kept as they come, so a stopped build resumes.
2. ``rarx train gate``: fine-tuning (all layers, or the top --train-layers), stopped by
   --max-minutes; with --resume it continues from its newest checkpoint.
3. ``rarx eval adaptive`` per dataset on the test split (never trained on), thresholds
   calibrated on the dev split; every answer, decision and P(<RET>) is kept in a
   checkpoint as it is made, so the same command again resumes it.

BoolQ (``--datasets sciq,squad,boolq``) is the yes/no set where the 1.5B model's
closed-book accuracy sits mid-range (``closed_book.py``), which issue 25's targets need
on two sets. The gate may be trained on sciq,squad only: BoolQ is then a transfer set,
as Adapt-LLM's paper tests on PopQA (``transfer`` in the goals). Its replies are right
when their first yes/no word is the gold one (:func:`rarx.eval.qa.answer_correct`, the
rule of the gate data's labels too). Adding a dataset adds only its evaluation step: the
gate data and the trained gate are reused.

Seconds: a reused step counts what its own run recorded (the data manifest's ``seconds``,
only the last piece's when the build resumed; the evaluation file's ``seconds.total``).
``seconds.train`` is what the gate's card records (the training loop over every
``--resume`` piece, the caching pass, the probe, the dev scoring before training; itemised
in ``train_recorded``), whichever run trained it; ``train_wall_this_run`` is this run's
own wall time for the step (0 when it reused the trained gate).

Untrained reference: pipeline_gating.py (the packaged model never writes <RET>).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from common import WORK, rarx_cli, table, write_result


def step(args: list[str], done: bool) -> float:
    """Run one rarx command unless its output exists; its wall time (0 when reused)."""
    print(("reusing: " if done else "$ ") + "rarx " + " ".join(args), flush=True)
    if done:
        return 0.0
    t = time.perf_counter()
    rarx_cli(*args)
    return round(time.perf_counter() - t, 1)


def training_seconds(card: dict[str, Any]) -> dict[str, float]:
    """The seconds the gate's training took as its card records them, whichever run of
    this script did it and in however many ``--resume`` pieces: the training loop over
    every piece (``seconds``), the frozen-state caching pass, the <RET> row probe and the
    base model's dev scoring (each kept on disk and reused by a later piece, with the
    seconds it took), and their sum (``total``). Loading the model and scoring the
    trained one are not in the card."""
    options, metrics = card.get("options") or {}, card.get("metrics") or {}
    parts = {
        "training_loop": card.get("seconds"),
        "caching_pass": (options.get("state_cache") or {}).get("seconds"),
        "probe": metrics.get("probe_seconds"),
        "dev_before_training": (options.get("before_training") or {}).get("seconds"),
    }
    out = {k: float(v) for k, v in parts.items() if isinstance(v, int | float)}
    out["total"] = round(sum(out.values()), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--sources", default="sciq,squad")
    ap.add_argument("--datasets", default="sciq,squad")
    ap.add_argument("--train-limit", type=int, default=300, help="train questions per source")
    ap.add_argument("--data-dev-limit", type=int, default=50, help="dev questions per source")
    ap.add_argument("--max-minutes", type=float, default=20.0)
    ap.add_argument("--epochs", type=float, default=1.0)
    # Full fine-tuning at 1e-4 broke the model here (it then put P < 0.03 on every token);
    # 2e-5 keeps it intact. It cannot lift a resized <RET> row to the top in ~100 steps
    # alone: the gate's probe start (LP-FT, on by default) does that before fine-tuning.
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--limit", type=int, default=150, help="test questions per dataset")
    ap.add_argument("--dev-limit", type=int, default=50, help="dev questions for calibration")
    ap.add_argument("--check", type=int, default=8, help="questions run as a real pipeline")
    ap.add_argument("--lora", action="store_true", help="LoRA (merged) instead of full FT")
    ap.add_argument("--device", default="cpu", help="training and evaluation (cuda on a GPU)")
    ap.add_argument(
        "--backend",
        default="transformers",
        choices=["transformers", "ctranslate2"],
        help="backend of the LLMs that only generate or score (gate data, "
        "evaluation); training always uses transformers",
    )
    ap.add_argument("--train-layers", type=int, default=0, help="train only the top N layers")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue training from the gate model's newest checkpoint",
    )
    ap.add_argument("--name", default="adapt_llm", help="work folder and results name")
    args = ap.parse_args()  # fmt: skip
    out = WORK / args.name

    def infer(model: str) -> str:
        return model if args.backend == "transformers" else f"{args.backend}:{model}"

    data, model = out / "gate-data", out / "gate-model"
    resume = args.resume and any((model / "checkpoints").glob("*"))
    seconds = {}
    seconds["data"] = step(
        ["train", "data", "gate", "--llm", infer(args.base), "--questions", args.sources,
         "--limit", str(args.train_limit), "--dev-limit", str(args.data_dev_limit),
         "--out", str(data)],
        (data / "manifest.json").is_file(),
    ) or json.loads((data / "manifest.json").read_text()).get("seconds", 0.0)  # fmt: skip
    seconds["train"] = step(
        ["train", "gate", "--data", str(data), "--base", args.base, "--out", str(model),
         "--epochs", str(args.epochs), "--lr", str(args.lr), "--batch-size",
         str(args.batch_size), "--max-minutes", str(args.max_minutes), "--save-steps", "25",
         "--device", args.device, "--train-layers", str(args.train_layers),
         # on disk, the caching pass and the probe outlive a stopped piece (--resume)
         *(["--state-cache", "disk"] if args.train_layers else []),
         *(["--lora"] if args.lora else []), *(["--resume"] if resume else [])],
        (model / "rarx_model.json").is_file(),
    )  # fmt: skip
    results = {}
    for ds in args.datasets.split(","):
        path = out / f"eval-{ds}.json"
        seconds[f"eval_{ds}"] = step(
            ["eval", "adaptive", "--dataset", ds, "--gate-llm", infer(str(model)), "--base-llm",
             infer(args.base), "--limit", str(args.limit), "--dev-limit", str(args.dev_limit),
             "--check", str(args.check), "--work-dir", str(out / "indexes"),
             "--device", args.device, "--checkpoint", str(out / f"eval-{ds}.checkpoint.json"),
             "--results", str(path)],
            path.is_file(),
        )  # fmt: skip
        results[ds] = json.loads(path.read_text())
        if not seconds[f"eval_{ds}"]:  # reused: the time its own run recorded
            seconds[f"eval_{ds}"] = results[ds]["seconds"]["total"]

    card = json.loads((model / "rarx_model.json").read_text())
    # the step's wall time is 0 when this run reused the trained gate, and one piece's when
    # it resumed one: the card counts every piece (rarx.train.common.fit's ledger)
    seconds["train_wall_this_run"] = seconds["train"]
    seconds["train_recorded"] = training_seconds(card)
    seconds["train"] = seconds["train_recorded"]["total"]
    summary = json.loads((data / "manifest.json").read_text())
    rows, goals = [], {}
    for ds, r in results.items():
        sysm = r["systems"]
        for name, s in {**sysm, **r["ceilings"]}.items():
            rows.append([ds, name, f"{s['accuracy']:.3f} {s['accuracy_ci']}", f"{s['EM']:.3f}",
                         f"{s['F1']:.3f}", f"{s['retrieval_rate']:.3f}",
                         f"{s['accuracy_minus_AR']:+.3f} {s['accuracy_minus_AR_ci']}"])  # fmt: skip
        auc = r["auc_p_ret_closed_book_failure"]
        adapt, ar = sysm["Adapt"], sysm["AR"]
        goals[ds] = {
            "adapt_within_1pt_of_ar": adapt["accuracy"] >= ar["accuracy"] - 0.01,
            "retrieval_rate_10pt_lower": adapt["retrieval_rate"] <= ar["retrieval_rate"] - 0.10,
            "auc_above_untrained": (auc["trained"]["auc"] or 0) > (auc["base"]["auc"] or 0),
            "auc_trained": auc["trained"], "auc_base": auc["base"],
            "check": r.get("check"),
            "transfer": ds not in args.sources.split(","),  # no training question from it
            "closed_book_failure_rate": r.get("closed_book_failure_rate"),
        }  # fmt: skip
    print(table(["dataset", "system", "accuracy [95% CI]", "EM", "F1", "retrieved",
                 "acc - AR [95% CI]"], rows))  # fmt: skip
    for ds, g in goals.items():
        met = {k: v for k, v in g.items() if isinstance(v, bool) and k != "transfer"}
        print(f"{ds}{' (transfer)' if g['transfer'] else ''}: AUC of P(<RET>) for "
              f"closed-book failure: trained {g['auc_trained']}, untrained {g['auc_base']}; "
              f"goals {met}")  # fmt: skip
    write_result(args.name, reportable=reportable, payload={
        "setup": {
            "base": args.base, "backend": args.backend, "train_layers": args.train_layers,
            "device": args.device, "sources": args.sources,
            "train_limit": args.train_limit, "data_dev_limit": args.data_dev_limit,
            "max_minutes": args.max_minutes, "lr": args.lr, "batch_size": args.batch_size,
            "epochs": args.epochs, "lora": args.lora, "test_limit": args.limit,
            "dev_limit": args.dev_limit,
            "seed": card.get("seed"), "bootstrap": "1000 resamples, seed 0, percentile 95%",
            "note": "2 shared CPU cores, other work ran concurrently: times are noisy",
        },
        "seconds": seconds,
        "data": summary,
        "card": card,
        "goals": goals,
        "results": {ds: {k: v for k, v in r.items() if k not in ("per_query", "report")}
                    for ds, r in results.items()},
    })  # fmt: skip


def reportable(data: dict[str, Any]) -> Any:
    """The report section: every gate's accuracy, F1 and retrieval rate per set with
    intervals (rarx.eval.report_kinds' adaptive sections), AUC of P(<RET>), and the base
    model's closed-book accuracy on the gate data's questions."""
    from rarx.eval.report_kinds import adaptive_sections
    from rarx.eval.report_schema import Measurement, Reportable, Section, scalars

    setup = data["setup"]
    sections = list(adaptive_sections(data["results"], "adapt-llm",
                                      f"Adapt-LLM <RET> gate, base {setup['base']}"))  # fmt: skip
    info = data.get("data") or {}
    closed = [Measurement(f"{info.get('llm', setup['base'])} closed-book", ds,
                          f"accuracy ({split} questions of the gate data)", acc,
                          n=(info.get("questions") or {}).get(split, {}).get(ds))
              for split, by in (info.get("closed_book_accuracy") or {}).items()
              for ds, acc in by.items()]  # fmt: skip
    if closed:
        sections.append(Section("adapt-llm-closed-book", "Closed-book accuracy of the base "
                                "model (the gate data's labels)", tuple(closed)))  # fmt: skip
    return Reportable("adapt_llm", tuple(sections),
                      f"<RET> gate trained from {setup['base']} on {setup['sources']}",
                      scalars(setup, "base", "backend", "train_layers", "lora", "test_limit",
                              "dev_limit", "seed"))  # fmt: skip


if __name__ == "__main__":
    main()
