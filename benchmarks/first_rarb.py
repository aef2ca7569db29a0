"""FIRST on reasoning retrieval (issue 24, parts 1 and 2): an LLM reranks the first
stage's top candidates of the packaged RAR-b-recipe Full sets, with the identifier
boundary read as the model writes it (rarx.llm.reply).

Systems, on the same seeded sample of each set's queries and the same candidates:

- ``first-stage``: MiniLM (reasoning sets) or BM25 (``sciq``, ``boolq``), top ``--k``;
- ``first``: FIRST, the generic prompt; ``first+inst``: with the set's RAR-b instruction;
- ``listwise``: the generated permutation, same model and prompt as ``first``;
- ``first+orders``: FIRST scoring each window in ``--orders`` candidate orders and
  combining (the position-bias remedy), at that many times the forward passes;
- ``first+cal``, ``first+inst+cal``: FIRST (without, with the instruction) calibrated
  (``calibrate="query-free"``: the identifiers' prior, read once from a window of "..."
  passages and query, subtracted): one extra forward pass per set and window size;
- ``position``: FIRST on the candidates shuffled (``--position-seeds`` seeds): where its top
  pick sits, and its accuracy by the gold passage's position; ``position+cal``: the same
  for ``first+cal``;
- ``cross-encoder``: the cross-encoder ``--cross-encoder PATH`` (rarx.rerank's reranker; none
  is packaged: ``rarx train cross-encoder`` makes one), no LLM. Its records name the model
  and its weights' checksum, so a resume never mixes two models.
- ``first@wWsS``, ``first+inst@wWsS``, ``first-trained@wWsS``, ``first-trained+inst@wWsS``:
  the same FIRST system with sliding windows of W candidates and stride S over the same
  ``--k`` (back to front, so the top W decide last), W chosen on training-source windows
  (``first_window_select.py``); paired against the system at one window;
- ``first-trained`` and ``first-trained+inst``: FIRST (without and with the set's
  instruction) with the model ``--trained-llm SPEC`` (a folder ``rarx train first`` wrote,
  e.g. ``ctranslate2:models/first-qwen``; ``--llm-option`` applies to it as to ``--llm``),
  paired against untrained FIRST and the first stage. Its records name the model and its
  folder's fingerprint, so a resume never mixes two models; ``--llm`` is not loaded when
  only these (or the cross-encoder) run.

Reported: nDCG@10 and R@10 (ir-measures) with bootstrap intervals, paired t-tests
(rarx.eval.significance) against the first stage and between rerankers, seconds per
query, and the oracle bound (share of queries with a relevant passage among the
candidates). Every set here is evaluation data: nothing is tuned on it.

    python benchmarks/first_rarb.py --llm qwen2.5-coder-1.5b --dataset arc-challenge \
        --queries 300 --resume [--systems first first+inst listwise first+orders position
        first+cal first+inst+cal position+cal]
    python benchmarks/first_rarb.py --llm qwen2.5-coder-1.5b --dataset arc-challenge \
        --queries 300 --resume --systems cross-encoder --cross-encoder models/ce-reason
    python benchmarks/first_rarb.py --llm ctranslate2:qwen2.5-coder-1.5b \
        --dataset arc-challenge --queries 300 --resume --name first_rarb_qwen_ct2_arc \
        --systems first-trained first-trained+inst --trained-llm ctranslate2:models/first-qwen

The LLM is loaded only when an LLM system runs; a system added to an existing results name
with ``--resume`` is scored on the queries and candidates already there, and the summary
keeps every system the JSONL holds. Each record names the rarx commit that made it
(``code``; ``-dirty`` with uncommitted changes under rarx/ or benchmarks/), and each
system's summary lists them (``code_revisions``), so a system resumed across code versions
shows it: arc-challenge's ``first`` and ``first+inst`` records of the committed run predate
both that field and the ctranslate2 backend's one-pass reading of Qwen's ``[`` + ``O``
(two forward passes per window there, one in every later record).

``--llm`` takes any LLM spec (``smollm2-135m``, ``qwen2.5-coder-1.5b``,
``openai:MODEL`` with ``--llm-option base_url=...``, ``ctranslate2:qwen2.5-coder-1.5b``
where that backend is installed). Each query's result is appended to
``results/<name>.queries.jsonl`` as soon as it is done and the summary
``results/<name>.json`` is rewritten every ``--checkpoint-seconds`` (default after every
query; the JSONL is what a resume reads), marked ``partial`` until every
system has every sampled query; ``--resume`` skips what the JSONL already holds (same
settings only: a mismatch is an error). Each set's figures are also written as a
``rarx eval report`` results file, ``results/report/<name>-<set>.json`` (kind
``retrieval``), so ``rarx eval report`` draws them. ``--summarize`` rebuilds both from the
JSONL without loading a model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, WORK, table, write_result  # noqa: E402

from rarx.types import Hit, Query, Ranking  # noqa: E402

DATA = Path(os.environ.get("RARX_WORK", WORK / "eval"))
QA_SETS = ("sciq", "boolq")  # the first stage is BM25 there, MiniLM elsewhere
CE = "cross-encoder"
POSITION = ("position", "position+cal")  # shuffled windows, of first and of first+cal
LLM_SYSTEMS = ("first", "first+inst", "listwise", "first+orders", "first+cal", "first+inst+cal",
               *POSITION)  # fmt: skip
TRAINED = ("first-trained", "first-trained+inst")  # FIRST with --trained-llm
CALIBRATE = "query-free"  # the +cal systems' prior: per window size, read once per set
SYSTEMS = (*LLM_SYSTEMS, *TRAINED, CE)
# FIRST with sliding windows of W candidates, stride S, over the same --k: "first+inst@w5s2"
WINDOWED = re.compile(r"^(first|first\+inst|first-trained|first-trained\+inst)@w(\d+)s(\d+)$")


def windowed(system: str) -> tuple[str, int, int] | None:
    """``(FIRST system, window, stride)`` of a windowed system's name, else None."""
    m = WINDOWED.match(system)
    return (m[1], int(m[2]), int(m[3])) if m else None


