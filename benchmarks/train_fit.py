"""Fit or generalisation? A multiple-choice model ``rarx train`` wrote, against its base, on
its own training questions and on dev questions of the same data, scored by the
evaluator's own scorer (issue 24, part 3: why the trained ``choice`` qwen does not beat
its base on RAR-b).

    nice -n 5 python benchmarks/train_fit.py --model models/choice-qwen-top4 \\
        --backend ctranslate2 --n 200 --resume --tag choice-qwen-top4

(the same command again continues; a larger ``--n`` on resume extends the same samples).
The model directory's card says everything else: the objective (``choice`` is scored by
``llm-choice``, as ``rarx eval mcr --scorer llm-choice --model DIR`` scores it), the
base, the training file (its checksum must match: ``--data`` points at it where it moved),
the sources, ``--limit`` and teacher scores that chose the training questions (the same
selection as training, :func:`rarx.train.choice.training_questions`, each in its own
option order even where training showed more orders; dev questions are those of the dev
split of the same sources), and whether prompts carried instructions.
Each split's sample is ``numpy.random.default_rng(seed).permutation(questions)[:n]``,
the same questions for both models, scored chunk by chunk with the splits taking turns
and the models alternating who runs first, so a run stopped anywhere leaves two random
paired samples and the seconds per question are measured under the same load.

Records: ``results/train_fit[-TAG].questions.jsonl`` (a header with the settings: model,
data checksum, seed, chunk, each model's weights' SHA-256; then one record per question
and model), appended as each chunk finishes; ``--resume`` continues it and refuses one
made with other settings. The results JSON (``results/train_fit[-TAG].json``), rewritten
after each chunk (``"complete": false`` until both samples are scored): accuracy per model
on each split and on each source within it (bootstrap 95% intervals), the trained model's
paired difference from its base (interval, paired t-test; ``rarx.eval.significance``), each
model's train - dev gap (independent bootstrap interval, Welch t-test), and the gain gap:
how much more training gained on training questions than on dev questions (a gain that
stays on the training questions is memorisation), seconds per question, wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import table, with_report  # noqa: E402
from benchmarks.mcr_paired import (  # noqa: E402
    McrFile,
    Records,
    System,
    add_run_options,
    chunks,
    compare,
    load_system,
    weights_sha256,
)
from benchmarks.mcr_paired import sample as seeded_sample  # noqa: E402
from rarx.eval.report_schema import mc_chance  # noqa: E402
from rarx.eval.results import envelope, write_results  # noqa: E402
from rarx.eval.significance import difference_ci, welch_t_test  # noqa: E402

NAME = "train_fit"
SPLITS = ("train", "dev")
# objective -> the MCR scorer its evaluator scores with (the card's dev figures and
# `rarx eval mcr`); an objective is added here once its base scores meaningfully too
SCORERS = {"choice": "llm-choice"}


class FitError(SystemExit):
    """What is wrong with the model directory or its data, as the script's exit message."""


def training_setup(model: str | Path, data: str | Path | None = None) -> dict[str, Any]:
    """What the card of ``model`` says was trained and how it is scored: ``scorer``,
    ``base``, ``data`` (path, checksum), ``instructions``, and the ``train`` and ``dev``
    questions (the training questions exactly as training chose them)."""
    from rarx.io.hashing import file_checksum
    from rarx.models.card import ModelCard
    from rarx.train.choice import training_questions
    from rarx.train.data.mc import filter_sources, read_mc, read_teacher_scores, split_items

    card = ModelCard.read(model)
    if card is None:
        raise FitError(f"{model} has no rarx_model.json: give a directory `rarx train` wrote")
    if card.objective not in SCORERS:
        raise FitError(f"{model} was trained by `rarx train {card.objective}`; this script "
                       f"scores multiple-choice objectives: {', '.join(SCORERS)}")  # fmt: skip
    if len(card.data) != 1:
        raise FitError(f"{model}'s card names {len(card.data)} training files; expected one")
    ref = card.data[0]
    path = Path(data or ref.path)
    if not path.is_file():
        raise FitError(f"the training file {path} (from {model}'s card) is not here: pass "
                       "--data PATH to the same file")  # fmt: skip
    if file_checksum(path) != ref.checksum:
        raise FitError(f"{path} is not the file {model} was trained on (checksum "
                       f"{file_checksum(path)}, the card's {ref.checksum}): pass --data PATH "
                       "to that file")  # fmt: skip
    o = card.options
    items = filter_sources(read_mc(path), o.get("sources") or None)
    if len(items) != ref.rows:  # the card counts the items of its sources
        raise FitError(f"{len(items)} items of the sources {o.get('sources') or 'all'} in "
                       f"{path}, but {model}'s card counts {ref.rows}")  # fmt: skip
    train, dev = split_items(items)
    teacher = o.get("teacher_scores")
    if teacher is not None:
        if file_checksum(teacher["path"]) != teacher["checksum"]:
            raise FitError(f"the teacher scores {teacher['path']} changed since training")
        teacher = read_teacher_scores(teacher["path"])
    return {"card": card, "scorer": SCORERS[card.objective], "base": card.base,
            "data": {"path": str(path), "checksum": ref.checksum, "rows": ref.rows},
            "instructions": bool(o.get("instructions", False)),
            "train": training_questions(train, teacher, o.get("limit")), "dev": dev}  # fmt: skip


