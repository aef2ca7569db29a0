"""Atomic writes: files and whole directories are built beside the target, then renamed
over it, so a reader never sees a half-written one."""

from __future__ import annotations

import glob
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes the file 0600; a result or report gets the mode any new file would.
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(
    target: str | Path,
    overwrite: bool,
    marker: str,
    what: str,
    hint: str,
    exists_error: type[Exception] = FileExistsError,
) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success swap it into place.

    ``marker`` is the file that makes a directory ours (an index manifest, a dataset
    manifest): anything else non-empty at ``target`` is never replaced. The build holds
    the lock on ``target`` (:mod:`rarx.io.lock`): a second writer gets a LockedError at
    once. Temporary directories that builds of ``target`` left when killed go first.
    On any exception (Ctrl-C included) the temporary directory goes and ``target`` is
    left untouched; without ``overwrite``, a ``target`` that appeared during the build
    (written by something that takes no lock) is never replaced.
    """
    import shutil
    import uuid

    from rarx.io.lock import exclusive_lock

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target, what):
        remove_stale_builds(target, marker)
        _check_target(target, overwrite, marker, what, hint, exists_error)
        tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = target.parent / f".{target.name}.building-{tag}"
        tmp.mkdir()
        try:
            yield tmp
            _check_target(target, overwrite, marker, what, hint, exists_error)
            old = target.parent / f".{target.name}.old-{tag}"
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _check_target(
    target: Path, overwrite: bool, marker: str, what: str, hint: str, error: type[Exception]
) -> None:
    if target.exists():
        if not overwrite:
            raise error(f"{target} already exists; pass --overwrite to replace it")
        if not (target / marker).is_file() and (not target.is_dir() or any(target.iterdir())):
            raise error(f"{target} exists and is not {what}; refusing to replace it ({hint})")


_STALE = re.compile(r"\.(building|old)-(\d+)-[0-9a-f]{8}")


def remove_stale_builds(target: str | Path, marker: str) -> list[Path]:
    """Remove the ``.NAME.building-PID-*`` directories of builds of ``target`` whose
    process is gone (never a live one's), and their ``.NAME.old-PID-*``: a build killed
    between its two renames left the previous ``target`` there, which is put back when
    ``target`` is missing. Call it holding the lock on ``target``. Returns what went."""
    import shutil

    target = Path(target)
    prefix = f".{target.name}"
    removed = []
    for entry in sorted(target.parent.glob(f"{glob.escape(prefix)}.*-*")):
        found = _STALE.fullmatch(entry.name[len(prefix) :])
        if found is None or not entry.is_dir() or _alive(int(found.group(2))):
            continue
        if found.group(1) == "old" and not target.exists() and (entry / marker).is_file():
            os.replace(entry, target)
            log.warning("%s: put back the copy an interrupted build had moved aside", target)
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    if removed:
        log.info("%s: removed %d temporary directories left by interrupted builds",
                 target, len(removed))  # fmt: skip
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: a process of another user
        return True
    return True
