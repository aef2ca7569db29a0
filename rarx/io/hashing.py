"""The one file hasher: corpus checksums, packaged-data provenance, download checks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

CHUNK = 1 << 20  # bytes read at a time, so a large file is never held in memory


def file_digest(paths: str | Path | Iterable[str | Path], algorithm: str = "sha256") -> str:
    """Hex digest of the bytes of one file, or of several read in order. ``algorithm`` is
    any :func:`hashlib.new` name (``md5`` where an upstream publishes md5)."""
    h = hashlib.new(algorithm)
    for path in [paths] if isinstance(paths, str | Path) else paths:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    return h.hexdigest()


def file_checksum(paths: str | Path | Iterable[str | Path]) -> str:
    """``sha256:<hex>``, the form manifests record."""
    return "sha256:" + file_digest(paths)
