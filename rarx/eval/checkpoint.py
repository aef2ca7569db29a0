"""Per-question measurements kept in one JSON file as they are made, so a long
evaluation (or a data build that asks an LLM every question) resumes where it stopped."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.io.atomic import atomic_write


class Checkpoint:
    """Per-question measurements (answers, decisions, P(<RET>)) written to one JSON file
    as they are made, so a stopped evaluation resumes where it stopped. A file written
    under other settings is refused, never mixed in. Without a path, nothing is kept."""

    def __init__(self, path: Path | None, settings: dict[str, Any], chunk: int):
        self.path, self.chunk = path, chunk
        self.data: dict[str, Any] = {"settings": settings, "values": {}, "seconds": {}}
        if path is not None and path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("settings") != settings:
                changed = sorted(k for k in settings
                                 if saved.get("settings", {}).get(k) != settings[k])  # fmt: skip
                raise ConfigError(
                    f"checkpoint {path} was written with other settings ({', '.join(changed)} "
                    f"differ); delete it, or pass another checkpoint path"
                )
            self.data = saved

    def measure(self, name: str, qids: Sequence[str], fn: Callable[[list[int]], list[Any]]
                ) -> tuple[list[Any], float]:  # fmt: skip
        """``fn(indices)`` for the questions not measured yet, a chunk at a time (saved
        after each); every question's value and the seconds spent on them all."""
        got = self.data["values"].setdefault(name, {})
        todo = [i for i, q in enumerate(qids) if q not in got]
        step = self.chunk if self.path is not None else max(1, len(todo))
        for at in range(0, len(todo), step):
            part = todo[at : at + step]
            t = time.perf_counter()
            values = fn(part)
            got.update({qids[i]: v for i, v in zip(part, values, strict=True)})
            spent = self.data["seconds"].get(name, 0.0) + time.perf_counter() - t
            self.data["seconds"][name] = round(spent, 1)
            self._save()
        return [got[q] for q in qids], float(self.data["seconds"].get(name, 0.0))

    def _save(self) -> None:
        if self.path is None:
            return
        with atomic_write(self.path) as f:
            json.dump(self.data, f)
