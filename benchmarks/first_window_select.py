"""FIRST's window size, chosen on training-source windows (issue 24: settings are picked on
a training-source dev split, never on the RAR-b sets they are reported on).

Each window of a ``rarx train data ranking`` file (e.g. reasoning-mc's training questions
against their source's pooled options, MiniLM's top 20 in its own order, the gold option put
in at a random place where MiniLM missed it: ``--shuffle 0 --insert-at random``) is
reranked by FIRST with sliding windows of ``W`` candidates and stride ``S`` for every
``--configs W:S`` (back to front, as FIRST ranks more than one window), and scored against
the window's grades: nDCG@10, MRR, P@1 and the share of gold picks per input position.
``input order`` is the first stage's order (the gold at a random place where it was put
in). Windows that a model named by ``--exclude`` (a training file) was trained on are left
out. Paired t-tests per window against the input order and against the widest window.

    python benchmarks/first_window_select.py --llm ctranslate2:qwen2.5-coder-1.5b \\
        --windows ~/.cache/rarx/train-data/first-select-dev.jsonl --configs 20:10 10:5 5:2 \\
        --resume

Per window results go to ``results/<name>.windows.jsonl`` as they are made; ``--resume``
keeps them and runs the rest, and the summary ``results/<name>.json`` is rewritten after
every chunk (``complete: false`` until every configuration has every window).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import RESULTS, table, write_result

from rarx.eval.significance import mean_ci, paired_t_test, rounded_p
from rarx.io.jsonl import read_jsonl
from rarx.types import Document, Hit, Query, Ranking

INPUT = "input order"
MEASURES = ("nDCG@10", "RR", "P@1")


def read_windows(path: Path, exclude: Path | None, limit: int | None) -> list[dict[str, Any]]:
    skip = {r["qid"] for _, r in read_jsonl(exclude)} if exclude else set()
    rows = [r for _, r in read_jsonl(path) if r["qid"] not in skip]
    return rows[:limit] if limit else rows


def scores(order: list[str], window: dict[str, Any]) -> dict[str, float]:
    """nDCG@10, reciprocal rank and P@1 of ``order`` (docids) under the window's grades."""
    import math

    grade = dict(zip(window["docids"], window["grades"], strict=True))
    gains = [grade.get(d, 0) for d in order]
    dcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gains[:10]))
    ideal = sum((2**g - 1) / math.log2(i + 2)
                for i, g in enumerate(sorted(grade.values(), reverse=True)[:10]))  # fmt: skip
    first = next((i for i, g in enumerate(gains) if g > 0), None)
    return {"nDCG@10": dcg / ideal if ideal else 0.0,
            "RR": 0.0 if first is None else 1.0 / (first + 1),
            "P@1": float(bool(gains) and gains[0] > 0)}  # fmt: skip


def as_ranking(window: dict[str, Any]) -> tuple[Query, Ranking]:
    n = len(window["docids"])
    hits = tuple(Hit(d, float(n - i), Document(d, text))
                 for i, (d, text) in enumerate(zip(window["docids"], window["passages"],
                                                   strict=True)))  # fmt: skip
    return Query(window["qid"], window["query"]), Ranking(window["qid"], hits)


def config_name(w: int, s: int) -> str:
    return f"FIRST W={w} S={s}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm", default="ctranslate2:qwen2.5-coder-1.5b")
    ap.add_argument("--windows", type=Path,
                    default=Path.home() / ".cache/rarx/train-data/first-select-dev.jsonl")
    ap.add_argument("--exclude", type=Path, default=None,
                    help="a training windows file: its queries are left out")  # fmt: skip
    ap.add_argument("--configs", nargs="+", default=["20:10", "10:5", "5:2"], help="W:S")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--instruction", action=argparse.BooleanOptionalAction, default=True,
                    help="the window's task instruction opens the prompt")  # fmt: skip
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--name", default="first_window_select")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()  # fmt: skip
    configs = [tuple(int(x) for x in c.split(":")) for c in args.configs]
    windows = read_windows(args.windows, args.exclude, args.limit)
    per_path = RESULTS / f"{args.name}.windows.jsonl"
    setting = {"llm": args.llm, "windows": str(args.windows), "instruction": args.instruction,
               "exclude": str(args.exclude) if args.exclude else None}  # fmt: skip
    done: dict[str, dict[str, dict]] = {}
    if args.resume and per_path.is_file():
        for _, r in read_jsonl(per_path):
            if r["setting"] != setting:
                raise SystemExit(f"{per_path} holds windows of other settings: {r['setting']}")
            done.setdefault(r["config"], {})[r["qid"]] = r
    elif per_path.exists():
        per_path.unlink()
    from rarx.llm import load_llm
    from rarx.rerank import make_reranker

    llm = None
    for w, s in configs:
        name = config_name(w, s)
        have = done.setdefault(name, {})
        todo = [x for x in windows if x["qid"] not in have]
        print(f"{name}: {len(have)} of {len(windows)} windows done", flush=True)
        if todo and llm is None:
            llm = load_llm(args.llm)
        for i in range(0, len(todo), args.chunk):
            part = todo[i : i + args.chunk]
            by_inst: dict[str, list[dict]] = {}
            for x in part:  # one reranker per instruction: it opens the prompt
                inst = (x.get("instruction") or "") if args.instruction else ""
                by_inst.setdefault(inst, []).append(x)
            for inst, xs in by_inst.items():
                rr = make_reranker("first", args.llm, 20, window=w, stride=s, llm=llm,
                                   **({"instruction": inst} if inst else {}))  # fmt: skip
                qs, rs = zip(*(as_ranking(x) for x in xs), strict=True)
                start = time.perf_counter()
                out = rr.rerank(list(qs), list(rs))
                per = (time.perf_counter() - start) / len(xs)
                with per_path.open("a", encoding="utf-8") as f:
                    for x, r in zip(xs, out, strict=True):
                        rec = {"config": name, "qid": x["qid"], "source": x["source"],
                               "setting": setting, "docids": list(r.docids),
                               "seconds": round(per, 3)}  # fmt: skip
                        have[x["qid"]] = rec
                        f.write(json.dumps(rec) + "\n")
            summarize(args, configs, windows, done, partial=True)
    summarize(args, configs, windows, done, partial=False)


