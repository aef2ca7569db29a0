"""Encoding a dense index's corpus: each chunk of documents embedded (by a local encoder,
or several chunks at once by a Ray pool), its embeddings appended to the raw float32 file
and its documents to the docstore, in corpus order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from rarx.index.docstore import DOCSTORE_FILE, docstore_writer, unique_texts
from rarx.models.encoder import Encoder
from rarx.types import Document

EMBEDDINGS_FILE = "embeddings.f32"


def encode_chunks(
    encoder: Encoder, chunks: Iterable[list[str]], batch_size: int
) -> Iterator[np.ndarray]:
    """Each chunk's embeddings, in order. An encoder with ``encode_doc_chunks`` (the Ray
    pool of rarx.distributed) encodes several chunks at once; a local one, one by one."""
    many = getattr(encoder, "encode_doc_chunks", None)
    if many is not None:
        return iter(many(chunks, batch_size))
    return (encoder.encode_docs(texts, batch_size=batch_size) for texts in chunks)


def encode_and_store(
    docs: Iterable[Document],
    directory: Path,
    encoder: Encoder,
    batch_size: int,
    chunk_size: int,
    done: Callable[[int], object],
) -> None:
    """Append each chunk's embeddings to the raw file and its rows to the Parquet docstore."""
    pending: deque[list[Document]] = deque()  # chunks handed to the encoder, not yet stored
    texts = unique_texts(docs, chunk_size, pending)
    with (
        open(directory / EMBEDDINGS_FILE, "wb") as emb_file,
        docstore_writer(directory / DOCSTORE_FILE) as store,
    ):
        for emb in encode_chunks(encoder, texts, batch_size):
            chunk = pending.popleft()
            if emb.shape[0] != len(chunk):
                raise RuntimeError(f"encoder returned {emb.shape[0]} rows for {len(chunk)} texts")
            emb_file.write(np.ascontiguousarray(emb, dtype=np.float32).tobytes())
            store(chunk)
            done(len(chunk))  # progress counts documents encoded, not merely read
