"""``rarx index check``: verify an index against what its build recorded.

1. every file the build wrote is there, of its size and sha256 (the manifest's
   ``files``; an index without that record is reported as one that cannot be verified);
2. each Lucene index inside it passes Lucene's own ``CheckIndex`` (checksums of every
   file, and a decode of postings, norms, stored fields and vectors);
3. every Parquet file decodes whole, and the index opens as ``rarx search`` opens it.

Files beside the index that its build did not write, and directories of derived artefacts
that keep their own manifests (the score matrix), are listed, not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rarx.errors import RarxError
from rarx.index.base import Manifest, load_index
from rarx.index.integrity import (
    MANIFEST_NAME,
    NOT_RECORDED,
    Problem,
    checksum_problems,
    derived,
    describe,
    reading,
    rebuild_hint,
)

_JAVA_PATH = re.compile(r'path="([^"]+)"')


@dataclass
class CheckReport:
    """What ``check_index`` found; ``problems`` empty means nothing is damaged."""

    path: Path
    kind: str
    documents: int
    recorded: tuple[str, ...] = ()  # the files the build recorded (none: cannot verify)
    problems: list[Problem] = field(default_factory=list)
    lucene: list[str] = field(default_factory=list)  # one line per Lucene part checked
    unrecorded: list[str] = field(default_factory=list)  # files the build did not write
    derived: list[str] = field(default_factory=list)  # directories with their own manifests
    opened: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verified(self) -> bool:
        return bool(self.recorded)

    def add(self, problem: Problem) -> None:
        if all(p.file != problem.file for p in self.problems):
            self.problems.append(problem)

    def lines(self) -> list[str]:
        """The report as printed by ``rarx index check``."""
        out = [f"{self.path}: {self.kind} index, {self.documents:,} documents"]
        if self.verified:
            bad = {p.file for p in self.problems} & set(self.recorded)
            out.append(
                f"  checksums: {len(self.recorded) - len(bad):,} of {len(self.recorded):,} files "
                "match the build"
            )
        else:
            out.append(
                "  checksums: cannot verify: its manifest records no file checksums (built "
                "before rarx recorded them, or adopted); 'rarx index --overwrite' rebuilds "
                "it with them"
            )
        out += [f"  lucene: {line}" for line in self.lucene]
        if self.derived:
            out.append(
                f"  derived, with their own manifests, not checked: {', '.join(self.derived)}"
            )
        if self.unrecorded:
            shown = ", ".join(self.unrecorded[:5]) + (" ..." if len(self.unrecorded) > 5 else "")
            out.append(f"  not written by its build, not checked: {shown}")
        out += [f"  DAMAGED {p}" for p in self.problems]
        if self.ok:
            out.append("  ok: opens and reads" if self.opened else "  ok")
        else:
            out.append(f"  {rebuild_hint(self.path)}")
        return out


def check_index(path: str | Path, lucene: bool = True) -> CheckReport:
    """Verify the index at ``path`` (see the module's docstring); never raises for a
    damaged file, only for a path that is not a rarx index at all."""
    path = Path(path)
    manifest = Manifest.read(path, check_files=False)
    report = CheckReport(path, manifest.kind, manifest.documents, recorded=tuple(manifest.files))
    if manifest.files:
        for problem in checksum_problems(path, manifest.files):
            report.add(problem)
    report.unrecorded = _unrecorded(path, manifest)
    report.derived = sorted(p.name + "/" for p in path.iterdir() if p.is_dir() and derived(p.name))
    if lucene:
        for part in _lucene_dirs(path):
            report.lucene.append(check_lucene(path, part, report))
    for parquet in sorted(path.rglob("*.parquet")):
        name = parquet.relative_to(path).as_posix()
        if name in manifest.files or not manifest.files:
            _read_parquet(path, name, report)
    if report.ok:
        try:
            index = load_index(path)
        except RarxError as exc:
            for problem in getattr(exc, "problems", None) or [Problem("(opening)", str(exc))]:
                report.add(problem)
        else:
            report.opened = True
            close = getattr(index, "close", None)
            if close is not None:
                close()
    return report


def _unrecorded(path: Path, manifest: Manifest) -> list[str]:
    if not manifest.files:
        return []
    ours = {MANIFEST_NAME, *manifest.files}
    return sorted(
        name
        for p in path.rglob("*")
        if p.is_file()
        and (name := p.relative_to(path).as_posix()) not in ours
        and p.name not in NOT_RECORDED
        and not derived(name)
    )


def _lucene_dirs(path: Path) -> list[Path]:
    return sorted({p.parent for p in path.rglob("segments_*") if p.is_file()})


def _read_parquet(path: Path, name: str, report: CheckReport) -> None:
    """Decode every row group (one at a time: a large docstore is never held whole)."""
    import pyarrow.parquet as pq

    try:
        with reading(path, name):
            file = pq.ParquetFile(path / name)
            for group in range(file.num_row_groups):
                file.read_row_group(group)
    except RarxError as exc:
        for problem in getattr(exc, "problems", [Problem(name, "unreadable")]):
            report.add(problem)


def check_lucene(path: Path, part: Path, report: CheckReport) -> str:
    """Lucene's CheckIndex on ``part``: a summary line; damaged files go to ``report``."""
    from rarx.index.java import jclass

    where = part.relative_to(path).as_posix()
    fs = jclass("org.apache.lucene.store.FSDirectory").open(
        jclass("java.io.File")(str(part)).toPath()
    )
    out = jclass("java.io.ByteArrayOutputStream")()
    checker = None
    try:
        # Takes Lucene's write lock (write.lock) for the check; a reader holds none.
        checker = jclass("org.apache.lucene.index.CheckIndex")(fs)
        checker.setInfoStream(jclass("java.io.PrintStream")(out, True, "UTF-8"), False)
        status = checker.checkIndex()
        clean = bool(status.clean)
        summary = (
            f"{where}/: CheckIndex clean ({int(status.numSegments)} segment(s))"
            if clean
            else f"{where}/: CheckIndex found {int(status.numBadSegments)} broken segment(s)"
        )
    except Exception as exc:  # noqa: BLE001 - a JavaException: the index could not be read
        clean, summary = False, f"{where}/: CheckIndex could not read it ({describe(exc)})"
        out.write(str(getattr(exc, "innermessage", exc)).encode())
    finally:
        if checker is not None:
            checker.close()
        fs.close()
    if not clean:
        text = out.toString("UTF-8")
        named = []
        for found in _JAVA_PATH.findall(text):
            try:
                named.append(Path(found).resolve().relative_to(path.resolve()).as_posix())
            except ValueError:
                continue
        for name in dict.fromkeys(named) or [f"{where}/"]:
            report.add(Problem(name, "Lucene CheckIndex: " + _first_error(text)))
    return summary


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "Exception:" in line:
            line = line.split("Exception:", 1)[1].strip()
            return re.sub(r"\s*\(resource=.*$", "", line)[:200]
    return "failed"
