"""``cross-encoder``: a sentence-transformers CrossEncoder scores each (query, option)
pair, as RAR-b's ``AutoCrossEncoder.evaluate_mcr`` does: at most 512 tokens, the query
alone without instructions and ``instruction + " " + query`` (not stripped) with them,
scores from ``CrossEncoder.predict`` with its own activation. All pairs of a set go to
one ``predict`` call, so its batching is used fully."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from rarx.errors import ConfigError
from rarx.eval.datasets.base import McrItem

RARB_MAX_LENGTH = 512


def cross_encoder_query(item: McrItem, with_instructions: bool) -> str:
    """The first text of each pair, as RAR-b builds it."""
    return item.instruction + " " + item.query if with_instructions else item.query


class CrossEncoderScorer:
    name: ClassVar[str] = "cross-encoder"
    OPTIONS: ClassVar[frozenset[str]] = frozenset({"device", "batch_size", "max_length"})

    def __init__(
        self,
        model: Any = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int = RARB_MAX_LENGTH,
    ):
        if model is None:
            raise ConfigError(
                "the cross-encoder scorer needs --model: a CrossEncoder's HF name or local "
                "path (none is packaged; `rarx train cross-encoder` makes one)"
            )
        self.batch_size = int(batch_size)
        if isinstance(model, str):
            from rarx.rerank.cross_encoder import CrossEncoderReranker

            self.model_name = model
            self.model = CrossEncoderReranker(model, max_length=max_length, device=device).model
        else:
            self.model_name, self.model = type(model).__name__, model
        labels = int(getattr(self.model, "num_labels", 1) or 1)
        if labels != 1:
            raise ConfigError(
                f"{self.model_name} has {labels} output labels; an MCR cross-encoder gives "
                "one relevance score per pair (num_labels=1)"
            )

    def scores(self, items: Sequence[McrItem], with_instructions: bool) -> list[np.ndarray]:
        pairs = [(cross_encoder_query(it, with_instructions), o)
                 for it in items for o in it.options]  # fmt: skip
        flat = np.asarray(
            self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False),
            dtype=np.float64,
        ).reshape(-1)
        out, at = [], 0
        for it in items:
            out.append(flat[at : at + len(it.options)])
            at += len(it.options)
        return out

    def settings(self) -> dict[str, Any]:
        return {
            "scorer": self.name,
            "model": self.model_name,
            "max_length": getattr(self.model, "max_seq_length", None)
            or getattr(self.model, "max_length", None),
            "query_with_instruction": "instruction + ' ' + query",
            "ties": "first option",
        }
