"""A bi-encoder over sentence-transformers that knows its prefixes and instructions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rarx.errors import require
from rarx.models.registry import hub_error, resolve_model


@dataclass(frozen=True)
class EncoderConfig:
    model: str = "minilm"
    query_prefix: str = ""  # e.g. "query: " for E5
    doc_prefix: str = ""  # e.g. "passage: " for E5
    max_seq_length: int | None = None  # None keeps the model's own
    normalize: bool = True
    device: str | None = None  # None: sentence-transformers picks (CUDA when present)


class Encoder:
    """Encodes queries and documents to float32 rows (L2-normalised by default)."""

    def __init__(self, config: EncoderConfig | None = None, **kwargs: object):
        self.config = config or EncoderConfig(**kwargs)  # type: ignore[arg-type]
        st = require("sentence_transformers", "dense")
        resolved = resolve_model(self.config.model, kind="encoder")
        try:
            self.model = st.SentenceTransformer(resolved.source, device=self.config.device)
        except OSError as exc:
            raise hub_error(self.config.model, exc) from exc
        if self.config.max_seq_length is not None:
            self.model.max_seq_length = self.config.max_seq_length

    @property
    def dim(self) -> int:
        # sentence-transformers 5 renamed get_sentence_embedding_dimension
        getter = getattr(self.model, "get_embedding_dimension", None)
        if getter is None:
            getter = self.model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_seq_length(self) -> int:
        """Tokens kept per text (longer texts are truncated)."""
        return int(self.model.max_seq_length)

    def encode(self, texts: Sequence[str], batch_size: int = 64, quiet: bool = True) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=self.config.normalize,
            convert_to_numpy=True,
            show_progress_bar=not quiet,
        )
        return np.ascontiguousarray(emb, dtype=np.float32)

    def encode_queries(
        self, texts: Sequence[str], instruction: str = "", batch_size: int = 64, quiet: bool = True
    ) -> np.ndarray:
        """Queries get the query prefix; an instruction goes before the query text,
        as RAR-b does it (``instruction + " " + query``, outer whitespace stripped)."""
        prefix = self.config.query_prefix
        if instruction:
            texts = [f"{instruction} {t}".strip() for t in texts]
        return self.encode([prefix + t for t in texts], batch_size, quiet)

    def encode_docs(
        self, texts: Sequence[str], batch_size: int = 64, quiet: bool = True
    ) -> np.ndarray:
        prefix = self.config.doc_prefix
        return self.encode([prefix + t for t in texts], batch_size, quiet)
