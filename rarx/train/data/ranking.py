"""Ranking windows for FIRST training: a query, the first stage's candidates as the
reranker will see them, and a teacher's order of those candidates.

The teacher is either the qrels (judged-relevant passages first, by grade, then the
first stage's order) or a teacher reranker's TREC run (its scores; candidates it did
not score follow in first-stage order). One window per query: the top ``window``
candidates. A file is JSONL, one window per line::

    {"qid": "q3", "query": "...", "docids": ["d7", ...], "passages": ["...", ...],
     "order": [2, 0, 1, ...], "source": "sciq", "teacher": "qrels", "instruction": ""}

``passages`` are in the order the prompt shows them; ``order`` lists their positions
best first. ``grades`` (optional; the qrels teacher writes them) are the shown passages'
judged grades (0: not relevant), so a trainer can tell the relevant passages from the
order the teacher merely keeps among the rest. ``instruction`` (optional) is the task the
prompt opens with, as the FIRST
reranker's ``instruction`` writes it (e.g. RAR-b's "Retrieve the answer to the
question."). Passages are stored as the reranker reads them (title and text on one
line, :func:`rarx.rerank.base.passage_text`), so training needs no index.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError, InputError
from rarx.train.data.mc import EVAL_ONLY
from rarx.types import Document, Query, Ranking

log = logging.getLogger(__name__)

# Packaged sets that are evaluation data (RAR-b test files or the splits they are made
# of, plus RAR-b's code and math Full sets): never training data.
EVALUATION_ONLY = frozenset({*EVAL_ONLY, "code", "math"})
INSERT_AT = ("last", "random")  # where a relevant passage the first stage missed goes


@dataclass(frozen=True)
class RankingWindow:
    qid: str
    query: str
    docids: tuple[str, ...]
    passages: tuple[str, ...]  # in the order the prompt shows them
    order: tuple[int, ...]  # the teacher's order: positions into ``passages``, best first
    source: str = ""
    teacher: str = ""
    instruction: str = ""  # the task instruction the prompt opens with ("": none)
    grades: tuple[int, ...] = ()  # the qrels grade of each shown passage (): not known

    def __post_init__(self) -> None:
        n = len(self.passages)
        if self.grades and len(self.grades) != n:
            raise ValueError(
                f"window {self.qid!r}: grades must give one grade per passage ({n}), got "
                f"{len(self.grades)}"
            )
        if n < 2 or len(self.docids) != n:
            raise ValueError(
                f"window {self.qid!r}: needs at least 2 passages with one docid each, got "
                f"{n} passages and {len(self.docids)} docids"
            )
        if sorted(self.order) != list(range(n)):
            raise ValueError(
                f"window {self.qid!r}: order must list each of the {n} positions once, "
                f"got {list(self.order)}"
            )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def read_windows(path: str | Path) -> list[RankingWindow]:
    from rarx.io.jsonl import read_jsonl

    windows = []
    for line, row in read_jsonl(path):
        try:
            windows.append(
                RankingWindow(
                    str(row["qid"]),
                    str(row["query"]),
                    tuple(map(str, row["docids"])),
                    tuple(map(str, row["passages"])),
                    tuple(int(i) for i in row["order"]),
                    str(row.get("source", "")),
                    str(row.get("teacher", "")),
                    str(row.get("instruction") or ""),
                    tuple(int(g) for g in row.get("grades") or ()),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"not a ranking window ({exc}); each line needs qid, query, docids, "
                "passages and order (build one with `rarx train data ranking`)",
                path,
                line,
            ) from None
    if not windows:
        raise InputError("no ranking windows in the file", path)
    return windows


def write_windows(path: str | Path, windows: Iterable[RankingWindow]) -> int:
    from rarx.io.atomic import atomic_write
    from rarx.io.jsonl import write_jsonl

    with atomic_write(path) as f:
        return write_jsonl(f, (w.as_dict() for w in windows))


# -- teacher orders ------------------------------------------------------------------


def order_from_qrels(docids: Sequence[str], judged: Mapping[str, int]) -> list[int]:
    """Relevant candidates first (higher grade first), then the rest; ties keep the
    first stage's order."""
    return sorted(range(len(docids)), key=lambda i: -max(0, judged.get(docids[i], 0)))


