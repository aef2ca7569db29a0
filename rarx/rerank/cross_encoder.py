"""Cross-encoder reranking: sentence-transformers ``CrossEncoder`` over (query, passage)
pairs. Any HF name or local path; all pairs of a batch of queries go to one
``predict`` call so its batching is used fully."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from rarx.errors import ConfigError, require
from rarx.models.registry import hub_error, resolve_model
from rarx.rerank.base import DocLookup, RerankResult, check_pairs, passage_text, reordered
from rarx.rerank.permutation import order_by_scores
from rarx.types import Query, Ranking


class CrossEncoderReranker:
    method: ClassVar[str] = "cross-encoder"

    def __init__(
        self,
        model: str,
        k: int = 100,
        *,
        batch_size: int = 32,
        max_length: int | None = 512,
        device: str | None = None,
        docs: DocLookup | None = None,
        model_obj: Any = None,
    ):
        if k < 0:
            raise ConfigError(f"k must be non-negative, got {k}")
        self.k = int(k)
        self.batch_size = int(batch_size)
        self.docs = docs
        self.name = model
        if model_obj is not None:  # an already loaded CrossEncoder
            self.model = model_obj
            return
        st = require("sentence_transformers", "dense")
        source = resolve_model(model).source
        try:
            self.model = st.CrossEncoder(source, max_length=max_length, device=device)
        except OSError as exc:
            raise hub_error(model, exc) from exc

    def rerank(self, queries: Sequence[Query], rankings: Sequence[Ranking]) -> list[Ranking]:
        return [r.ranking for r in self.rerank_detailed(queries, rankings)]

    def rerank_detailed(
        self, queries: Sequence[Query], rankings: Sequence[Ranking]
    ) -> list[RerankResult]:
        check_pairs(queries, rankings)
        pairs: list[tuple[str, str]] = []
        spans: list[tuple[int, int]] = []
        for q, r in zip(queries, rankings, strict=True):
            top = r.hits[: self.k] if len(r.hits[: self.k]) > 1 else ()
            spans.append((len(pairs), len(pairs) + len(top)))
            pairs.extend((q.text, passage_text(h, self.docs)) for h in top)
        start = time.perf_counter()
        scores = (
            self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False).tolist()
            if pairs
            else []
        )
        seconds = time.perf_counter() - start
        results = []
        for r, (a, b) in zip(rankings, spans, strict=True):
            if a == b:  # none or one candidate: unchanged, no model call
                results.append(RerankResult(r))
                continue
            s = scores[a:b]
            event = ("cross_encoder", {"model": self.name, "pairs": b - a,
                                       "seconds": seconds * (b - a) / len(pairs)})  # fmt: skip
            results.append(RerankResult(reordered(r, order_by_scores(s), s), (event,)))
        return results
