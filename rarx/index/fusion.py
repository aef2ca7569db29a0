"""Fusing the rankings of several systems for the same queries (hybrid search)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from rarx.types import Hit, Ranking

RRF_K = 60  # Cormack, Clarke and Buettcher (2009)


def rrf(runs: Sequence[Sequence[Ranking]], k: int = 10, rrf_k: int = RRF_K) -> list[Ranking]:
    """Reciprocal rank fusion: score(d) = sum over runs of 1 / (rrf_k + rank(d)).

    ``runs`` holds one list of rankings per system, all for the same queries in the same
    order. Ties are broken by docid so the result does not depend on the order of runs.
    """
    if not runs:
        return []
    n = len(runs[0])
    if any(len(r) != n for r in runs):
        raise ValueError("every run must hold one ranking per query, in the same order")
    fused = []
    for i in range(n):
        qid = runs[0][i].qid
        scores: dict[str, float] = defaultdict(float)
        docs: dict[str, Hit] = {}
        for run in runs:
            if run[i].qid != qid:
                raise ValueError(f"runs disagree on query order: {run[i].qid!r} vs {qid!r}")
            for rank, hit in enumerate(run[i].hits, 1):
                scores[hit.docid] += 1.0 / (rrf_k + rank)
                if hit.doc is not None or hit.docid not in docs:
                    docs[hit.docid] = hit
        order = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        fused.append(Ranking(qid, tuple(Hit(d, s, docs[d].doc) for d, s in order)))
    return fused
