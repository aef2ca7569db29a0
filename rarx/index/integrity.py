"""What an index's files were when it was built, and the checks against that record.

A build records every file it wrote (path relative to the index, size, sha256) in the
manifest's ``files`` (:func:`record_files`, called by ``staged_build``). Opening an index
compares sizes only (a ``stat`` per file: :func:`size_problems`); ``rarx index check``
compares checksums too (:func:`checksum_problems`). Files that appear beside an index
later (derived artefacts such as a score matrix, with their own manifests) are outside
this record and never checked here, and so are directories of derived artefacts that
keep their own manifests (:func:`register_derived`; the score matrix's ``matrix/``),
even when the build wrote them. A manifest without ``files`` (an index built before
rarx recorded them, or one adopted from another tool) opens unchecked.

A file that cannot be read when used becomes one :class:`IndexCorruptError` naming the
index, the file and the fix, never a library's traceback: :func:`reading` for files whose
reader names no file (Parquet, faiss, JSONL), :func:`lucene_errors` for Lucene, whose
errors often name another file than the damaged one, so the record is consulted first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Container, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import IndexCorruptError, InputError, RarxError
from rarx.io.hashing import file_checksum

MANIFEST_NAME = "rarx_index.json"  # rarx.index.base re-exports it

# Java exceptions that mean a Lucene file is damaged (anything else in a search, e.g. a
# query with too many clauses, is not the index's fault).
LUCENE_DAMAGE = frozenset({
    "org.apache.lucene.index.CorruptIndexException",
    "org.apache.lucene.index.IndexFormatTooOldException",
    "org.apache.lucene.index.IndexFormatTooNewException",
    "org.apache.lucene.index.IndexNotFoundException",
    "java.io.EOFException",
    "java.io.FileNotFoundException",
    "java.nio.file.NoSuchFileException",
})  # fmt: skip
# Java exceptions a query causes (never a sign of damage): no checksum pass for these.
QUERY_ERRORS = frozenset({
    "org.apache.lucene.search.IndexSearcher$TooManyClauses",
    "org.apache.lucene.search.IndexSearcher$TooManyNestedClauses",
    "org.apache.lucene.search.BooleanQuery$TooManyClauses",
    "java.lang.IllegalArgumentException",
})  # fmt: skip
_JAVA_PATH = re.compile(r'path="([^"]+)"')
_WORKERS = min(4, os.cpu_count() or 1)  # files hashed at once
# Not index data: Lucene's empty lock file (copies may drop it; CheckIndex re-creates it).
NOT_RECORDED = frozenset({"write.lock"})
# Directories of an index that hold derived artefacts with their own manifest and
# checksums, rebuilt on their own when stale (so never part of the build's record, even
# when the build wrote them): the score matrix beside BM25 and impact indexes.
_DERIVED = {"matrix"}


def register_derived(directory: str) -> None:
    """Declare ``directory`` (relative to an index) a derived artefact: its files stay
    out of the build's record and out of ``rarx index check``'s file checks."""
    _DERIVED.add(directory.strip("/"))


def derived(name: str) -> bool:
    """Whether ``name`` (a path relative to an index) lies in a derived artefact."""
    return name.split("/", 1)[0] in _DERIVED


@dataclass(frozen=True)
class Problem:
    """A damaged file: its path relative to the index and what is wrong with it."""

    file: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what}"


def record_files(directory: str | Path, skip: Container[str] = (MANIFEST_NAME,)) -> dict:
    """``{relative path: {"size", "checksum"}}`` for every file under ``directory``
    (``skip``: relative paths left out, the manifest that will hold the record)."""
    directory = Path(directory)
    names = sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and not p.is_symlink()
    )
    names = [
        n
        for n in names
        if n not in skip and n.rsplit("/", 1)[-1] not in NOT_RECORDED and not derived(n)
    ]
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:  # hashlib frees the GIL
        sums = list(pool.map(lambda n: file_checksum(directory / n), names))
    return {
        n: {"size": (directory / n).stat().st_size, "checksum": c}
        for n, c in zip(names, sums, strict=True)
    }


def size_problems(directory: str | Path, files: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    """Recorded files that are missing or not of their recorded size (one stat each)."""
    directory = Path(directory)
    found = []
    for name, record in files.items():
        try:
            size = (directory / name).stat().st_size
        except FileNotFoundError:
            found.append(Problem(name, "missing"))
            continue
        if size != record.get("size"):
            found.append(Problem(name, f"{size:,} bytes, built as {record.get('size'):,}"))
    return found


def checksum_problems(
    directory: str | Path, files: Mapping[str, Mapping[str, Any]], under: str = ""
) -> list[Problem]:
    """Recorded files (those whose path starts with ``under``) that are missing, of
    another size, or whose sha256 differs from the one recorded at build time."""
    chosen = {n: r for n, r in files.items() if n.startswith(under)}
    found = size_problems(directory, chosen)
    bad = {p.file for p in found}
    rest = [n for n in chosen if n not in bad]

    def differs(name: str) -> Problem | None:
        try:
            actual = file_checksum(Path(directory) / name)
        except OSError as exc:
            return Problem(name, f"unreadable ({exc.strerror or exc})")
        if actual != chosen[name].get("checksum"):
            return Problem(name, "checksum differs from the build's (bytes changed)")
        return None

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        found += [p for p in pool.map(differs, rest) if p is not None]
    return sorted(found, key=lambda p: p.file)


def index_root(directory: str | Path) -> Path:
    """The outermost index holding ``directory`` (a qa-memory's ``dense/`` is inside
    one): the index to rebuild."""
    root = Path(directory)
    while (root.parent / MANIFEST_NAME).is_file() and root.parent != root:
        root = root.parent
    return root


def rebuild_hint(directory: str | Path) -> str:
    root = index_root(directory)
    return f"rebuild it with 'rarx index --index {root} --overwrite' from its corpus"


def damaged(directory: str | Path, problems: list[Problem] | Problem) -> IndexCorruptError:
    """One error naming the index, its damaged file(s) and the fix."""
    problems = [problems] if isinstance(problems, Problem) else problems
    directory = Path(directory)
    root = index_root(directory)
    inner = directory.relative_to(root).as_posix() + "/" if directory != root else ""
    problems = [Problem(inner + p.file, p.what) for p in problems]  # relative to the root
    listed = "; ".join(map(str, problems))
    error = IndexCorruptError(
        f"index {root} is damaged: {listed}; {rebuild_hint(directory)}", root, problems[0].file
    )
    error.problems = problems
    return error


def describe(exc: BaseException) -> str:
    """An exception as one short line (a Java exception by its class and message)."""
    classname = getattr(exc, "classname", None)
    text = getattr(exc, "innermessage", None) if classname else None
    name = classname.rsplit(".", 1)[-1] if classname else type(exc).__name__
    line = str(text if text is not None else exc).strip().splitlines()
    line = [re.sub(r"\s*\(resource=.*$", "", line[0])] if line else []  # Lucene's file handle
    return f"{name}: {line[0][:200]}" if line else name


@contextmanager
def reading(directory: str | Path, name: str) -> Iterator[None]:
    """Read file ``name`` of the index at ``directory``: any failure of its reader
    (pyarrow, faiss, json, rarx's own JSONL reader, ...) becomes an IndexCorruptError
    naming the file."""
    try:
        yield
    except InputError as exc:  # a malformed line in a file rarx wrote itself
        raise damaged(directory, Problem(name, f"unreadable ({exc})")) from exc
    except (RarxError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the file's reader raises
        raise damaged(directory, Problem(name, f"unreadable ({describe(exc)})")) from exc


@contextmanager
def lucene_errors(
    directory: str | Path, files: Mapping[str, Mapping[str, Any]], lucene_dir: str,
    reading_files: bool = True,
) -> Iterator[None]:  # fmt: skip
    """Use the Lucene index at ``directory/lucene_dir``. A Java exception is judged by
    the build's record first (the files that changed are named); without a record, by
    its class and the file its message names. ``reading_files``: any failure means
    damage (opening, reading stored documents); False (a search): only Lucene's
    corruption errors do, the rest become a plain RarxError."""
    try:
        yield
    except (RarxError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - sorted below
        # Java's exceptions, and a stored document that is not JSON; a Python bug is not
        # the index's fault and propagates as it is.
        if not (hasattr(exc, "classname") or isinstance(exc, ValueError)):
            raise
        raise lucene_failure(directory, files, lucene_dir, exc, reading_files) from exc


def lucene_failure(
    directory: str | Path, files: Mapping[str, Mapping[str, Any]], lucene_dir: str,
    exc: BaseException, reading_files: bool = True,
) -> RarxError:  # fmt: skip
    directory = Path(directory)
    classname = getattr(exc, "classname", None)
    if classname in QUERY_ERRORS:
        return RarxError(f"Lucene refused the query on index {index_root(directory)}: "
                         f"{describe(exc)}; shorten the query")  # fmt: skip
    if classname == "java.lang.OutOfMemoryError":
        return RarxError(f"Java ran out of memory on index {index_root(directory)}; give it "
                         "more with RARX_JAVA_HEAP (e.g. 8g; default 2g)")  # fmt: skip
    problems = checksum_problems(directory, files, lucene_dir + "/") if files else []
    if problems:
        return damaged(directory, problems)
    what = describe(exc)
    if not reading_files and classname not in LUCENE_DAMAGE:
        root = index_root(directory)
        return RarxError(
            f"Lucene failed on index {root}: {what}; 'rarx index check {root}' tells whether "
            "the index is damaged"
        )
    named = _JAVA_PATH.search(str(getattr(exc, "innermessage", "") or exc))
    file = lucene_dir + "/"
    if named is not None:
        try:
            file = Path(named.group(1)).resolve().relative_to(directory.resolve()).as_posix()
        except ValueError:
            pass
    unverified = "" if files else " (as Lucene names it: no build checksums to confirm)"
    return damaged(directory, Problem(file, f"unreadable ({what}){unverified}"))
