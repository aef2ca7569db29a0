"""A learned sparse (SPLADE) encoder over sentence-transformers' ``SparseEncoder``: texts
become rows of (vocabulary term, weight), and weights become the integer impacts that
Lucene indexes (Anserini's impact indexing takes term frequencies, so integers).

Quantisation follows Anserini's SPLADE encoders: ``impact = Math.round(weight * factor)``
with Java's float arithmetic (product in float32, halves rounded up); terms whose impact
rounds to 0 are dropped. Anserini's own ONNX encoders and pyserini's Python ones use the
factor 256/5 = 51.2; SPLADE's exports for Anserini (and rarx by default) use 100.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np

from rarx.errors import ConfigError, MissingDependencyError, require
from rarx.models.registry import hub_error, resolve_model

MAX_TERM_CHARS = 255  # Lucene's WhitespaceAnalyzer splits longer tokens


@dataclass(frozen=True)
class SparseEncoderConfig:
    model: str = "splade-tiny"
    max_seq_length: int | None = None  # None keeps the model's own
    device: str | None = None  # None: sentence-transformers picks (CUDA when present)


@dataclass(frozen=True)
class SparseRows:
    """Sparse vectors of several texts, row by row (CSR): row ``i``'s term ids and
    weights are ``ids[indptr[i]:indptr[i+1]]`` and the same slice of ``weights``."""

    indptr: np.ndarray  # int64, len(texts) + 1
    ids: np.ndarray  # int64 vocabulary ids, ascending within a row
    weights: np.ndarray  # float32, > 0

    def __len__(self) -> int:
        return len(self.indptr) - 1


def quantize(weights: np.ndarray, factor: float) -> np.ndarray:
    """Integer impacts as Anserini computes them: ``Math.round(w * factor)`` in Java
    floats (float32 product; halves round up, computed exactly in float64)."""
    x = (np.asarray(weights, dtype=np.float32) * np.float32(factor)).astype(np.float64)
    down = np.floor(x)
    return (down + ((x - down) >= 0.5)).astype(np.int64)


class SparseEncoder:
    """Encodes queries and documents to sparse vocabulary vectors (``SparseRows``)."""

    def __init__(self, config: SparseEncoderConfig | None = None, **kwargs: object):
        self.config = config or SparseEncoderConfig(**kwargs)  # type: ignore[arg-type]
        st = require("sentence_transformers", "splade")
        if not hasattr(st, "SparseEncoder"):
            raise MissingDependencyError("sentence-transformers>=5 (SparseEncoder)", "splade")
        resolved = resolve_model(self.config.model, kind="splade")
        try:
            self.model = st.SparseEncoder(resolved.source, device=self.config.device)
        except OSError as exc:
            raise hub_error(self.config.model, exc) from exc
        if self.config.max_seq_length is not None:
            self.model.max_seq_length = self.config.max_seq_length
        self._vocab: np.ndarray | None = None

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def vocab(self) -> np.ndarray:
        """The term of each output dimension (object array), checked once: each must be
        one whitespace-free token of at most 255 characters, as Lucene will read it."""
        if self._vocab is None:
            # The output size is known once the model has run (SpladePooling sets it then).
            dim = int(self.model.encode_document(["a"], convert_to_sparse_tensor=True).shape[-1])
            terms = self.model.tokenizer.convert_ids_to_tokens(list(range(dim)))
            bad = [(i, t) for i, t in enumerate(terms) if not _indexable(t)]
            if bad:
                raise ConfigError(
                    f"model {self.config.model!r}: {len(bad)} of its {dim} output terms cannot be "
                    f"indexed as single Lucene terms (e.g. id {bad[0][0]}: {bad[0][1]!r}); a "
                    "SPLADE model's outputs must be tokens without whitespace, <= 255 characters"
                )
            table = np.empty(dim, dtype=object)
            table[:] = terms
            self._vocab = table
        return self._vocab

    def _encode(
        self, texts: Sequence[str], side: Literal["query", "document"], batch_size: int,
        quiet: bool,
    ) -> SparseRows:  # fmt: skip
        n = len(texts)
        if n == 0:
            empty = np.zeros(0, dtype=np.int64)
            return SparseRows(np.zeros(1, dtype=np.int64), empty, np.zeros(0, dtype=np.float32))
        encode = self.model.encode_query if side == "query" else self.model.encode_document
        matrix = encode(
            list(texts), batch_size=batch_size, show_progress_bar=not quiet,
            convert_to_tensor=True, convert_to_sparse_tensor=True,
        ).coalesce()  # fmt: skip
        rows, ids = matrix.indices().cpu().numpy()  # coalesced: sorted by (row, id)
        weights = matrix.values().float().cpu().numpy()
        keep = weights > 0
        rows, ids, weights = rows[keep], ids[keep], weights[keep]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        return SparseRows(indptr, ids.astype(np.int64), weights.astype(np.float32))

    def encode_queries(
        self, texts: Sequence[str], batch_size: int = 32, quiet: bool = True
    ) -> SparseRows:
        return self._encode(texts, "query", batch_size, quiet)

    def encode_docs(
        self, texts: Sequence[str], batch_size: int = 32, quiet: bool = True
    ) -> SparseRows:
        return self._encode(texts, "document", batch_size, quiet)

    @property
    def vocab_size(self) -> int:
        """Output terms (checked as :attr:`vocab` checks them)."""
        return len(self.vocab)

    def doc_impact_chunks(
        self, chunks: Iterable[Sequence[str]], batch_size: int, factor: float
    ) -> Iterator[list[dict[str, int]]]:
        """Each chunk of documents as impacts, chunk by chunk (the Ray pool of
        :mod:`rarx.distributed.splade` has the same method, with chunks in flight)."""
        for texts in chunks:
            yield self.doc_impacts(texts, batch_size, factor)

    def doc_impacts(
        self, texts: Sequence[str], batch_size: int, factor: float
    ) -> list[dict[str, int]]:
        """Documents encoded and quantised: each one's ``{term: integer impact}``."""
        return self.impacts(self.encode_docs(texts, batch_size), factor)

    def impacts(self, rows: SparseRows, factor: float) -> list[dict[str, int]]:
        """Each row as ``{term: integer impact}``, terms whose impact rounds to 0 left out."""
        values = quantize(rows.weights, factor)
        keep = values > 0
        terms = self.vocab[rows.ids[keep]].tolist()
        values = values[keep].tolist()
        cuts = np.cumsum(np.concatenate([[0], keep]))[rows.indptr].tolist()
        return [dict(zip(terms[a:b], values[a:b], strict=True)) for a, b in pairwise(cuts)]


def _indexable(term: object) -> bool:
    return (
        isinstance(term, str)
        and 0 < len(term) <= MAX_TERM_CHARS
        and not any(c.isspace() for c in term)
    )