def systems_of(setup: dict[str, Any], model: str, backend: str | None) -> list[System]:
    """The base and the trained model, scored by the same scorer through ``backend``."""
    prefix = f"{backend}:" if backend else ""
    return [System("base", setup["scorer"], prefix + setup["base"]),
            System("trained", setup["scorer"], prefix + str(model))]  # fmt: skip


# ---- statistics --------------------------------------------------------------------------


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def gap(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """``mean(a) - mean(b)`` over two samples of different questions, its independent
    bootstrap interval and the Welch t-test's p."""
    if not a or not b:
        return {"diff": None, "ci95": None, "p_value": None}
    ci = difference_ci(b, a)
    return {"diff": _r(sum(a) / len(a) - sum(b) / len(b)),
            "ci95": [round(c, 4) for c in ci] if ci else None, "p_value": welch_t_test(b, a),
            "n": [len(a), len(b)]}  # fmt: skip


def summarize(files: Sequence[McrFile], systems: Sequence[System], setting: str,
              records: Records) -> dict[str, Any]:  # fmt: skip
    """Per split and per source within it: accuracy of each model and the trained one's
    paired difference from the base; each model's train - dev gap and the gain gap."""
    per_split: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        qs = []
        for i in f.order:
            got = {f"{s.name}/{setting}": records.done.get((f.name, i, s.name, setting))
                   for s in systems}  # fmt: skip
            if all(got.values()):
                qs.append(got)
        per_split[f.name] = qs
    entries = []
    for f in files:
        qs = per_split[f.name]
        items = [f.items[q[f"base/{setting}"]["i"]] for q in qs]
        sources = sorted({it.source for it in items})
        rows = [(f.name, qs)] + [(f"{f.name}/{src}", [q for q, it in zip(qs, items, strict=True)
                                                      if it.source == src]) for src in sources]
        for name, group in rows:
            per, paired = compare([(name, group)], systems, [setting]) if group else ({}, {})
            shown = [f.items[q[f"base/{setting}"]["i"]] for q in group]
            entries.append({"name": name, "split": f.name, "pool": len(f.items),
                            "sample": len(f.order), "scored": len(group),
                            "chance": _r(mc_chance([len(it.options) for it in shown]))
                            if shown else None, "systems": per, "paired": paired})  # fmt: skip
    correct = {(split, s.name): [float(q[f"{s.name}/{setting}"]["correct"]) for q in qs]
               for split, qs in per_split.items() for s in systems}  # fmt: skip
    gaps = {s.name: gap(correct["train", s.name], correct["dev", s.name]) for s in systems}
    gains = {split: [t - b for t, b in zip(correct[split, "trained"], correct[split, "base"],
                                           strict=True)] for split in SPLITS}  # fmt: skip
    gaps["trained - base"] = gap(gains["train"], gains["dev"])  # the gain gap
    return {"entries": entries, "gaps": gaps,
            "complete": all(len(per_split[f.name]) == len(f.order) for f in files)}  # fmt: skip


# ---- the run -----------------------------------------------------------------------------


def run(args: argparse.Namespace, load: Callable[[System, argparse.Namespace], Any] = load_system
        ) -> dict[str, Any]:  # fmt: skip
    """Score what is missing, chunk by chunk; returns the results (also written)."""
    from rarx.eval.mcr_scorers import evaluate_mcr

    started = time.perf_counter()
    setup = training_setup(args.model, args.data)
    systems = systems_of(setup, args.model, args.backend)
    setting = "with" if setup["instructions"] else "without"
    files = [McrFile(split, Path(setup["data"]["path"]), setup[split],
                     seeded_sample(len(setup[split]), args.n, args.seed)) for split in SPLITS]
    for f in files:
        if not f.items:
            raise FitError(f"no {f.name} question of the card's sources in {f.path}")
    out = Path(args.out) / (NAME + (f"-{args.tag}" if args.tag else ""))
    settings = {
        "model": str(args.model),
        "files": {f.name: {"file": Path(setup["data"]["path"]).name, "questions": len(f.items),
                           "sha256": setup["data"]["checksum"]} for f in files},  # fmt: skip
        "seed": args.seed, "chunk": args.chunk,
        "systems": {s.name: {"scorer": s.scorer, "model": s.model, "weights": weights_sha256(s),
                             "device": args.device, "dtype": args.dtype,
                             "batch_size": args.batch_size} for s in systems},  # fmt: skip
    }
    records = Records(out.with_suffix(".questions.jsonl"), settings, args.resume, args.fresh)
    scorers = {s.name: load(s, args) for s in systems}
    records.check_scorers({k: v.settings() for k, v in scorers.items()})
    records.start({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "load_seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
    todo = [(f, at, idx) for f, at, idx in chunks(files, args.chunk)
            if any((f.name, i, s.name, setting) not in records.done
                   for i in idx for s in systems)]  # fmt: skip
    print(f"{setup['card'].objective} model {args.model} (base {setup['base']}): "
          f"{len(files[0].order)} training and {len(files[1].order)} dev questions, "
          f"{len(todo)} chunks to score", flush=True)  # fmt: skip
    results = write(files, systems, setting, records, args, setup)
    for done, (f, at, idx) in enumerate(todo):
        if args.chunks is not None and done >= args.chunks:
            break
        if args.minutes is not None and time.perf_counter() - started > args.minutes * 60:
            print(f"stopping after {args.minutes} minutes; --resume continues", flush=True)
            break
        t = time.perf_counter()
        rows = []
        for s in systems if done % 2 == 0 else systems[::-1]:  # alternate who runs first
            miss = [i for i in idx if (f.name, i, s.name, setting) not in records.done]
            if not miss:
                continue
            items = [f.items[i] for i in miss]
            score = evaluate_mcr(scorers[s.name], items, setup["instructions"])
            for i, it, pred in zip(miss, items, score.predictions, strict=True):
                rows.append({"file": f.name, "i": i, "id": it.id, "source": it.source,
                             "system": s.name, "setting": setting, "label": it.label,
                             "pred": pred, "correct": int(pred == it.label),
                             "seconds": round(score.seconds / len(miss), 4)})  # fmt: skip
        records.add(rows, {"chunk": {"file": f.name, "at": at, "size": len(idx),
                                     "wall_seconds": round(time.perf_counter() - t, 2),
                                     "finished": time.strftime("%H:%M:%S")}})  # fmt: skip
        results = write(files, systems, setting, records, args, setup)
    print_table(results)
    return results


def write(files: Sequence[McrFile], systems: Sequence[System], setting: str, records: Records,
          args: argparse.Namespace, setup: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The results file, with its report section, rewritten from the records."""
    summary = summarize(files, systems, setting, records)
    sessions = [m["session"] for m in records.marks if "session" in m]
    marks = [m["chunk"] for m in records.marks if "chunk" in m]
    wall = sum(s["load_seconds"] for s in sessions) + sum(c["wall_seconds"] for c in marks)
    o = setup["card"].options
    result = envelope(
        "train-fit", benchmark=NAME, complete=summary["complete"],
        settings={**records.settings, "n": args.n, "instructions": setup["instructions"],
                  "backend": args.backend or "transformers"},
        training={"objective": setup["card"].objective, "base": setup["base"],
                  "data": setup["data"], "sources": o.get("sources") or "all",
                  "limit": o.get("limit"), "option_orders": o.get("option_orders", 1),
                  "train_layers": o.get("train_layers"), "lora": o.get("lora"),
                  "steps": setup["card"].steps, "epochs": setup["card"].epochs,
                  "train_questions": len(setup["train"]), "dev_questions": len(setup["dev"]),
                  "card_metrics": setup["card"].metrics},
        scorers={s.name: records.scorers.get(s.name) for s in systems},
        splits=summary["entries"], gaps=summary["gaps"], records=records.path.name,
        wall_seconds=round(wall, 1), sessions=len(sessions), chunks_scored=len(marks),
        note=args.note,
        statistics="accuracy: bootstrap 95% interval over questions (rarx.eval.significance."
        "mean_ci); paired: trained - base on the same questions, bootstrap interval and paired "
        "t-test; gaps: train - dev accuracy of each model over different questions, "
        "independent bootstrap interval (difference_ci) and Welch t-test; the gain gap "
        "('trained - base'): the paired gain on training questions minus that on dev ones",
    )  # fmt: skip
    if any(e["scored"] for e in summary["entries"]):
        write_results(records.path.with_name(records.path.name.replace(".questions.jsonl",
                                                                       ".json")),
                      with_report(result, reportable))  # fmt: skip
    return result


def print_table(results: dict[str, Any]) -> None:
    rows = []
    st = "with" if results["settings"]["instructions"] else "without"
    for e in results["splits"]:
        if not e["scored"]:
            continue
        d = e["paired"].get("trained", {}).get(st) or {}
        p = d.get("p_value")
        rows.append([e["name"], e["scored"],
                     *(e["systems"][s][st]["accuracy"] for s in ("base", "trained")),
                     "" if d.get("diff") is None else f"{d['diff']:+.4f}",
                     "-" if p is None else f"{p:.3g}", e["chance"]])  # fmt: skip
    print(table(["split/source", "n", "base", "trained", "trained - base", "p", "chance"], rows))
    for name, g in results["gaps"].items():
        if g["diff"] is not None:
            ci = g["ci95"] or [float("nan")] * 2
            p = "-" if g["p_value"] is None else f"{g['p_value']:.3g}"
            print(f"train - dev, {name}: {g['diff']:+.4f} [{ci[0]:+.3f}, {ci[1]:+.3f}] p {p}")
    print(f"wall time {results['wall_seconds']:.0f} s over {results['sessions']} session(s); "
          f"complete: {results['complete']}")  # fmt: skip


# ---- report ------------------------------------------------------------------------------


def reportable(data: dict[str, Any]) -> Any:
    """Accuracy of base and trained per split (and per source), the paired p of the trained
    model against its base; the train - dev gaps; seconds per question."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    st = "with" if data["settings"]["instructions"] else "without"
    splits, sources, cost = [], [], []
    for e in data["splits"]:
        if not e["scored"]:
            continue
        rows = splits if e["name"] == e["split"] else sources
        for name, per in e["systems"].items():
            v = per[st]
            d = (e["paired"].get(name) or {}).get(st) or {}
            p = d.get("p_value")
            rows.append(Measurement(name, e["name"], "accuracy", v["accuracy"],
                                    interval(v["ci95"]), e["scored"], e["chance"], p,
                                    "base" if p is not None else ""))  # fmt: skip
            if rows is splits:
                cost.append(Measurement(name, e["name"], "seconds_per_question",
                                        v["seconds_per_question"], n=e["scored"]))  # fmt: skip
    gaps = [Measurement(name, "train - dev", "accuracy gap", g["diff"], interval(g["ci95"]),
                        sum(g["n"]), p_value=g["p_value"])
            for name, g in data["gaps"].items() if g["diff"] is not None]  # fmt: skip
    partial = "" if data["complete"] else " (partial)"
    t = data["training"]
    sections = [
        Section("train-fit", f"Accuracy on training and dev questions{partial}", tuple(splits),
                note="The same seeded questions for both models. Intervals: bootstrap 95%. "
                "p: paired t-test of the trained model against its base."),  # fmt: skip
        Section("train-fit-sources", f"Accuracy per source{partial}", tuple(sources)),
    ]
    if gaps:
        sections.append(Section(
            "train-fit-gap", f"Train - dev accuracy{partial}", tuple(gaps),
            note="Each model's accuracy on training questions minus that on dev questions "
            "(different questions: independent bootstrap 95% interval, Welch t-test). "
            "'trained - base': the paired gain on training questions minus the gain on dev "
            "questions; well above 0, training fitted its own questions without "
            "generalising."))  # fmt: skip
    sections.append(Section("train-fit-seconds", "Seconds per question", tuple(cost),
                            plot="table"))  # fmt: skip
    n = sum(e["scored"] for e in data["splits"] if e["name"] == e["split"])
    return Reportable(NAME, tuple(sections),
                      f"{t['objective']} model {data['settings']['model']} against its base "
                      f"{t['base']} ({data['settings']['systems']['base']['scorer']}); {n} "
                      f"questions per model{partial}, {data['wall_seconds'] / 60:.0f} min",
                      scalars(data["settings"], "n", "seed", "chunk", "instructions",
                              "backend"))  # fmt: skip


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a directory `rarx train choice` wrote")
    ap.add_argument("--data", default=None, help="the training file, where it is no longer at "
                    "the card's path (its checksum must match)")  # fmt: skip
    ap.add_argument("--backend", default=None, help="LLM backend for both models (e.g. "
                    "ctranslate2; default transformers, as rarx eval mcr)")  # fmt: skip
    ap.add_argument("--n", type=int, default=200, help="seeded questions per split (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    add_run_options(ap, "train_fit")
    return ap


def main(argv: Sequence[str] | None = None) -> None:
    run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
