"""RAR-b's MCR file kinds: which task a file is, its instruction, and C-STS's builder.

Every file in RAR-b's ``mcr/`` folder has one layout (``instructions``, ``queries``,
``documents``, ``labels``; RAR-b's ``load_mcr_frame`` reads them all alike), so one
reader serves every kind (:func:`rarx.eval.mcr.read_mcr_csv`). What differs per kind
is the file's name in that folder, the task's instruction (RAR-b's
``task_to_instruction`` and the files' first column), how the query was built from the
source data, and the number of options. C-STS is not distributed (its licence forbids
sharing it): RAR-b's ``mcr/create_csts.py`` builds ``csts-easy`` and ``csts-hard`` from
C-STS's own ``csts_validation.csv``; :func:`build_csts` does the same, and a CSV in
C-STS's layout given to :func:`load_mcr` is read as those two kinds.
"""

from __future__ import annotations

import csv
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from rarx.errors import InputError
from rarx.eval.datasets.base import McrItem
from rarx.eval.mcr import COLUMNS, mcr_files, read_mcr_csv, write_mcr_csv

log = logging.getLogger(__name__)

CSTS_COLUMNS = ("sentence1", "sentence2", "condition", "label")


@dataclass(frozen=True)
class McrKind:
    name: str  # rarx's name for the kind
    task: str  # RAR-b's task name (``task_to_instruction``)
    path: str  # the file inside RAR-b's mcr/ folder
    instruction: str
    query: str  # what the query column holds
    options: str  # what the options are


_TR = "TempReason"
_TR_INST = {
    "pure": "Given the following question, retrieve the correct answer.",
    "fact": "Given the following question and facts, retrieve the correct answer.",
    "context": "Given the following question, facts and contexts, retrieve the correct answer.",
}
_TR_QUERY = {"pure": "the question", "fact": "the question with its facts",
             "context": "the question with its facts and contexts"}  # fmt: skip

KINDS: tuple[McrKind, ...] = (
    McrKind("arc-challenge", "ARC-Challenge", "ARC-Challenge-test.csv",
            "Retrieve the answer to the question.",
            "the question", "its answer choices (3 to 5)"),
    McrKind("alphanli", "alphanli", "alphanli-test.csv",
            "Given the following start and end of a story, retrieve a possible reason that "
            "leads to the end.",
            "'start: {obs1} end: {obs2}'", "the two hypotheses"),
    McrKind("hellaswag", "hellaswag", "hellaswag-test.csv",
            "Given the following unfinished context, retrieve the most plausible ending to "
            "finish it.",
            "the unfinished context", "four endings"),
    McrKind("piqa", "piqa", "physicaliqa-test.csv",
            "Given the following goal, retrieve a possible solution.",
            "the goal", "the two solutions"),
    McrKind("quail", "quail", "quail-test.csv",
            "Given the following context and question, retrieve the correct answer.",
            "the passage and the question", "four answers"),
    McrKind("siqa", "siqa", "socialiqa-test.csv",
            "Given the following context and question, retrieve the correct answer.",
            "'Context: {context} Question: {question}'", "the three answers"),
    McrKind("spartqa", "spartqa", "spartqa-test.csv",
            "Given the following spatial reasoning question, retrieve the right answer.",
            "the scene description and the question", "four answers"),
    McrKind("winogrande", "winogrande", "winogrande-test.csv",
            "Given the following sentence, retrieve an appropriate answer to fill in the "
            "missing underscored part.",
            "the sentence with '_' for the gap", "the two fillers"),
    *(McrKind(f"tempreason-{level}-{setting}", f"TempReason-{level}-{setting}",
              f"{_TR}/test-{level}-{setting}.csv", _TR_INST[setting], _TR_QUERY[setting],
              "every candidate entity (2 to 249), the correct one first (label 0)")
      for level in ("l2", "l3") for setting in ("pure", "fact", "context")),
    McrKind("csts-easy", "csts-easy", "csts-easy-test.csv",
            "Retrieve an aspect and a sentence which are similar to the following sentence.",
            "sentence1",
            "'In terms of \"{condition without its last character}\", retrieve a sentence "
            "similar to the following. {sentence2}' per condition; label 0"),
    McrKind("csts-hard", "csts-hard", "csts-hard-test.csv",
            "Retrieve a condition under which the following two sentences are similar.",
            "'Sentence1: {sentence1}; Sentence2: {sentence2}'",
            "the pair's conditions; label 0"),
)  # fmt: skip
BY_NAME = {k.name: k for k in KINDS}


def mcr_kind(path: str | Path) -> McrKind | None:
    """The kind of a file named as in RAR-b's ``mcr/`` folder (TempReason files inside a
    ``TempReason`` folder), or None for any other name."""
    posix = Path(path).as_posix()
    for kind in KINDS:
        if posix == kind.path or posix.endswith("/" + kind.path):
            return kind
    return None


