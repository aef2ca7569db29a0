"""Meta-training instances with retrieved demonstrations (Mueller et al., "Meta-training
with demonstration retrieval"): k labelled examples retrieved from a bank by the
question, then the question with its lettered options -> the answer label.

Built from the multiple-choice validation splits that are clean for training
(:mod:`rarx.train.data.mc`: never PIQA, SIQA, WinoGrande or HellaSwag). The held-out
task (the one the reader is evaluated on) and its family (ARC-Easy and ARC-Challenge
come from one dataset) are left out of both the training questions and the bank, and a
training question whose text is a held-out question is dropped. BoolQ is left out by
default (its passages make prompts several times longer).

The bank is a qa-memory index (MiniLM over the lettered questions; answers are labels)
of the training split; the demonstrations of a question are its nearest bank entries,
never the question itself (same id or same text), exactly as the ``demos`` stage picks
them. Each item's options are put in a seeded random order first, so every label is
the answer about equally often and the reader cannot learn a favourite letter. The
prompt is the ``generate`` stage's ``multiple-choice`` prompt, so the trained reader
sees in training what a ``demos`` + ``generate`` pipeline shows it.

Output folder: ``train.jsonl`` and ``dev.jsonl`` (``messages``, ``prefix``, ``target``
plus ``id``, ``source``, ``demo_ids``, ``demo_sources``), ``bank/`` (the index),
``manifest.json`` (settings, counts, answer-label shares, overlap with evaluation
sets).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError, InputError
from rarx.eval.datasets.base import McrItem
from rarx.eval.mc_reader import LABELS, label_token, lettered, reader_prompt
from rarx.io.jsonl import write_jsonl_file
from rarx.train.data.mc import SOURCES, build_mc, default_sources, spread

BANK_DIR = "bank"
# Tasks that share a dataset with a held-out task leave with it.
FAMILIES = {"arc-easy": ("arc-easy", "arc-challenge-val"),
            "arc-challenge-val": ("arc-easy", "arc-challenge-val")}  # fmt: skip


@dataclass(frozen=True)
class ReaderDataSettings:
    held_out: str = "arc-easy"
    k: int = 2  # demonstrations per instance
    sources: tuple[str, ...] | None = None  # default: every clean source but the held-out
    limit: int | None = None  # training questions per source (spread through it)
    dev_limit: int | None = 50  # dev questions per source
    shuffle_options: bool = True
    seed: int = 0
    encoder: str = "minilm"  # the bank's retriever

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ConfigError(f"--k must be >= 0, got {self.k}")

    def left_out(self) -> tuple[str, ...]:
        return FAMILIES.get(self.held_out, (self.held_out,))

    def training_sources(self) -> list[str]:
        names = list(self.sources) if self.sources else list(default_sources())
        unknown = [n for n in names if n not in SOURCES]
        if unknown:
            raise ConfigError(
                f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}"
            )
        return [n for n in names if n not in self.left_out()]


@dataclass
class ReaderDataSummary:
    settings: dict[str, Any]
    instances: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> source -> n
    bank: int = 0
    dropped_held_out: int = 0  # training questions whose text is a held-out question
    answer_labels: dict[str, int] = field(default_factory=dict)
    demo_sources: dict[str, int] = field(default_factory=dict)
    overlap: dict[str, float] = field(default_factory=dict)


def shuffled(it: McrItem, seed: int) -> McrItem:
    """``it`` with its options in a random order fixed by the item and the seed."""
    order = list(range(len(it.options)))
    random.Random(f"{seed}:{it.id}").shuffle(order)
    return replace(it, options=tuple(it.options[i] for i in order), label=order.index(it.label))


def held_out_items(held_out: str) -> list[McrItem]:
    """Every question of the held-out task (for the text-overlap check)."""
    from rarx.eval.datasets.olmo import read_arrow

    rel, make = SOURCES[held_out]
    return list(make(read_arrow(rel)))


def build_reader_data(
    out: str | Path,
    settings: ReaderDataSettings | None = None,
    items: Sequence[McrItem] | None = None,
    quiet: bool = True,
) -> ReaderDataSummary:
    """Write the instances and the bank into ``out``. ``items`` (default: the packaged
    clean sources, with the held-out task) are filtered as the module says; held-out
    items among them serve only the overlap check."""
    from rarx.eval.leakage import overlap_report, question_key
    from rarx.index.qa_memory import QAMemoryIndex, QAPair
    from rarx.types import Query

    s = settings or ReaderDataSettings()
    names = s.training_sources()
    overlap = None
    if items is None:  # build_mc measures the overlap of these sources with every eval set
        items, manifest = build_mc(names)
        overlap = manifest["overlap"]
        held = held_out_items(s.held_out) if s.held_out in SOURCES else []
    else:
        held = [it for it in items if it.source in s.left_out()]
    banned = {question_key(it.question) for it in held} | {question_key(it.query) for it in held}
    kept: list[McrItem] = []
    dropped = 0
    for it in items:
        if it.source not in names:
            continue
        if question_key(it.question) in banned or question_key(it.query) in banned:
            dropped += 1
            continue
        kept.append(shuffled(it, s.seed) if s.shuffle_options else it)
    if not any(it.split == "train" for it in kept):
        raise InputError(f"no training questions left from {', '.join(names) or 'no source'} "
                         f"once {', '.join(s.left_out())} is left out")  # fmt: skip
    bank_items = [it for it in kept if it.split == "train"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = [QAPair(it.id, lettered(it.query, it.options), LABELS[it.label]) for it in bank_items]
    bank = QAMemoryIndex.build(pairs, out / BANK_DIR, model=s.encoder, overwrite=True, quiet=quiet)
    source_of = {it.id: it.source for it in bank_items}
    # The same question under another id (or in another option order) is the question.
    key_of = {it.id: question_key(it.query) for it in bank_items}

    summary = ReaderDataSummary(settings=asdict(s), bank=len(pairs), dropped_held_out=dropped)
    for split, cap in (("train", s.limit), ("dev", s.dev_limit)):
        chosen = [x for n in names
                  for x in spread([it for it in kept if it.split == split and it.source == n],
                                  cap)]  # fmt: skip
        texts = [lettered(it.query, it.options) for it in chosen]
        found = bank.nearest([Query(it.id, t) for it, t in zip(chosen, texts, strict=True)],
                             s.k + 2) if s.k and chosen else [[] for _ in chosen]  # fmt: skip
        rows: list[dict[str, Any]] = []
        for it, text, near in zip(chosen, texts, found, strict=True):
            own = question_key(it.query)
            demos = [p.as_dict() for p, _ in near if p.id != it.id and key_of[p.id] != own][: s.k]
            prompt = reader_prompt(text, demos)
            rows.append({"id": it.id, "source": it.source, "split": split,
                         "messages": [list(m) for m in prompt.messages], "prefix": prompt.prefix,
                         "target": label_token(LABELS[it.label]),
                         "demo_ids": [d["id"] for d in demos],
                         "demo_sources": [source_of[d["id"]] for d in demos]})  # fmt: skip
            if split == "train":
                summary.answer_labels[LABELS[it.label]] = (
                    summary.answer_labels.get(LABELS[it.label], 0) + 1
                )
                for d in demos:
                    summary.demo_sources[source_of[d["id"]]] = (
                        summary.demo_sources.get(source_of[d["id"]], 0) + 1
                    )
        summary.instances[split] = dict(Counter(r["source"] for r in rows))
        write_jsonl_file(out / f"{split}.jsonl", rows)
    if overlap is None:
        overlap = overlap_report([t for it in kept for t in (it.question, it.query)])
    summary.overlap = overlap
    from rarx.train.data.manifest import write_manifest

    write_manifest(out, {"name": "reader", **asdict(summary)})
    return summary


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Instances written by :func:`build_reader_data`."""
    from rarx.io.jsonl import read_jsonl

    rows = []
    for i, r in read_jsonl(path):
        rows.append(r)
        if "messages" not in r or "target" not in r:
            raise ConfigError(f"{path}:{i}: not a reader instance (expected messages, "
                              "target); build it with `rarx train data reader`")  # fmt: skip
    return rows


def read_summary(out: str | Path) -> dict[str, Any] | None:
    from rarx.train.data.manifest import read_manifest

    found = read_manifest(out)
    return found if found is not None and found.get("name") == "reader" else None


def default_dir(settings: ReaderDataSettings) -> Path:
    """Where ``rarx train reader --data reasoning-mc`` keeps the data it builds on first
    use: ``data/reader/<held-out>-k<k>-<limit>-s<seed>`` under the working directory."""
    return (
        Path("data")
        / "reader"
        / (f"{settings.held_out}-k{settings.k}-{settings.limit or 'all'}-s{settings.seed}")
    )
