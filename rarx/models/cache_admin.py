"""What rarx's weight caches hold, and removing what nothing will load again.

Two caches live under :func:`~rarx.models.cache.cache_dir`: ``models/`` (GGUF weights
dequantised once to safetensors, named ``<GGUF stem>-<size>-<content digest>[-<dtype>]``)
and ``ct2/`` (CTranslate2 conversions, each with a manifest naming its source directory
and that directory's fingerprint). Each directory in them is

- ``current``: its source exists and still matches it;
- ``stale``: its source exists but changed since (a model retrained into the same
  directory; a named model's GGUF replaced by another version), or it was converted from
  a stale ``models/`` copy;
- ``orphaned``: its source is gone (the directory deleted, the named model uninstalled);
- ``partial``: a hidden temporary directory of an interrupted conversion (or removal),
  untouched for an hour; ``writing`` while younger, since a conversion may be filling it;
- ``unknown``: a ``ct2/`` directory without a valid rarx manifest, or a ``models/`` copy
  of a GGUF no named model ships.

:func:`prune_cache` removes ``stale``, ``orphaned`` and ``partial`` entries only; a
conversion whose source still matches, or whose source cannot be told, is never removed.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from rarx.models.cache import cache_dir, causal_lm_path, remove_tree, tree_size
from rarx.models.ct2_cache import Ct2CacheError, read_manifest, source_fingerprint
from rarx.models.registry import MODELS, resolve_model

PRUNABLE = ("stale", "orphaned", "partial")
LEFTOVER_AGE = 3600.0  # seconds a hidden temporary directory is left alone: it may be written
# What follows a GGUF's stem in a models/ name: size, digest (an mtime before f7f5275), dtype.
_GGUF_KEY_TAIL = re.compile(r"\d+-[0-9a-f]+(-[a-z0-9]+)?")


@dataclass(frozen=True)
class CacheEntry:
    """One directory in a cache: ``cache`` is ``models`` or ``ct2``; ``source`` what it
    was converted from; ``reason`` why it has its ``status``."""

    cache: str
    path: Path
    size: int
    source: str
    status: str
    reason: str

    @property
    def prunable(self) -> bool:
        return self.status in PRUNABLE


def _newest_change(path: Path) -> float:
    """The latest modification time of ``path`` and the files under it."""
    times = []
    for dirpath, _, files in os.walk(path):
        for name in [".", *files]:
            try:
                times.append(os.lstat(os.path.join(dirpath, name)).st_mtime)
            except OSError:  # renamed or removed meanwhile
                pass
    return max(times, default=time.time())


def _leftover(cache: str, path: Path, now: float) -> CacheEntry:
    age = now - _newest_change(path)
    if age > LEFTOVER_AGE:
        status, reason = "partial", f"interrupted conversion, untouched for {age / 60:.0f} min"
    else:  # a conversion may be filling it right now
        status, reason = "writing", f"a conversion in progress? written {age / 60:.0f} min ago"
    return CacheEntry(cache, path, tree_size(path), "-", status, reason)


def _named_ggufs() -> dict[str, tuple[str, str | None]]:
    """Each named GGUF model's file stem -> (its name, its current ``models/`` key, None
    when it is not installed)."""
    found: dict[str, tuple[str, str | None]] = {}
    for spec in MODELS.values():
        filename = spec.split.filename if spec.split else spec.subpath
        if not filename.endswith(".gguf"):
            continue
        key = None
        if spec.locate() is not None:
            key = causal_lm_path(resolve_model(spec.name, kind="llm")).name
        found[Path(filename).stem] = (spec.name, key)
    return found


def _models_entry(path: Path, named: dict[str, tuple[str, str | None]]) -> CacheEntry:
    source, status, reason = path.name, "unknown", "converted from a GGUF no named model ships"
    for stem, (name, key) in named.items():
        tail = path.name[len(stem) + 1 :]
        if path.name.startswith(stem + "-") and _GGUF_KEY_TAIL.fullmatch(tail):
            source, status, reason = name, "current", ""
            if key is None:
                status, reason = "orphaned", f"{name} is not installed"
            elif key != path.name:
                status, reason = "stale", f"{name}'s GGUF is now cached as {key}"
            break
    return CacheEntry("models", path, tree_size(path), source, status, reason)


def _ct2_entry(path: Path, models: dict[Path, CacheEntry]) -> CacheEntry:
    size = tree_size(path)
    try:
        manifest = read_manifest(path)
    except Ct2CacheError:
        return CacheEntry("ct2", path, size, "-", "unknown", "no valid rarx manifest")
    source = str(manifest.get("source", ""))
    if source and not Path(source).is_absolute():  # RARX_CACHE was relative: from where?
        return CacheEntry("ct2", path, size, source, "unknown", "relative source path")
    if not source or not Path(source).is_dir():
        return CacheEntry("ct2", path, size, source or "-", "orphaned", "source is gone")
    parent = models.get(Path(source))
    if parent is not None and parent.prunable:
        return CacheEntry(
            "ct2", path, size, source, "stale", f"converted from a {parent.status} GGUF copy"
        )
    try:
        fingerprint = source_fingerprint(source)
    except OSError as exc:  # unreadable, or being rewritten right now
        return CacheEntry("ct2", path, size, source, "unknown", f"source unreadable ({exc})")
    if fingerprint != manifest.get("source_sha256"):
        return CacheEntry("ct2", path, size, source, "stale", "source changed since")
    return CacheEntry("ct2", path, size, source, "current", "")


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def scan_cache(root: Path | None = None, now: float | None = None) -> list[CacheEntry]:
    """Every directory in ``root``'s (default :func:`cache_dir`) ``models/`` and ``ct2/``
    caches, classified. Reads manifests and fingerprints sources; converts nothing."""
    root = root if root is not None else cache_dir()
    now = time.time() if now is None else now
    named = _named_ggufs()
    models = {}
    for path in _subdirs(root / "models"):
        hidden = path.name.startswith(".")
        models[path] = _leftover("models", path, now) if hidden else _models_entry(path, named)
    ct2 = [
        _leftover("ct2", p, now) if p.name.startswith(".") else _ct2_entry(p, models)
        for p in _subdirs(root / "ct2")
    ]
    return [*models.values(), *ct2]


def prune_cache(entries: list[CacheEntry], dry_run: bool = False) -> list[CacheEntry]:
    """Remove the ``stale``, ``orphaned`` and ``partial`` entries (each renamed away first,
    then deleted); with ``dry_run`` remove nothing. Returns the entries removed (or that
    would be)."""
    removed = []
    for entry in entries:
        if not entry.prunable:
            continue
        if not dry_run:
            try:
                remove_tree(entry.path)
            except FileNotFoundError:  # another process removed it meanwhile
                continue
        removed.append(entry)
    return removed


__all__ = ["CacheEntry", "PRUNABLE", "prune_cache", "scan_cache"]
