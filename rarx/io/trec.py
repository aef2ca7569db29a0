"""TREC run files (``qid Q0 docid rank score tag``) and qrels (``qid 0 docid rel``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from rarx.errors import InputError
from rarx.io.atomic import atomic_write
from rarx.io.jsonl import open_text
from rarx.types import Ranking

Qrels = dict[str, dict[str, int]]


def iter_run(path: str | Path) -> Iterator[tuple[str, str, float]]:
    """``(qid, docid, score)`` per line of a TREC run file, checked as it is read."""
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise InputError(
                    f"expected 6 columns 'qid Q0 docid rank score tag', found {len(parts)}",
                    path,
                    lineno,
                )
            try:
                score = float(parts[4])
            except ValueError:
                raise InputError(f"score is not a number: {parts[4]!r}", path, lineno) from None
            yield parts[0], parts[2], score


def read_run(path: str | Path) -> list[Ranking]:
    runs: dict[str, tuple[list[str], list[float]]] = defaultdict(lambda: ([], []))
    for qid, docid, score in iter_run(path):
        docids, scores = runs[qid]
        docids.append(docid)
        scores.append(score)
    rankings = []
    for qid, (docids, scores) in runs.items():
        values = np.array(scores, dtype=np.float64)
        # Stable sort keeps file order among ties, as trec_eval's input order would.
        order = np.argsort(-values, kind="stable")
        rankings.append(
            Ranking.from_arrays(qid, np.array(docids, dtype=object)[order], values[order])
        )
    return rankings


def format_run(rankings: Iterable[Ranking], tag: str = "rarx") -> Iterable[str]:
    for r in rankings:
        for rank, (docid, score) in enumerate(zip(r.docids, r.scores.tolist(), strict=True), 1):
            yield f"{r.qid} Q0 {docid} {rank} {score:.6f} {tag}\n"


def write_run(path: str | Path, rankings: Iterable[Ranking], tag: str = "rarx") -> None:
    with atomic_write(path) as f:
        f.writelines(format_run(rankings, tag))


def read_qrels(path: str | Path) -> Qrels:
    """TREC qrels (4 columns) or BEIR qrels TSV (``query-id corpus-id score`` with header)."""
    qrels: Qrels = defaultdict(dict)
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if lineno == 1 and parts[0] in ("query-id", "qid", "query_id"):
                continue  # BEIR header
            if len(parts) == 4:
                qid, _, docid, rel = parts
            elif len(parts) == 3:
                qid, docid, rel = parts
            else:
                raise InputError(
                    f"expected 'qid 0 docid rel' (TREC) or 'qid docid rel' (BEIR), "
                    f"found {len(parts)} columns",
                    path,
                    lineno,
                )
            try:
                qrels[qid][docid] = int(float(rel))
            except ValueError:
                raise InputError(f"relevance is not a number: {rel!r}", path, lineno) from None
    if not qrels:
        raise InputError("qrels file is empty", path)
    return dict(qrels)


def write_qrels(path: str | Path, qrels: Qrels, beir: bool = False) -> None:
    with atomic_write(path) as f:
        if beir:
            f.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in qrels.items():
            for docid, rel in docs.items():
                f.write(f"{qid}\t{docid}\t{rel}\n" if beir else f"{qid} 0 {docid} {rel}\n")
