"""The ``rerank`` stage: a reranker over each state's ranking, every LLM call traced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rarx.errors import ConfigError
from rarx.rerank import Reranker, make_reranker
from rarx.types import QueryState


class RerankStage:
    name: ClassVar[str] = "rerank"
    needs: ClassVar[frozenset[str]] = frozenset({"ranking"})
    provides: ClassVar[frozenset[str]] = frozenset({"ranking"})

    def __init__(self, reranker: Reranker):
        self.reranker = reranker

    @classmethod
    def from_params(
        cls, method: str = "first", llm: str = "smollm2-135m", k: int = 100, window: int = 20,
        stride: int = 10, strict: bool = False, **kw: Any,
    ) -> RerankStage:  # fmt: skip
        """From pipeline parameters (``{method: first, llm: smollm2-135m, k: 20}``)."""
        return cls(make_reranker(method, llm, k, window, stride, strict, **kw))

    def run(self, batch: Sequence[QueryState]) -> list[QueryState]:
        if not batch:
            return []
        missing = [s.query.qid for s in batch if s.ranking is None]
        if missing:
            raise ConfigError(
                f"rerank needs a ranking, queries {missing[:5]} have none; "
                f"put a retrieve stage before rerank"
            )
        results = self.reranker.rerank_detailed(
            [s.query for s in batch],
            [s.ranking for s in batch],  # type: ignore[misc]
        )
        out = []
        for state, result in zip(batch, results, strict=True):
            new = state.with_ranking(result.ranking)
            for event, data in result.events:
                new = new.traced(self.name, event, method=self.reranker.method, **data)
            out.append(new)
        return out
