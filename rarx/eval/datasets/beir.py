"""BEIR folders: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv`` and, for
RAR-b's Full setting, an optional ``instruction.txt``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rarx.errors import InputError
from rarx.io.corpus import Corpus
from rarx.io.topics import read_topics
from rarx.io.trec import Qrels, read_qrels
from rarx.types import Document, Query

LAYOUT = (
    "a BEIR folder holds corpus.jsonl ({_id, title, text} per line), queries.jsonl "
    "({_id, text} per line) and qrels/<split>.tsv (query-id, corpus-id, score); "
    "RAR-b Full folders may add instruction.txt"
)


@dataclass(frozen=True)
class BeirDataset:
    path: Path
    corpus: Sequence[Document]
    queries: Sequence[Query]
    qrels: Qrels
    split: str = "test"
    instruction: str = ""
    warnings: tuple[str, ...] = field(default=())

    @property
    def judged_queries(self) -> list[Query]:
        """Queries that have qrels: the ones an evaluation runs."""
        return [q for q in self.queries if q.qid in self.qrels]


def is_beir_folder(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file()


def load_beir(path: str | Path, split: str = "test") -> BeirDataset:
    """Read a BEIR folder, checking that each part is present and that ids agree."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"not a dataset folder; {LAYOUT}", path)
    qrels_path = path / "qrels" / f"{split}.tsv"
    for needed in (path / "corpus.jsonl", path / "queries.jsonl", qrels_path):
        if not needed.is_file():
            found = (
                sorted(p.name for p in (path / "qrels").glob("*.tsv"))
                if needed == qrels_path
                else []
            )
            extra = f" (qrels splits found: {', '.join(found)}; pass --split)" if found else ""
            raise InputError(f"missing {needed.relative_to(path)}{extra}; {LAYOUT}", path)
    corpus = list(Corpus(path / "corpus.jsonl"))
    queries = read_topics(path / "queries.jsonl")
    qrels = read_qrels(qrels_path)
    warnings = []
    qids = {q.qid for q in queries}
    unknown = [qid for qid in qrels if qid not in qids]
    if unknown:
        warnings.append(
            f"{qrels_path}: {len(unknown)} of {len(qrels)} judged query ids are not in "
            f"queries.jsonl (e.g. {unknown[0]!r}); they are ignored"
        )
    docids = {d.docid for d in corpus}
    missing_docs = sum(1 for docs in qrels.values() for d in docs if d not in docids)
    if missing_docs:
        warnings.append(f"{qrels_path}: {missing_docs} judged documents are not in corpus.jsonl")
    instruction_file = path / "instruction.txt"
    if instruction_file.is_file():
        instruction = instruction_file.read_text(encoding="utf-8").strip()
    else:  # a RAR-b Full folder as cloned from the hub: RAR-b's instruction for its task
        from rarx.eval.datasets.rarb import identify_task

        task = identify_task(path)
        instruction = task.instruction if task is not None else ""
    return BeirDataset(path, corpus, queries, qrels, split, instruction, tuple(warnings))


def write_beir(
    directory: Path,
    corpus: Iterable[Document],
    queries: Iterable[Query],
    qrels: Mapping[str, Mapping[str, int]],
    split: str = "test",
    instruction: str = "",
) -> dict[str, int]:
    """Write a BEIR folder into ``directory`` (which the caller stages atomically)."""
    counts = {"corpus": 0, "queries": 0, "qrels": 0}
    with open(directory / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in corpus:
            row = {"_id": d.docid, "title": d.title, "text": d.text, **d.meta}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            counts["corpus"] += 1
    with open(directory / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps({"_id": q.qid, "text": q.text, **q.meta}, ensure_ascii=False) + "\n")
            counts["queries"] += 1
    (directory / "qrels").mkdir()
    with open(directory / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in qrels.items():
            for docid, rel in docs.items():
                f.write(f"{qid}\t{docid}\t{rel}\n")
                counts["qrels"] += 1
    if instruction:
        (directory / "instruction.txt").write_text(instruction + "\n", encoding="utf-8")
    return counts
