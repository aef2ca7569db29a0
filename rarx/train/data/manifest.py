"""The one manifest convention of training data: a JSON record of how the data was built
(sources with checksums, settings, counts, the overlap with every evaluation set), written
atomically and last, so its presence marks a complete build.

- A file's manifest sits beside it: ``windows.jsonl`` -> ``windows.manifest.json``, with
  the file's checksum (``file_sha256``), so a reader can tell whether it describes the
  very file it reads.
- A folder's manifest is ``manifest.json`` inside it (as an evaluation dataset's is).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"  # inside a data folder


def manifest_path(target: str | Path) -> Path:
    """Where the manifest of a data file (beside it) or folder (inside it) is."""
    target = Path(target)
    if target.is_dir() or not target.suffix:
        return target / MANIFEST
    return target.with_name(target.stem + ".manifest.json")


def write_manifest(target: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``target``'s manifest atomically (a file's with its checksum); ``built_at``
    is added unless the manifest has one."""
    from rarx.io.atomic import atomic_write
    from rarx.io.hashing import file_checksum

    target = Path(target)
    record = {**manifest}
    record.setdefault("built_at", datetime.now(UTC).replace(microsecond=0).isoformat())
    if target.is_file():
        record["file_sha256"] = file_checksum(target)
    path = manifest_path(target)
    with atomic_write(path) as f:
        json.dump(record, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return path


def read_manifest(target: str | Path) -> dict[str, Any] | None:
    """``target``'s manifest, None when there is none (an incomplete or foreign build)."""
    path = manifest_path(target)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def describes(manifest: dict[str, Any] | None, target: str | Path) -> bool:
    """Whether ``manifest`` was written for the file ``target`` as it is now."""
    from rarx.io.hashing import file_checksum

    return manifest is not None and manifest.get("file_sha256") == file_checksum(target)
