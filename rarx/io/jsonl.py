"""JSON Lines reading with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rarx.errors import InputError


def open_text(path: str | Path):  # noqa: ANN201 - a text file object
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("expected a file, found a directory", path)
    try:
        if path.suffix == ".gz":
            import gzip

            return gzip.open(path, "rt", encoding="utf-8")
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", path) from exc


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)``; blank lines are skipped."""
    with open_text(path) as f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"malformed JSON ({exc.msg})", path, lineno) from None
                if not isinstance(obj, dict):
                    raise InputError(
                        f"expected a JSON object, found {type(obj).__name__}", path, lineno
                    )
                yield lineno, obj
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text ({exc.reason})", path) from None


def write_jsonl(f, rows: Iterable[dict[str, Any]]) -> int:  # noqa: ANN001 - text file
    n = 0
    for row in rows:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


def write_jsonl_file(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` as a JSONL file, whole or not at all (an atomic replace)."""
    from rarx.io.atomic import atomic_write

    with atomic_write(path) as f:
        return write_jsonl(f, rows)