@dataclass(frozen=True)
class McrFile:
    """One set of MCR items: a file, or one of the two sets built from a C-STS file."""

    path: Path
    kind: McrKind | None
    items: list[McrItem]

    @property
    def label(self) -> str:
        """How results name it: the kind when known, else the file name."""
        return self.kind.name if self.kind else self.path.name


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return next(csv.reader(f), [])


def load_mcr(path: str | Path) -> list[McrFile]:
    """Every MCR set under ``path`` (a file or a folder, as :func:`mcr_files` finds them),
    each read and checked before anything is scored. A CSV in RAR-b's layout is one set;
    a CSV in C-STS's layout (``sentence1,sentence2,condition,label``) gives two,
    ``csts-easy`` and ``csts-hard``, built as RAR-b builds them."""
    out: list[McrFile] = []
    for f in mcr_files(path):
        header = _header(f)
        if all(c in header for c in CSTS_COLUMNS) and not all(c in header for c in COLUMNS):
            built = build_csts(f)
            out.extend(McrFile(f, BY_NAME[name], items) for name, items in built.items())
            continue
        kind = mcr_kind(f)
        items = read_mcr_csv(f)
        if kind is not None:
            other = sum(it.instruction != kind.instruction for it in items)
            if other:  # RAR-b invites custom instructions, so this only notes it
                log.warning(
                    "%s: %d of %d rows carry an instruction other than RAR-b's for %s (%r)",
                    f, other, len(items), kind.task, kind.instruction,
                )  # fmt: skip
        out.append(McrFile(f, kind, items))
    return out


def _read_csts(path: Path) -> list[tuple[str, str, str, float]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSTS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"missing column(s) {', '.join(missing)}; C-STS's csts_validation.csv has "
                f"columns {', '.join(CSTS_COLUMNS)}",
                path,
                1,
            )
        for n, rec in enumerate(reader, 2):
            s1, s2, cond = rec["sentence1"] or "", rec["sentence2"] or "", rec["condition"] or ""
            if not s1 or not s2:
                continue  # an empty cell is missing data to pandas, and groupby drops it
            if not cond:
                raise InputError("empty condition", path, n)
            try:
                label = float(rec["label"])
            except (TypeError, ValueError):
                raise InputError(f"label {rec['label']!r} is not a number", path, n) from None
            rows.append((s1, s2, cond, label))
    return rows


def build_csts(source: str | Path) -> dict[str, list[McrItem]]:
    """``csts-easy`` and ``csts-hard`` from C-STS's ``csts_validation.csv``, as RAR-b's
    ``create_csts.py`` builds them: rows repeating another's (sentence1, sentence2,
    label) are all dropped; the rest are grouped by (sentence1, sentence2) in sorted
    order, conditions kept in file order; pairs with one condition left are dropped.
    The label is 0 for every question, as in RAR-b: C-STS lists the condition under
    which a pair is more similar first."""
    source = Path(source)
    rows = _read_csts(source)
    seen: dict[tuple[str, str, float], int] = {}
    for s1, s2, _, label in rows:
        seen[(s1, s2, label)] = seen.get((s1, s2, label), 0) + 1
    groups: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for s1, s2, cond, label in rows:
        if seen[(s1, s2, label)] == 1:
            groups.setdefault((s1, s2), []).append((cond, label))
    pairs = [(key, conds) for key, conds in sorted(groups.items()) if len(conds) > 1]
    if not pairs:
        raise InputError("no sentence pair has two conditions left; is this C-STS?", source)
    unordered = sum(c[0][1] <= max(lbl for _, lbl in c[1:]) for _, c in pairs)
    if unordered:
        log.warning(
            "%s: %d of %d pairs do not list their most similar condition first; RAR-b "
            "labels option 0 correct all the same", source, unordered, len(pairs),
        )  # fmt: skip
    easy, hard = BY_NAME["csts-easy"], BY_NAME["csts-hard"]
    return {
        "csts-easy": [
            McrItem(easy.instruction, s1, tuple(
                f'In terms of "{c[:-1]}", retrieve a sentence similar to the following. {s2}'
                for c, _ in conds), 0)
            for (s1, s2), conds in pairs
        ],
        "csts-hard": [
            McrItem(hard.instruction, f"Sentence1: {s1}; Sentence2: {s2}",
                    tuple(c for c, _ in conds), 0)
            for (s1, s2), conds in pairs
        ],
    }  # fmt: skip


def write_csts(source: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``csts-easy-test.csv`` and ``csts-hard-test.csv`` (RAR-b's names) into
    ``out_dir``; keep them private, as C-STS's licence asks."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, items in build_csts(source).items():
        path = out / BY_NAME[name].path
        write_mcr_csv(path, items)
        paths.append(path)
    return paths
