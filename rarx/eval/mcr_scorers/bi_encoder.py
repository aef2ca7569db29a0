"""``bi-encoder``: cosine similarity of query and option vectors, exactly as RAR-b's
``AutoRetriever.evaluate_mcr`` computes it (see :mod:`rarx.eval.mcr`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from rarx.eval.datasets.base import McrItem
from rarx.eval.mcr import bi_encoder_scores, mcr_encoder

DEFAULT_MODEL = "minilm"


class BiEncoderScorer:
    name: ClassVar[str] = "bi-encoder"
    OPTIONS: ClassVar[frozenset[str]] = frozenset({"device", "batch_size", "per_question"})

    def __init__(
        self,
        model: Any = None,
        *,
        device: str | None = None,
        batch_size: int = 64,
        per_question: bool = False,
    ):
        model = DEFAULT_MODEL if model is None else model
        self.model_name = model if isinstance(model, str) else type(model).__name__
        self.encoder = mcr_encoder(model, device) if isinstance(model, str) else model
        self.batch_size = int(batch_size)
        self.per_question = per_question
        # Options are the same with and without instructions: encode them once per set.
        self._items: tuple[McrItem, ...] = ()
        self._cache: dict[str, np.ndarray] = {}

    def scores(self, items: Sequence[McrItem], with_instructions: bool) -> list[np.ndarray]:
        key = tuple(items)
        if key != self._items:
            self._items, self._cache = key, {}
        return bi_encoder_scores(items, self.encoder, with_instructions, self.batch_size,
                                 self._cache, self.per_question)  # fmt: skip

    def settings(self) -> dict[str, Any]:
        st = getattr(self.encoder, "model", None)
        return {
            "scorer": self.name,
            "model": self.model_name,
            "max_seq_length": int(st.max_seq_length) if st is not None else None,
            "similarity": "cosine",
            "query_with_instruction": "(instruction + ' ' + query).strip()",
            "per_question": self.per_question,
            "ties": "first option",
        }