def base_system(system: str) -> str:
    """The system a windowed one runs (its model and prompt), or the system itself."""
    w = windowed(system)
    return w[0] if w else system


def system_name(value: str) -> str:
    """``--systems`` values: a known system, or a FIRST system with ``@wWsS``."""
    if value in SYSTEMS or windowed(value):
        return value
    raise argparse.ArgumentTypeError(
        f"{value!r}: expected one of {', '.join(SYSTEMS)}, or first/first+inst/first-trained/"
        "first-trained+inst with @wWsS (a window of W candidates, stride S)")
MEASURES = ("nDCG@10", "R@10")


def load_set(name: str) -> Any:
    from rarx.eval.datasets import load_beir, prepare_dataset
    from rarx.eval.datasets.beir import is_beir_folder

    folder = DATA / "data" / name
    if not is_beir_folder(folder):
        prepare_dataset(name, folder, overwrite=True)
    return load_beir(folder)


def sample(data: Any, n: int, seed: int) -> list[Query]:
    queries = sorted(data.judged_queries, key=lambda q: q.qid)
    rng = random.Random(f"{seed}:{data.path.name}")
    return sorted(rng.sample(queries, min(n, len(queries))), key=lambda q: q.qid)


def first_stage(
    data: Any, name: str, queries: list[Query], k: int
) -> tuple[str, list[Ranking], float]:
    from rarx.eval.systems import DenseModel, bm25_run

    if name in QA_SETS:
        run = bm25_run(data, queries, k, DATA / "indexes", quiet=True)
    else:
        run = DenseModel("minilm", data, cache_dir=DATA / "embeddings").search(queries, k)
    docs = {d.docid: d for d in data.corpus}
    rankings = [
        Ranking(r.qid, tuple(Hit(h.docid, h.score, docs[h.docid]) for h in r.hits[:k]))
        for r in run.rankings
    ]
    seconds = sum(run.seconds.values()) / max(1, len(queries))
    return run.name, rankings, seconds