def summarize(args: Any, configs: list, windows: list, done: dict, partial: bool) -> None:
    names = [config_name(w, s) for w, s in configs]
    complete = all(len(done.get(n, {})) == len(windows) for n in names)
    by_qid = {x["qid"]: x for x in windows}
    per: dict[str, dict[str, dict[str, float]]] = {
        INPUT: {q: scores(list(x["docids"]), x) for q, x in by_qid.items()}}
    for n in names:
        per[n] = {q: scores(r["docids"], by_qid[q]) for q, r in done.get(n, {}).items()
                  if q in by_qid}  # fmt: skip
    systems, rows = {}, []
    widest = names[0] if names else None
    for n, by_q in per.items():
        if not by_q:
            continue
        s: dict[str, Any] = {"windows": len(by_q)}
        for m in MEASURES:
            vals = [v[m] for v in by_q.values()]
            s[m] = round(sum(vals) / len(vals), 4)
            ci = mean_ci(vals)
            s[f"{m}_ci95"] = [round(c, 4) for c in ci] if ci else None
        for base in (INPUT, widest):
            if base and base != n:
                common = [q for q in by_q if q in per[base]]
                p, _ = paired_t_test({q: per[base][q]["nDCG@10"] for q in common},
                                     {q: by_q[q]["nDCG@10"] for q in common})  # fmt: skip
                diff = sum(by_q[q]["nDCG@10"] - per[base][q]["nDCG@10"] for q in common)
                s[f"nDCG@10_minus_{base}"] = {"diff": round(diff / max(1, len(common)), 4),
                                              "p": rounded_p(p), "n": len(common)}  # fmt: skip
        if n != INPUT:
            recs = done[n].values()
            s["seconds_per_window"] = round(sum(r["seconds"] for r in recs) / len(recs), 3)
            top_at = Counter(by_qid[r["qid"]]["docids"].index(r["docids"][0]) for r in recs)
            s["top_pick_input_position"] = [top_at.get(i, 0) for i in range(20)]
        systems[n] = s
        rows.append([n, s["windows"], *(f"{s[m]:.3f} {s[f'{m}_ci95']}" for m in MEASURES),
                     s.get("seconds_per_window", "")])  # fmt: skip
    print(table(["system", "windows", *MEASURES, "s/window"], rows), flush=True)
    sources = Counter(x["source"] for x in windows)
    write_result(args.name, reportable=reportable, payload={
        "complete": complete and not partial,
        "settings": {"llm": args.llm, "windows": str(args.windows), "exclude":
                     str(args.exclude) if args.exclude else None, "configs": args.configs,
                     "instruction": args.instruction, "limit": args.limit,
                     "sources": dict(sources),
                     "note": "2 shared CPU cores, other work concurrent: times are noisy"},
        "systems": systems,
        "ci": "bootstrap 95% over windows (rarx.eval.significance.mean_ci); p: paired t-test",
    })  # fmt: skip


def reportable(data: dict[str, Any]) -> Any:
    """nDCG@10, MRR and P@1 per configuration with intervals, paired p against the input
    order; seconds per window."""
    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    partial = "" if data["complete"] else " (partial)"
    rows, cost = [], []
    for name, s in data["systems"].items():
        test = s.get(f"nDCG@10_minus_{INPUT}") or {}
        for m in MEASURES:
            p = test.get("p") if m == "nDCG@10" else None
            rows.append(Measurement(name, "training-source windows", m, s[m],
                                    interval(s.get(f"{m}_ci95")), s["windows"], None, p,
                                    INPUT if p is not None else ""))  # fmt: skip
        if "seconds_per_window" in s:
            cost.append(Measurement(name, "training-source windows", "seconds_per_window",
                                    s["seconds_per_window"], n=s["windows"]))  # fmt: skip
    sections = [Section("first-window-select", f"FIRST's window size on training-source "
                        f"windows{partial}", tuple(rows),
                        note="p: paired t-test on nDCG@10 against the input order.")]
    if cost:
        sections.append(Section("first-window-select-seconds", "Seconds per window",
                                tuple(cost), plot="table"))
    st = data["settings"]
    return Reportable("first_window_select", tuple(sections),
                      f"{st['llm']} on {sum(st['sources'].values())} windows",
                      scalars(st, "llm", "instruction"))


if __name__ == "__main__":
    main()
