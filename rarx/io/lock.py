"""An exclusive, non-blocking lock on a path being written, held by one process at a time.

The lock is ``flock`` on a hidden file beside the target (``.NAME.lock``), so the kernel
releases it when its holder dies, ``kill -9`` included; no stale lock can block a later
writer. The holder's pid is written into the file for the message another writer gets,
and the file is removed on release (checking, on acquire, that the file locked is still
the one at that path, so a writer never holds a lock on an unlinked file).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rarx.errors import LockedError


def lock_path(target: str | Path) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.lock"


@contextmanager
def exclusive_lock(target: str | Path, what: str = "it") -> Iterator[Path]:
    """Hold the lock on ``target`` for the ``with`` block; a LockedError at once (naming
    the holder's pid) when another process, or another open of this one, holds it."""
    import fcntl  # POSIX; imported here so the module imports anywhere

    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockedError(
                f"{target} is being written by another process{holder}; wait for it to "
                f"finish, or write {what} to another path"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # the last holder removed it after we opened it
            same = False
        if same:
            break
        os.close(fd)
    try:
        started = datetime.now(UTC).replace(microsecond=0).isoformat()
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {started}\n".encode())
        yield path
    finally:
        try:
            os.unlink(path)  # while still held: a waiting opener re-checks the inode
        except FileNotFoundError:
            pass
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        return ""
    if not text:
        return ""
    return f" (pid {text[0]}, since {text[1]})" if len(text) > 1 else f" (pid {text[0]})"
