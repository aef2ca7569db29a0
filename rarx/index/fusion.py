"""Fusing the rankings of several systems for the same queries (hybrid search)."""

from __future__ import annotations

from collections.abc import Sequence

from rarx.types import Document, Ranking

RRF_K = 60  # Cormack, Clarke and Buettcher (2009)


def rrf(runs: Sequence[Sequence[Ranking]], k: int = 10, rrf_k: int = RRF_K) -> list[Ranking]:
    """Reciprocal rank fusion: score(d) = sum over runs of 1 / (rrf_k + rank(d)).

    ``runs`` holds one list of rankings per system, all for the same queries in the same
    order. Ties are broken by docid so the result does not depend on the order of runs.
    A fused hit keeps the document of the last run that carried one.
    """
    if not runs:
        return []
    n = len(runs[0])
    if any(len(r) != n for r in runs):
        raise ValueError("every run must hold one ranking per query, in the same order")
    depth = max((len(run[i]) for run in runs for i in range(n)), default=0)
    weights = [1.0 / (rrf_k + rank) for rank in range(1, depth + 1)]
    fused = []
    for i in range(n):
        qid = runs[0][i].qid
        scores: dict[str, float] = {}
        docs: dict[str, Document] = {}
        for run in runs:
            ranking = run[i]
            if ranking.qid != qid:
                raise ValueError(f"runs disagree on query order: {ranking.qid!r} vs {qid!r}")
            ids = ranking.docids  # arrays, not Hit objects
            for docid, weight in zip(ids, weights, strict=False):
                scores[docid] = scores.get(docid, 0.0) + weight
            for docid, doc in zip(ids, ranking.docs, strict=True):
                if doc is not None:
                    docs[docid] = doc
        order = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        ids = [d for d, _ in order]
        fused.append(
            Ranking.from_arrays(
                qid, ids, [s for _, s in order], [docs.get(d) for d in ids] if docs else None
            )
        )
    return fused