def order_from_run(docids: Sequence[str], scores: Mapping[str, float]) -> list[int]:
    """Candidates by the teacher's score; ones it did not score follow in first-stage
    order. Ties keep the first stage's order."""
    scored = sorted(
        (i for i, d in enumerate(docids) if d in scores), key=lambda i: -scores[docids[i]]
    )
    return scored + [i for i, d in enumerate(docids) if d not in scores]


# -- building -------------------------------------------------------------------------


@dataclass
class BuildStats:
    queries: int = 0
    windows: int = 0
    skipped_short: int = 0  # fewer than two candidates
    without_relevant: int = 0  # qrels teacher: no relevant passage among the candidates
    inserted_relevant: int = 0  # ... and one was put in place of the last candidate
    shuffled: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    overlap: dict[str, float] = field(default_factory=dict)  # evaluation set -> share


def make_windows(
    queries: Sequence[Query],
    rankings: Sequence[Ranking],
    text: Mapping[str, str],
    *,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    teacher_run: Mapping[str, Mapping[str, float]] | None = None,
    window: int = 20,
    shuffle: float = 0.0,
    insert_relevant: bool = True,
    insert_at: str = "last",
    seed: int = 42,
    source: str = "",
    instructions: Mapping[str, str] | None = None,
) -> tuple[list[RankingWindow], BuildStats]:
    """One window per query from its top ``window`` candidates, ordered by the teacher:
    ``teacher_run`` when given, else ``qrels``.

    With the qrels teacher and ``insert_relevant``, a query whose candidates hold no
    relevant passage gets its best judged one in place of the last candidate (else the
    window would teach only the first stage's order). ``insert_at`` says where it goes:
    ``last`` (the last candidate's place) or ``random`` (a seeded position, so windows
    shown in the first stage's order do not teach that an answer the first stage missed
    sits last). ``shuffle`` is the share of windows shown in a random order rather than
    the first stage's, so the model learns from the passages and not only from their
    positions; which windows, and their order, depend only on ``seed`` and the query id.
    ``instructions``: query id -> the task instruction its prompt opens with.
    """
    if qrels is None and teacher_run is None:
        raise ConfigError("make_windows needs a teacher: qrels or a teacher run")
    if window < 2:
        raise ConfigError(f"a window needs at least 2 passages, got {window}")
    if not 0.0 <= shuffle <= 1.0:
        raise ConfigError(f"shuffle is a share of windows in [0, 1], got {shuffle}")
    if insert_at not in INSERT_AT:
        raise ConfigError(f"insert_at must be one of {', '.join(INSERT_AT)}, got {insert_at!r}")
    teacher = "run" if teacher_run is not None else "qrels"
    stats = BuildStats()
    out: list[RankingWindow] = []
    for q, r in zip(queries, rankings, strict=True):
        stats.queries += 1
        docids = [d for d in r.docids if d in text][:window]
        rng = random.Random(f"{seed}:{q.qid}")
        judged: Mapping[str, int] = {}
        if teacher == "qrels":
            judged = (qrels or {}).get(q.qid, {})
            if not any(judged.get(d, 0) > 0 for d in docids):
                stats.without_relevant += 1
                best = max(
                    (d for d, g in judged.items() if g > 0 and d in text),
                    key=lambda d: judged[d],
                    default=None,
                )
                if insert_relevant and best is not None and docids:
                    if len(docids) == window:
                        docids.pop()
                    at = len(docids)
                    if insert_at == "random":
                        at = random.Random(f"{seed}:insert:{q.qid}").randint(0, len(docids))
                    docids.insert(at, best)
                    stats.inserted_relevant += 1
            order = order_from_qrels(docids, judged)
        else:
            order = order_from_run(docids, (teacher_run or {}).get(q.qid, {}))
        if len(docids) < 2:
            stats.skipped_short += 1
            continue
        shown = list(range(len(docids)))
        if rng.random() < shuffle:
            rng.shuffle(shown)
            stats.shuffled += 1
        where = {p: j for j, p in enumerate(shown)}  # first-stage position -> shown position
        out.append(
            RankingWindow(
                q.qid,
                q.text,
                tuple(docids[p] for p in shown),
                tuple(text[docids[p]] for p in shown),
                tuple(where[p] for p in order),
                source,
                teacher,
                (instructions or {}).get(q.qid, ""),
                tuple(max(0, judged.get(docids[p], 0)) for p in shown) if teacher == "qrels"
                else (),
            )
        )
        stats.windows += 1
    return out, stats


