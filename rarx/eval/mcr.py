"""RAR-b's multiple-choice retrieval (MCR) setting: CSV files and accuracy.

A file has columns ``instructions``, ``queries``, ``documents`` (a Python list literal
of the options, parsed with ``ast.literal_eval``, never ``eval``) and ``labels`` (the
index of the correct option).

Scoring a bi-encoder matches RAR-b's own scorer (``rarb/mcr_utils``):
- maximum sequence length 512 for every model whose name lacks "bge";
- the query is encoded as is without instructions, and as
  ``(instruction + " " + query).strip()`` with them; options never get an instruction;
- cosine similarity; the prediction is the first index of the maximum, so tied options
  go to the earlier one; accuracy = correct / questions.
"""

from __future__ import annotations

import ast
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rarx.errors import InputError, RarxError
from rarx.eval.datasets.base import McrItem

COLUMNS = ("instructions", "queries", "documents", "labels")
RARB_MAX_SEQ_LENGTH = 512


def _options(cell: str, path: Path, row: int) -> tuple[str, ...]:
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise InputError(
            f"documents is not a Python list literal ({type(exc).__name__}: {exc}); expected "
            "e.g. \"['option A', 'option B']\"",
            path,
            row,
        ) from None
    if not isinstance(value, list | tuple) or not value:
        raise InputError(
            f"documents must be a non-empty list of strings, found {value!r:.80}", path, row
        )
    if not all(isinstance(v, str) for v in value):
        raise InputError("documents must be a list of strings", path, row)
    return tuple(value)


def read_mcr_csv(path: str | Path) -> list[McrItem]:
    """Read one MCR file. Errors name the file and the CSV row (the header is row 1)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"MCR file not found (expected a CSV with columns {', '.join(COLUMNS)})", path
        )
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    items = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"missing column(s) {', '.join(missing)}; an MCR file has columns "
                f"{', '.join(COLUMNS)}",
                path,
                1,
            )
        for n, rec in enumerate(reader, 2):
            options = _options(rec["documents"] or "", path, n)
            try:
                label = int(rec["labels"])
            except (TypeError, ValueError):
                raise InputError(f"label {rec['labels']!r} is not an integer", path, n) from None
            if not 0 <= label < len(options):
                raise InputError(
                    f"label {label} is out of range for {len(options)} options (0-based)", path, n
                )
            items.append(McrItem(rec["instructions"] or "", rec["queries"] or "", options, label))
    if not items:
        raise InputError("MCR file has no rows", path)
    return items


def write_mcr_csv(path: str | Path, items: Sequence[McrItem]) -> None:
    """Write items in RAR-b's layout (options as a Python list literal)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for it in items:
            w.writerow([it.instruction, it.query, repr(list(it.options)), it.label])


def mcr_files(path: str | Path) -> list[Path]:
    """One CSV, a folder of them (a RAR-b checkout's ``mcr/``), or a prepared dataset."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.glob("*.csv")) + sorted(path.glob("*/*.csv"))
        if files:
            return files
        raise InputError("no *.csv MCR files in this folder", path)
    raise InputError("no such MCR file or folder", path)


def rarb_query(query: str, instruction: str | None) -> str:
    """The text RAR-b encodes for a query."""
    if instruction is None:
        return query
    return (instruction + " " + query).strip()


def first_max(scores: Sequence[float] | np.ndarray) -> int:
    """The prediction from one question's option scores: the first index of the maximum,
    so tied options go to the earlier one (every MCR scorer decides this way)."""
    return int(np.argmax(np.asarray(scores)))  # argmax returns the first maximum


def cosine_scores(query_vecs: np.ndarray, option_vecs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Cosine similarity of each question's vector to each of its options (float64)."""
    out = []
    for q, opts in zip(query_vecs, option_vecs, strict=True):
        q = q.astype(np.float64)
        o = opts.astype(np.float64)
        out.append((o @ q) / (np.linalg.norm(o, axis=1) * np.linalg.norm(q)))
    return out


