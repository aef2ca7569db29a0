"""The card a trained model directory carries: ``rarx_model.json``.

It records what the model was trained from (base model, data files with checksums,
objective, steps, seed, time), its metrics on its own dev split, and the measured
overlap of its training data with every evaluation file rarx knows. It lives in the
models layer so that evaluation can read it (to warn about leakage) without
importing the trainers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rarx.errors import InputError
from rarx.io.atomic import atomic_write

CARD_FILE = "rarx_model.json"
CARD_VERSION = 1


@dataclass(frozen=True)
class DataRef:
    """One training file as it was read: where, its checksum and how many rows."""

    path: str
    checksum: str  # sha256:<hex>
    rows: int

    @classmethod
    def of(cls, path: str | Path, rows: int) -> DataRef:
        from rarx.io.hashing import file_checksum

        return cls(str(path), file_checksum(path), rows)


@dataclass
class ModelCard:
    base: str
    objective: str
    data: list[DataRef]
    seed: int
    steps: int = 0
    epochs: float = 0.0
    started: str = ""  # ISO 8601, UTC
    seconds: float = 0.0
    stopped_early: bool = False  # --max-minutes ran out before the planned steps
    metrics: dict[str, float] = field(default_factory=dict)  # on the dev split
    # Evaluation file or packaged set -> share of its items found in the training data.
    overlap: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    version: int = CARD_VERSION

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / CARD_FILE
        with atomic_write(path) as f:
            json.dump(asdict(self), f, indent=2, sort_keys=True)
            f.write("\n")
        return path

    @classmethod
    def read(cls, directory: str | Path) -> ModelCard | None:
        """The card of a model directory, or None when it has none (not trained here)."""
        path = Path(directory) / CARD_FILE
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            raw["data"] = [DataRef(**d) for d in raw.get("data", [])]
            return cls(**raw)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}: not a rarx model card ({exc})") from exc

    def overlapping(self, names: list[str], threshold: float = 0.0) -> dict[str, float]:
        """The evaluation files among ``names`` that the training data overlaps."""
        return {n: self.overlap[n] for n in names if self.overlap.get(n, 0.0) > threshold}
