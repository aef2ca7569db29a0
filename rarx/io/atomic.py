"""Atomic writes: files and whole directories are built beside the target, then renamed
over it, so a reader never sees a half-written one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


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
    manifest): anything else non-empty at ``target`` is never replaced. On any exception
    (Ctrl-C included) the temporary directory goes and ``target`` is left untouched.
    """
    import shutil
    import uuid

    target = Path(target)
    if target.exists():
        if not overwrite:
            raise exists_error(f"{target} already exists; pass --overwrite to replace it")
        if not (target / marker).is_file() and (not target.is_dir() or any(target.iterdir())):
            raise exists_error(
                f"{target} exists and is not {what}; refusing to replace it ({hint})"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = target.parent / f".{target.name}.building-{tag}"
    tmp.mkdir()
    try:
        yield tmp
        old = target.parent / f".{target.name}.old-{tag}"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