def predict(query_vecs: np.ndarray, option_vecs: Sequence[np.ndarray]) -> list[int]:
    """First index of the highest cosine similarity for each question."""
    return [first_max(s) for s in cosine_scores(query_vecs, option_vecs)]


@dataclass
class McrResult:
    file: str
    questions: int
    accuracy_without: float | None = None
    accuracy_with: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    kind: str | None = None  # RAR-b's file kind, when the file is one of its
    chance: float | None = None  # accuracy of guessing: the mean of 1/options per question

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "questions": self.questions,
            "chance": self.chance,
            "accuracy_without_instructions": self.accuracy_without,
            "accuracy_with_instructions": self.accuracy_with,
            "seconds": self.seconds,
        }


def rarb_max_seq_length(model: str) -> int | None:
    """RAR-b sets 512 for every model whose name lacks "bge"; bge keeps its own."""
    return None if "bge" in model else RARB_MAX_SEQ_LENGTH


def bi_encoder_scores(
    items: Sequence[McrItem],
    encoder: Any,
    with_instructions: bool,
    batch_size: int = 64,
    option_cache: dict[str, np.ndarray] | None = None,
    per_question: bool = False,
) -> list[np.ndarray]:
    """Cosine similarity of each question to each of its options, for a bi-encoder
    (``encoder.encode(texts, batch_size=...) -> rows``).

    By default each distinct text is encoded once, in large batches; options are the
    same with and without instructions, so pass one ``option_cache`` to both runs.
    ``per_question`` encodes as RAR-b's loop does (the query alone, then its options
    as one batch), for checking that batching changes no prediction.
    """
    if not items:
        raise RarxError("no MCR items to score")
    texts = [rarb_query(it.query, it.instruction if with_instructions else None) for it in items]
    if per_question:
        scores = []
        for text, it in zip(texts, items, strict=True):
            q = encoder.encode([text], batch_size=1)
            o = encoder.encode(list(it.options), batch_size=32)
            scores.extend(cosine_scores(q, [o]))
        return scores
    cache = option_cache if option_cache is not None else {}
    todo = list(dict.fromkeys(o for it in items for o in it.options if o not in cache))
    if todo:
        for text, vec in zip(todo, encoder.encode(todo, batch_size=batch_size), strict=True):
            cache[text] = vec
    unique = list(dict.fromkeys(texts))
    vecs = dict(zip(unique, encoder.encode(unique, batch_size=batch_size), strict=True))
    return cosine_scores(
        np.stack([vecs[t] for t in texts]),
        [np.stack([cache[o] for o in it.options]) for it in items],
    )


def accuracy(items: Sequence[McrItem], predictions: Sequence[int]) -> float:
    """Correct predictions / questions."""
    correct = sum(p == it.label for p, it in zip(predictions, items, strict=True))
    return correct / len(items)


def score_mcr(
    items: Sequence[McrItem],
    encoder: Any,
    with_instructions: bool,
    batch_size: int = 64,
    option_cache: dict[str, np.ndarray] | None = None,
    per_question: bool = False,
) -> tuple[float, list[int]]:
    """Accuracy and predictions of a bi-encoder (see :func:`bi_encoder_scores`)."""
    scores = bi_encoder_scores(
        items, encoder, with_instructions, batch_size, option_cache, per_question
    )
    preds = [first_max(s) for s in scores]
    return accuracy(items, preds), preds


def mcr_encoder(model: str, device: str | None = None) -> Any:
    """An encoder set up as RAR-b sets it up: 512 tokens unless "bge", no normalisation
    (cosine is computed from the raw vectors)."""
    from rarx.models.encoder import Encoder, EncoderConfig

    return Encoder(
        EncoderConfig(
            model=model, max_seq_length=rarb_max_seq_length(model), normalize=False, device=device
        )
    )