def corpus_text(corpus: Iterable[Document]) -> dict[str, str]:
    """docid -> the passage as the reranker reads it."""
    from rarx.rerank.base import passage_text
    from rarx.types import Hit

    return {d.docid: passage_text(Hit(d.docid, 0.0, d), None) for d in corpus}


def build_ranking_data(
    dataset: str,
    out: str | Path,
    *,
    index: str | Path | None = None,
    teacher_run: str | Path | None = None,
    window: int = 20,
    limit: int | None = None,
    shuffle: float = 0.0,
    insert_relevant: bool = True,
    insert_at: str = "last",
    seed: int = 42,
    split: str = "test",
    work_dir: Path = Path("indexes/eval"),
    quiet: bool = True,
) -> BuildStats:
    """Ranking windows for a dataset's judged queries (``limit``: a seeded sample of
    them), written to ``out``. Candidates come from ``index`` (any rarx index over the
    dataset's corpus), or BM25 built over the corpus in ``work_dir``."""
    from rarx.eval.retrieval import resolve_dataset

    name = Path(dataset).name if Path(dataset).is_dir() else dataset
    if name in EVALUATION_ONLY:
        raise ConfigError(
            f"{name!r} is evaluation data (a RAR-b test set or the split it is made of); "
            f"train on sets that are not evaluated, e.g. sciq, boolq or squad"
        )
    data = resolve_dataset(dataset, split)
    queries = data.judged_queries
    if limit is not None and limit < len(queries):
        queries = sorted(random.Random(seed).sample(queries, limit), key=lambda q: q.qid)
    if index is not None:
        from rarx.eval.systems import index_run

        run = index_run(Path(index), queries, window)
    else:
        from rarx.eval.systems import bm25_run

        run = bm25_run(data, queries, window, work_dir, quiet)
    run_scores = None
    if teacher_run is not None:
        from rarx.io.trec import read_run

        run_scores = {r.qid: {h.docid: h.score for h in r.hits} for r in read_run(teacher_run)}
        missing = sum(1 for q in queries if q.qid not in run_scores)
        if missing == len(queries):
            raise InputError(
                f"the teacher run has none of the {len(queries)} query ids "
                f"of {dataset} (e.g. {queries[0].qid!r})",
                teacher_run,
            )
    windows, stats = make_windows(
        queries,
        run.rankings,
        corpus_text(data.corpus),
        qrels=None if run_scores is not None else data.qrels,
        teacher_run=run_scores,
        window=window,
        shuffle=shuffle,
        insert_relevant=insert_relevant,
        insert_at=insert_at,
        seed=seed,
        source=name,
    )
    if not windows:
        raise ConfigError(f"no window has two candidates: {dataset} gave nothing to train on")
    write_windows(out, windows)
    stats.notes = {"first_stage": run.name, **run.settings}
    stats.overlap = windows_overlap(windows)
    from rarx.train.data.manifest import write_manifest

    write_manifest(out, {
        "name": "ranking", "dataset": name, "path": str(data.path), "split": split,
        "teacher": "run" if teacher_run is not None else "qrels",
        "teacher_run": str(teacher_run) if teacher_run is not None else None,
        "index": str(index) if index is not None else None, "window": window,
        "limit": limit, "shuffle": shuffle, "insert_relevant": insert_relevant,
        "insert_at": insert_at, "seed": seed,
        "counts": {k: v for k, v in asdict(stats).items() if isinstance(v, int)},
        "first_stage": stats.notes, "overlap": stats.overlap,
    })  # fmt: skip
    log.info("%d ranking windows from %d queries of %s -> %s", stats.windows, stats.queries,
             dataset, out)  # fmt: skip
    return stats


def windows_overlap(windows: Sequence[RankingWindow]) -> dict[str, float]:
    """Share of each evaluation set rarx knows whose questions are among the windows'
    queries (:func:`rarx.eval.leakage.overlap_report`)."""
    from rarx.eval.leakage import overlap_report

    return overlap_report(w.query for w in windows)


def data_overlap(path: str | Path, windows: Sequence[RankingWindow]) -> dict[str, float]:
    """The overlap recorded in the file's manifest when it describes this very file,
    else measured now."""
    from rarx.train.data.manifest import describes, read_manifest

    manifest = read_manifest(path) or {}
    if "overlap" in manifest and describes(manifest, path):
        return dict(manifest["overlap"])
    return windows_overlap(windows)