def make(method: str, llm: Any, k: int, **kw: Any) -> Any:
    from rarx.rerank import make_reranker

    return make_reranker(method, "bench", k, window=k, stride=max(1, k // 2), llm=llm, **kw)


def reranker(which: str, llm: Any, data: Any, args: Any, trained: Any = None, **kw: Any) -> Any:
    """The reranker a system runs: the cross-encoder at the length its folder sets (the
    one it was trained at), FIRST with the trained LLM, or FIRST/listwise with the loaded
    LLM."""
    if which == CE:
        from rarx.rerank import make_reranker

        return make_reranker(CE, args.cross_encoder, args.k, max_length=None)
    extra = {"first+inst": {"instruction": data.instruction},
             "first-trained+inst": {"instruction": data.instruction},
             "first+orders": {"orders": args.orders},
             "first+cal": {"calibrate": CALIBRATE},
             "first+inst+cal": {"instruction": data.instruction, "calibrate": CALIBRATE},
             }.get(which, {})  # fmt: skip
    if w := windowed(which):
        base, window, stride = w
        from rarx.rerank import make_reranker

        return make_reranker("first", "bench", args.k, window=window, stride=stride,
                             llm=trained if base in TRAINED else llm, **kw,
                             **({"instruction": data.instruction} if base.endswith("+inst")
                                else {}))  # fmt: skip
    if which in TRAINED:
        return make("first", trained, args.k, **kw, **extra)
    return make("listwise" if which == "listwise" else "first", llm, args.k, **kw, **extra)


def cross_encoder_id(model: str) -> str:
    """The cross-encoder a record was scored with: its name, and where it is a local
    folder its weights' checksum, so a resume cannot mix two models under one path."""
    from rarx.io.hashing import file_checksum

    weights = Path(model) / "model.safetensors"
    return f"{model}@{file_checksum(weights)}" if weights.is_file() else model


def trained_llm_id(spec: str) -> str:
    """The trained LLM a record was scored with: its spec, and where its model is a local
    folder that folder's fingerprint (every small file's bytes, the large weights' size and
    modification time: rarx.models.ct2_cache), so a resume cannot mix two models."""
    from rarx.llm import LLMSpec
    from rarx.models.ct2_cache import source_fingerprint

    folder = Path(LLMSpec.parse(spec).model)
    return f"{spec}@{source_fingerprint(folder)[:16]}" if folder.is_dir() else spec


def check_held(records: list[dict[str, Any]], systems: tuple[str, ...], model: str | None,
               jsonl: Path, what: str, flag: str) -> None:  # fmt: skip
    """Exit when ``records`` of ``systems`` were scored with another model than ``model``."""
    held = {r.get("model") for r in records if r["system"] in systems}
    if model and held - {model}:
        sys.exit(f"{jsonl} holds {what} records of {sorted(map(str, held))}, not {model}: "
                 f"pass that {flag}, or another --name")  # fmt: skip


def code_revision() -> str | None:
    """The rarx commit a record is made with (``-dirty`` where rarx/ or benchmarks/ have
    uncommitted changes); ``None`` outside a git checkout."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "rarx", "benchmarks"],
                               cwd=root, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    # results files alone do not change the code that made them
    changed = [x for x in dirty.splitlines() if "benchmarks/results/" not in x]
    return head + ("-dirty" if changed else "")


def position_family(system: str) -> str | None:
    """``position`` or ``position+cal`` for a shuffled-window record (``position-s0``,
    ``position+cal-s2``), else None."""
    head, sep, seed = system.rpartition("-s")
    return head if sep and head in POSITION and seed.isdigit() else None


def shuffled(ranking: Ranking, seed: int) -> Ranking:
    hits = list(ranking.hits)
    random.Random(f"{seed}:{ranking.qid}").shuffle(hits)
    return Ranking(
        ranking.qid, tuple(Hit(h.docid, float(len(hits) - i), h.doc) for i, h in enumerate(hits))
    )


def gold_positions(docids: Sequence[str], qrels: Mapping[str, int]) -> list[int]:
    """Where the relevant passages sit (0-based) in the list a system was given."""
    return [i for i, d in enumerate(docids) if qrels.get(d, 0) > 0]


def record(
    dataset: str,
    system: str,
    q: Query,
    cands: Ranking,
    out: Any,
    seconds: float,
    qrels: dict[str, int],
) -> dict[str, Any]:
    calls = [d for e, d in out.events if e == "llm_call"]
    top = out.ranking.docids[0] if out.ranking.hits else None
    return {
        "dataset": dataset,
        "system": system,
        "qid": q.qid,
        "docids": out.ranking.docids,
        "seconds": seconds,
        "top_pick": cands.docids.index(top) if top in cands.docids else None,
        "gold_positions": gold_positions(cands.docids, qrels),
        "forward_passes": sum(int((c.get("meta") or {}).get("forward_passes", 1)) for c in calls),
        "failed_windows": sum(1 for e, _ in out.events if e == "window_failed"),
    }


def summarize(
    records: list[dict[str, Any]],
    data_by: dict[str, Any],
    args: Any,
    oracle: dict[str, float],
    instructions: dict[str, str],
) -> dict[str, Any]:
    from rarx.eval.metrics import evaluate
    from rarx.eval.significance import mean_ci, paired_t_test

    out: dict[str, Any] = {}
    for dataset, data in data_by.items():
        mine = [r for r in records if r["dataset"] == dataset]
        qids = sorted({r["qid"] for r in mine if r["system"] == "first-stage"})
        qrels = {q: dict(data.qrels[q]) for q in qids}
        systems: dict[str, Any] = {}
        per_query: dict[str, dict[str, float]] = {}
        # every system asked for or already in the JSONL: a resume adding one keeps the rest
        held = {r["system"] for r in mine}
        ranked = [s for s in SYSTEMS if s not in POSITION and (s in args.systems or s in held)]
        ranked += sorted(s for s in {*args.systems, *held} if windowed(s))
        for system in ["first-stage", *ranked]:
            rows = [r for r in mine if r["system"] == system]
            if not rows:
                continue
            run = {
                r["qid"]: {d: float(len(r["docids"]) - i) for i, d in enumerate(r["docids"])}
                for r in rows
            }
            ev = evaluate(run, {q: qrels[q] for q in run}, MEASURES)
            per_query[system] = {q: v["nDCG@10"] for q, v in ev.per_query.items()}
            nd = [per_query[system][q] for q in sorted(per_query[system])]
            systems[system] = {
                "queries": len(rows),
                **ev.aggregate,
                "nDCG@10_ci95": mean_ci(nd),
                "seconds_per_query": sum(r["seconds"] for r in rows) / len(rows),
                "forward_passes_per_query": sum(r.get("forward_passes", 0) for r in rows)
                / len(rows),
                "failed_windows": sum(r.get("failed_windows", 0) for r in rows),
                "code_revisions": sorted({r["code"] for r in rows if r.get("code")}),
                **({"model": rows[0]["model"]} if "model" in rows[0] else {}),
            }
        tests = []
        pairs = [(s, "first-stage") for s in systems if s != "first-stage"]
        pairs += [
            p
            for p in [("first+inst", "first"), ("first", "listwise"), ("first+orders", "first"),
                      ("first+cal", "first"), ("first+inst+cal", "first+inst"),
                      ("first+cal", "first+orders")]
            if p[0] in systems and p[1] in systems
        ]
        pairs += [(CE, s) for s in ("first", "first+inst", "listwise", "first+orders",
                                    "first+cal", "first+inst+cal")
                  if CE in systems and s in systems]  # fmt: skip
        pairs += [p for p in [("first-trained", "first"), ("first-trained+inst", "first+inst"),
                              ("first-trained+inst", "first-trained"),
                              ("first-trained", "listwise")]
                  if p[0] in systems and p[1] in systems]  # fmt: skip
        pairs += [(s, base_system(s)) for s in systems
                  if windowed(s) and base_system(s) in systems]  # fmt: skip
        for a, b in pairs:
            p, n = paired_t_test(per_query[b], per_query[a])
            both = sorted(set(per_query[a]) & set(per_query[b]))
            diff = [per_query[a][q] - per_query[b][q] for q in both]
            tests.append(
                {
                    "system": a,
                    "against": b,
                    "queries": n,
                    "p": p,
                    "mean_difference": sum(diff) / len(diff) if diff else None,
                    "difference_ci95": mean_ci(diff) if diff else None,
                }
            )
        families = {f: [r for r in mine if position_family(r["system"]) == f] for f in POSITION}
        position = {f: position_summary(pos, args.k) for f, pos in families.items() if pos}
        wanted = len(sample(data, args.queries, args.seed))
        done = (
            all(v["queries"] >= wanted for v in systems.values())
            and len(systems) == 1 + len(ranked)
            and all(
                (f not in args.systems and not families[f])
                or position.get(f, {}).get("windows", 0) >= wanted * args.position_seeds
                for f in POSITION
            )
        )
        out[dataset] = {
            "sampled_queries": wanted,
            "complete": done,
            "oracle_share_with_answer_in_candidates": oracle.get(dataset),
            "instruction": instructions.get(dataset),
            "systems": systems,
            "paired_tests_nDCG@10": tests,
            "position": position.get("position", {}),
            "position_calibrated": position.get("position+cal", {}),
        }
    return out


def position_summary(pos: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Where the top pick of shuffled windows lands, and how often it is the gold passage
    by the gold's position."""
    picks = Counter(r["top_pick"] for r in pos if r["top_pick"] is not None)
    by_gold: dict[int, list[int]] = {}
    for r in pos:
        for g in r["gold_positions"]:
            by_gold.setdefault(g, []).append(int(r["top_pick"] == g))
    return {
        "windows": len(pos),
        "seeds": sorted({r["system"] for r in pos}),
        "top_pick_histogram": [picks.get(i, 0) for i in range(k)],
        "accuracy_by_gold_position": {
            str(g): {"n": len(v), "accuracy": sum(v) / len(v)}
            for g, v in sorted(by_gold.items())
        },
        "top_pick_is_gold": sum(r["top_pick"] in r["gold_positions"] for r in pos) / len(pos),
    }


LABELS = {"first": "FIRST", "first+inst": "FIRST +inst", "listwise": "listwise",
          "first+orders": "FIRST orders", "first+cal": "FIRST +cal",
          "first+inst+cal": "FIRST +inst +cal", CE: "cross-encoder",
          "first-trained": "trained FIRST",
          "first-trained+inst": "trained FIRST +inst"}  # fmt: skip


def label_of(system: str) -> str:
    w = windowed(system)
    return f"{LABELS[w[0]]} W={w[1]} S={w[2]}" if w else LABELS.get(system, system)


def random_order(k: int, cutoff: int = 10) -> tuple[float, float]:
    """Expected nDCG@cutoff and R@cutoff of a random order of ``k`` candidates holding the
    query's one relevant passage (every RAR-b-recipe set has one per query): the passage
    sits at each rank with probability 1/k."""
    from math import log2

    ranks = range(1, min(k, cutoff) + 1)
    return sum(1 / log2(r + 1) for r in ranks) / k, len(ranks) / k


def reportable(data: dict[str, Any]) -> Any:
    """The report section of ``results/<name>.json``: nDCG@10 and R@10 per system and set
    (intervals, paired tests against the first stage; chance is a random order of the
    candidates times the oracle share), seconds and forward passes per query, and the
    top-pick histogram of shuffled windows where run."""
    from scipy.stats import binomtest

    from rarx.eval.report_schema import Measurement, Reportable, Section, interval, scalars

    settings, k = data["settings"], data["settings"]["k"]
    quality, cost, hist, by_gold, shares = [], [], [], [], []
    for dataset, s in data["datasets"].items():
        oracle = s.get("oracle_share_with_answer_in_candidates")
        chance = dict(zip(MEASURES, random_order(k), strict=True))
        p_of = {t["system"]: t["p"] for t in s["paired_tests_nDCG@10"]
                if t["against"] == "first-stage"}  # fmt: skip
        for system, v in s["systems"].items():
            label = label_of(system)
            for m in MEASURES:
                p = p_of.get(system) if m == "nDCG@10" else None
                quality.append(Measurement(
                    label, dataset, m, v[m], interval(v.get(f"{m}_ci95")), v["queries"],
                    None if oracle is None or system == "first-stage" else oracle * chance[m],
                    p, "first-stage" if p is not None else ""))  # fmt: skip
            for m in ("seconds_per_query", "forward_passes_per_query"):
                cost.append(Measurement(label, dataset, m, v[m], n=v["queries"]))
        if oracle is not None:
            quality.append(Measurement(f"top {k} of the first stage", dataset,
                                       "oracle: answer among the candidates", oracle,
                                       n=s["sampled_queries"]))  # fmt: skip
        for key, suffix, who in [("position", "", "FIRST"),
                                 ("position_calibrated", " +cal", "FIRST +cal")]:  # fmt: skip
            pos = s.get(key) or {}
            row = dataset + suffix  # one bar series per set and family
            for i, count in enumerate(pos.get("top_pick_histogram") or []):
                hist.append(Measurement(row, chr(ord("A") + i),
                                        "windows whose top pick is here", count,
                                        n=pos["windows"], chance=pos["windows"] / k))  # fmt: skip
            for g, v in (pos.get("accuracy_by_gold_position") or {}).items():
                ci = binomtest(round(v["accuracy"] * v["n"]), v["n"]).proportion_ci(
                    method="wilson")  # fmt: skip
                by_gold.append(Measurement(row, chr(ord("A") + int(g)),
                                           "top pick is gold, by the gold's position",
                                           v["accuracy"], (ci.low, ci.high), n=v["n"],
                                           chance=1 / k))  # fmt: skip
            if pos:
                n, hist0 = pos["windows"], pos["top_pick_histogram"]
                gold = sum(v["n"] for v in pos["accuracy_by_gold_position"].values())  # 1/window
                shares += [Measurement(f"{who}, shuffled windows", dataset, "top pick is gold",
                                       pos["top_pick_is_gold"], n=n, chance=gold / n / k),
                           Measurement(f"{who}, shuffled windows", dataset,
                                       "top pick at the first identifier", hist0[0] / n, n=n,
                                       chance=1 / k)]  # fmt: skip
    partial = " (partial: not every sampled query is done)" if data.get("partial") else ""
    sections = [
        Section("first-rarb", f"FIRST on RAR-b-recipe Full sets{partial}", tuple(quality),
                note=f"Rerankers reorder the first stage's top {k}. Chance: a random order of "
                "those candidates (one relevant passage per query, times the oracle share). "
                "p-values: paired t-test on nDCG@10 against the first stage."),
        Section("first-rarb-cost", "FIRST on RAR-b: cost per query", tuple(cost), plot="table"),
    ]  # fmt: skip
    if hist:
        sections.append(Section("first-rarb-position", "FIRST's top pick by identifier "
                                 f"position (shuffled windows){partial}", tuple(hist + by_gold),
                                 plot="histogram", note="Each query's candidates shuffled with "
                                 "several seeds, one window each. Chance: a pick uniform over "
                                 "the window's identifiers. Accuracy by the gold passage's "
                                 "position: Wilson 95% intervals, n windows per bar."))
        sections.append(Section("first-rarb-position-share", "FIRST on shuffled windows: "
                                 f"where the top pick lands{partial}", tuple(shares),
                                 plot="table"))  # fmt: skip
    return Reportable("first_rarb", tuple(sections),
                      f"FIRST with {settings['llm']} on {', '.join(data['datasets'])}",
                      scalars(settings, "llm", "k", "seed", "queries", "orders"))


def report_files(
    name: str, summary: dict[str, Any], data_by: dict[str, Any], records: list[dict[str, Any]],
    settings: dict[str, Any],
) -> list[Path]:  # fmt: skip
    """One ``rarx eval report`` results file (kind ``retrieval``) per set: the first stage
    first, every reranker with its paired-test p-value against it."""
    from rarx.eval.report_kinds import with_report
    from rarx.eval.results import envelope, write_results

    out = []
    for dataset, s in summary.items():
        if not s["systems"]:
            continue
        stages = [r.get("first_stage") for r in records
                  if r["dataset"] == dataset and r["system"] == "first-stage"]  # fmt: skip
        stage = stages[0] if stages else "first stage"
        p_of = {t["system"]: t["p"] for t in s["paired_tests_nDCG@10"]
                if t["against"] == "first-stage"}  # fmt: skip
        systems = []
        for system, v in s["systems"].items():
            label = stage if system == "first-stage" else f"{label_of(system)}"
            systems.append({
                "system": label,
                "measures": {m: v[m] for m in MEASURES},
                "queries": v["queries"],
                "ci95": {"nDCG@10": v["nDCG@10_ci95"]},
                "seconds_per_query": v["seconds_per_query"],
                "p_value_vs_first": {} if system == "first-stage"
                else {"nDCG@10": p_of.get(system)},
                "settings": {"cross_encoder": v.get("model"), "k": settings["k"]}
                if system == CE else
                {"llm": v.get("model") if base_system(system) in TRAINED else settings["llm"],
                 "k": settings["k"],
                 "instruction": s["instruction"] if system.endswith("+inst") else None},
            })  # fmt: skip
        data = data_by[dataset]
        body = envelope(
            "retrieval",
            dataset={"name": dataset, "queries": s["sampled_queries"],
                     "documents": len(data.corpus), "complete": s["complete"]},
            systems=systems,
            benchmark={"script": "benchmarks/first_rarb.py", "name": name,
                       "oracle_share_with_answer_in_candidates":
                       s["oracle_share_with_answer_in_candidates"]},
        )  # fmt: skip
        path = RESULTS / "report" / f"{name}-{dataset}.json"
        write_results(path, with_report(body))
        out.append(path)
    return out


def save(
    name: str,
    records: list[dict[str, Any]],
    data_by: dict[str, Any],
    args: Any,
    oracle: dict[str, float],
    instructions: dict[str, str],
    settings: dict[str, Any],
    load_seconds: float,
    wall: float,
    out_of_time: bool,
    quiet: bool,
) -> dict[str, Any]:
    """The summary of what is done so far, rewritten to results/<name>.json (marked
    partial until every system has every sampled query)."""
    import contextlib
    import io

    summary = summarize(records, data_by, args, oracle, instructions)
    payload = {
        "partial": out_of_time or not all(s["complete"] for s in summary.values()),
        "settings": settings,
        "load_seconds": load_seconds,
        "wall_seconds_this_session": wall,
        "datasets": summary,
    }
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        write_result(name, payload, reportable)
    report_files(name, summary, data_by, records, settings)
    return summary


def print_tables(summary: dict[str, Any]) -> None:
    for dataset, s in summary.items():
        rows = [
            [
                name,
                v["queries"],
                round(v["nDCG@10"], 4),
                round(v["R@10"], 4),
                "-"
                if not v["nDCG@10_ci95"]
                else f"{v['nDCG@10_ci95'][0]:.3f}-{v['nDCG@10_ci95'][1]:.3f}",
                round(v["seconds_per_query"], 2),
                round(v["forward_passes_per_query"], 1),
            ]
            for name, v in s["systems"].items()
        ]
        oracle = s["oracle_share_with_answer_in_candidates"]
        print(
            f"\n{dataset}: {s['sampled_queries']} sampled queries; oracle (answer among the "
            f"candidates) {oracle:.3f}; {'complete' if s['complete'] else 'PARTIAL'}"
        )
        print(
            table(
                ["system", "queries", *MEASURES, "nDCG@10 95% CI", "s/query", "passes/query"], rows
            )
        )
        tests = [
            [
                t["system"],
                t["against"],
                t["queries"],
                "-" if t["mean_difference"] is None else f"{t['mean_difference']:+.4f}",
                "-" if t["p"] is None else f"{t['p']:.3g}",
            ]
            for t in s["paired_tests_nDCG@10"]
        ]
        if tests:
            print(table(["system", "against", "queries", "nDCG@10 diff", "p (paired t)"], tests))
        for key, who in [("position", "FIRST"), ("position_calibrated", "FIRST +cal")]:
            p = s.get(key)
            if p:
                print(
                    f"{who}: top pick by identifier position ({p['windows']} shuffled "
                    f"windows): {p['top_pick_histogram']}; top pick is the gold passage in "
                    f"{p['top_pick_is_gold']:.3f}"
                )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--llm", default="qwen2.5-coder-1.5b", help="an LLM spec (BACKEND:MODEL or a model)"
    )
    ap.add_argument("--llm-option", action="append", default=[], help="KEY=VALUE backend option")
    ap.add_argument("--dataset", action="append", help="repeatable; default arc-challenge")
    ap.add_argument(
        "--systems",
        nargs="+",
        type=system_name,
        help="default: every LLM system, and cross-encoder with --cross-encoder",
    )
    ap.add_argument("--cross-encoder", metavar="PATH",
                    help="the cross-encoder system's model: a folder `rarx train cross-encoder` "
                    "wrote, or any Hugging Face cross-encoder")  # fmt: skip
    ap.add_argument("--trained-llm", metavar="SPEC",
                    help="the first-trained systems' LLM: a folder `rarx train first` wrote, "
                    "e.g. ctranslate2:models/first-qwen")  # fmt: skip
    ap.add_argument("--queries", type=int, default=300, help="seeded sample per set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=20, help="candidates reranked (one window)")
    ap.add_argument("--orders", type=int, default=2, help="first+orders: orders per window")
    ap.add_argument("--position-seeds", type=int, default=3)
    ap.add_argument("--passage-tokens", type=int, default=300)
    ap.add_argument("--name", default="first_rarb", help="results/<name>.json and .queries.jsonl")
    ap.add_argument("--resume", action="store_true", help="skip queries the JSONL already holds")
    ap.add_argument("--time-budget", type=float, default=0, help="stop after this many seconds")
    ap.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=0,
        help="rewrite the summary at most this often (the JSONL after every query)",
    )
    ap.add_argument(
        "--summarize", action="store_true", help="rebuild the summaries from the JSONL only"
    )
    args = ap.parse_args()
    args.systems = args.systems or [*LLM_SYSTEMS, *([CE] if args.cross_encoder else []),
                                    *(TRAINED if args.trained_llm else ())]  # fmt: skip
    if CE in args.systems and not args.cross_encoder:
        ap.error("--systems cross-encoder needs --cross-encoder PATH (a model that `rarx train "
                 "cross-encoder` made, or a Hugging Face cross-encoder)")  # fmt: skip
    if {base_system(s) for s in args.systems} & set(TRAINED) and not args.trained_llm:
        ap.error("--systems first-trained needs --trained-llm SPEC (a folder that `rarx train "
                 "first` wrote, e.g. ctranslate2:models/first-qwen)")  # fmt: skip
    datasets = args.dataset or ["arc-challenge"]
    options: dict[str, Any] = {}
    for opt in args.llm_option:
        key, _, value = opt.partition("=")
        options[key] = int(value) if value.isdigit() else value
    settings = {
        "llm": args.llm,
        "llm_options": options,
        "k": args.k,
        "seed": args.seed,
        "queries": args.queries,
        "orders": args.orders,
        "position_seeds": args.position_seeds,
        "passage_tokens": args.passage_tokens,
    }
    jsonl = RESULTS / f"{args.name}.queries.jsonl"
    records: list[dict[str, Any]] = []
    if args.summarize and not jsonl.is_file():
        sys.exit(f"{jsonl} does not exist: nothing to summarize")
    if jsonl.is_file():
        if not (args.resume or args.summarize):
            sys.exit(f"{jsonl} exists: pass --resume to continue it, or another --name")
        lines = jsonl.read_text().splitlines()
        head = json.loads(lines[0])
        if head.get("settings") != settings:
            sys.exit(f"{jsonl} was written with other settings: {head.get('settings')}")
        records = [json.loads(x) for x in lines[1:] if x.strip()]
    else:
        RESULTS.mkdir(parents=True, exist_ok=True)
        jsonl.write_text(json.dumps({"settings": settings}) + "\n")
    done = {(r["dataset"], r["system"], r["qid"]) for r in records}
    if args.summarize:
        summarize_only(args, datasets, records, settings)
        return

    ce_model = cross_encoder_id(args.cross_encoder) if CE in args.systems else None
    check_held(records, (CE,), ce_model, jsonl, "cross-encoder", "model")
    trained_model = (trained_llm_id(args.trained_llm)
                     if {base_system(s) for s in args.systems} & set(TRAINED)
                     else None)  # fmt: skip
    trained_systems = (*TRAINED, *{r["system"] for r in records
                                   if base_system(r["system"]) in TRAINED})  # fmt: skip
    check_held(records, trained_systems, trained_model, jsonl, "trained FIRST", "--trained-llm")
    # the first stage's candidates as recorded: a resumed system reranks the same ones
    stage_held = {(r["dataset"], r["qid"]): r["docids"] for r in records
                  if r["system"] == "first-stage"}  # fmt: skip

    code = code_revision()
    start = time.perf_counter()
    llm, trained, load_seconds = None, None, 0.0
    if any(base_system(s) in LLM_SYSTEMS for s in args.systems):  # only when one runs
        from rarx.llm import load_llm

        t = time.perf_counter()
        llm = load_llm(args.llm, **options)
        load_seconds = time.perf_counter() - t
    if trained_model:
        from rarx.llm import load_llm

        t = time.perf_counter()
        trained = load_llm(args.trained_llm, **options)
        load_seconds += time.perf_counter() - t
    kw = {"passage_tokens": args.passage_tokens}
    data_by: dict[str, Any] = {}
    oracle: dict[str, float] = {}
    instructions: dict[str, str] = {}
    out_of_time = False
    last_checkpoint = start

    def checkpoint(quiet: bool) -> dict[str, Any]:
        """The summary and report files of what is done so far."""
        wall = time.perf_counter() - start
        return save(args.name, records, data_by, args, oracle, instructions, settings,
                    load_seconds, wall, out_of_time, quiet=quiet)  # fmt: skip

    with jsonl.open("a") as sink:
        for dataset in datasets:
            data = load_set(dataset)
            data_by[dataset] = data
            instructions[dataset] = data.instruction
            queries = sample(data, args.queries, args.seed)
            stage_name, cands, stage_seconds = first_stage(data, dataset, queries, args.k)
            by_qid = {r.qid: r for r in cands}
            oracle[dataset] = sum(
                any(data.qrels[q.qid].get(d, 0) > 0 for d in by_qid[q.qid].docids) for q in queries
            ) / len(queries)
            plan = [("first-stage", None)] + [(s, s) for s in args.systems if s not in POSITION]
            for family, which in (("position", "first"), ("position+cal", "first+cal")):
                if family in args.systems:
                    plan += [(f"{family}-s{s}", which) for s in range(args.position_seeds)]
            rerankers = {w: reranker(w, llm, data, args, trained, **kw) for _, w in plan if w}
            for q in queries:
                c = by_qid[q.qid]
                if stage_held.get((dataset, q.qid), list(c.docids)) != list(c.docids):
                    sys.exit(f"{dataset} {q.qid}: the first stage's candidates differ from "
                             f"those {jsonl} holds; resume where they were made")  # fmt: skip
                for system, which in plan:
                    if (dataset, system, q.qid) in done:
                        continue
                    if args.time_budget and time.perf_counter() - start > args.time_budget:
                        out_of_time = True
                        break
                    if which is None:
                        rec = {
                            "dataset": dataset,
                            "system": system,
                            "qid": q.qid,
                            "docids": c.docids,
                            "seconds": stage_seconds,
                            "top_pick": 0,
                            "gold_positions": gold_positions(c.docids, data.qrels[q.qid]),
                            "forward_passes": 0,
                            "first_stage": stage_name,
                        }
                    else:
                        seed = (
                            int(system.rsplit("-s", 1)[1]) if position_family(system) else None
                        )
                        inp = shuffled(c, seed) if seed is not None else c
                        t = time.perf_counter()
                        res = rerankers[which].rerank_detailed([q], [inp])[0]
                        rec = record(
                            dataset,
                            system,
                            q,
                            inp,
                            res,
                            time.perf_counter() - t,
                            dict(data.qrels[q.qid]),
                        )
                        if which == CE:
                            rec["model"] = ce_model
                        elif base_system(which) in TRAINED:
                            rec["model"] = trained_model
                        rec["code"] = code
                    records.append(rec)
                    sink.write(json.dumps(rec) + "\n")
                    sink.flush()
                if out_of_time:
                    break
                if time.perf_counter() - last_checkpoint >= args.checkpoint_seconds:
                    checkpoint(quiet=True)  # the summary costs more than a cross-encoder query
                    last_checkpoint = time.perf_counter()
            if out_of_time:
                break
    print_tables(checkpoint(quiet=False))


def summarize_only(
    args: Any, datasets: list[str], records: list[dict[str, Any]], settings: dict[str, Any]
) -> None:
    """The summary and report files from the records alone (no LLM is loaded; the first
    stage runs again for the oracle share over the whole sample, as a run computes it)."""
    data_by, oracle, instructions = {}, {}, {}
    for dataset in datasets:
        data = data_by[dataset] = load_set(dataset)
        instructions[dataset] = data.instruction
        queries = sample(data, args.queries, args.seed)
        _, cands, _ = first_stage(data, dataset, queries, args.k)
        oracle[dataset] = sum(
            any(data.qrels[r.qid].get(d, 0) > 0 for d in r.docids) for r in cands
        ) / len(queries)
    # The load and wall seconds are the runs' own: a rebuild keeps what they recorded.
    before = RESULTS / f"{args.name}.json"
    kept = json.loads(before.read_text()) if before.is_file() else {}
    summary = save(args.name, records, data_by, args, oracle, instructions, settings,
                   kept.get("load_seconds", 0.0), kept.get("wall_seconds_this_session", 0.0),
                   False, quiet=False)  # fmt: skip
    print_tables(summary)


if __name__ == "__main__":
    main()
