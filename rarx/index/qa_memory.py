"""A memory of question–answer pairs (RePAQ, Lewis et al. 2021), searched by question.

Built from JSONL rows ``{"question": ..., "answer": ...}`` (optional ``id``; ``answer``
may be a list of aliases, the first is returned). A prepared QA dataset's
``queries.jsonl`` (``_id``, ``text``, ``answers``) is read the same way. The directory
holds a dense index over the questions (``dense/``) and the answers in
``answers.jsonl`` (one row per question, same ids), written together so a build is
atomic.

A calibrated decision threshold (``rarx qa-memory calibrate``) is kept in the manifest's
``params["calibration"]``, together with the scorer it was calibrated for, so the
``qa_memory`` stage can use it by default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from rarx import __version__
from rarx.errors import ConfigError, InputError
from rarx.index.base import Manifest, now_iso, staged_build
from rarx.index.integrity import Problem, damaged, reading
from rarx.index.registry import IndexKind, param
from rarx.io.jsonl import read_jsonl
from rarx.types import Document, Query, Ranking

DENSE_DIR = "dense"
ANSWERS_FILE = "answers.jsonl"
CALIBRATION = "calibration"  # manifest params key


@dataclass(frozen=True)
class QAMemoryBuildParams:
    model: str = param("minilm", "Encoder: a named model, sentence-transformers name or path.")
    batch_size: int = param(64, "Encoding batch size.")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")


@dataclass(frozen=True)
class QAPair:
    id: str
    question: str
    answer: str

    def as_dict(self, score: float | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "question": self.question, "answer": self.answer}
        if score is not None:
            d["score"] = round(float(score), 5)
        return d


def read_pairs(path: str | Path) -> list[QAPair]:
    pairs: list[QAPair] = []
    for lineno, obj in read_jsonl(path):
        q = obj.get("question", obj.get("text"))
        a = obj.get("answer", obj.get("answers"))
        if isinstance(a, list) and a:
            a = a[0]
        if not isinstance(q, str) or not q.strip() or not isinstance(a, str):
            raise InputError(
                "expected fields 'question' (or 'text') and 'answer' (or 'answers')", path, lineno
            )
        pid = obj.get("id", obj.get("_id", f"m{len(pairs)}"))
        pairs.append(QAPair(str(pid), q.strip(), a.strip()))
    if not pairs:
        raise InputError("no question-answer pairs", path)
    return pairs


class QAMemoryIndex:
    kind: ClassVar[str] = "qa-memory"

    def __init__(self, path: Path, manifest: Manifest, dense: Any, answers: Mapping[str, QAPair]):
        self.path = path
        self.manifest = manifest
        self.dense = dense
        self.pairs = dict(answers)

    @classmethod
    def build(
        cls, pairs: Iterable[QAPair] | str | Path, path: str | Path, *,
        model: str = QAMemoryBuildParams.model, overwrite: bool = False, quiet: bool = False,
        batch_size: int = QAMemoryBuildParams.batch_size,
    ) -> QAMemoryIndex:  # fmt: skip
        from rarx.index.dense import DenseIndex

        items = read_pairs(pairs) if isinstance(pairs, str | Path) else list(pairs)
        seen: set[str] = set()
        for p in items:
            if p.id in seen:
                raise InputError(f"duplicate pair id {p.id!r}; ids must be unique")
            seen.add(p.id)
        with staged_build(path, overwrite) as tmp:
            docs = [Document(p.id, p.question) for p in items]
            dense = DenseIndex.build(docs, tmp / DENSE_DIR, model=model, quiet=quiet,
                                     batch_size=batch_size)  # fmt: skip
            with open(tmp / ANSWERS_FILE, "w", encoding="utf-8") as f:
                for p in items:
                    f.write(json.dumps(p.as_dict(), ensure_ascii=False) + "\n")
            Manifest(
                kind=cls.kind, documents=len(items), corpus_checksum=dense.manifest.corpus_checksum,
                params={"dense": DENSE_DIR}, model=dense.manifest.model, built_at=now_iso(),
                rarx_version=__version__,
            ).write(tmp)  # fmt: skip
        return cls.load(path)

    @classmethod
    def load(cls, path: str | Path) -> QAMemoryIndex:
        from rarx.index.dense import DenseIndex

        path = Path(path)
        manifest = Manifest.read(path, expect=cls.kind)
        answers = {}
        with reading(path, ANSWERS_FILE):
            for _, obj in read_jsonl(path / ANSWERS_FILE):
                answers[obj["id"]] = QAPair(obj["id"], obj["question"], obj["answer"])
        if len(answers) != manifest.documents:  # cut at a line's end: each line still reads
            problem = Problem(ANSWERS_FILE, f"{len(answers):,} pairs, not {manifest.documents:,}")
            raise damaged(path, problem)
        return cls(path, manifest, DenseIndex.load(path / DENSE_DIR), answers)

    def __len__(self) -> int:
        return len(self.pairs)

    def search(
        self, queries: Sequence[Query], k: int = 10, with_docs: bool = False, **kw: Any
    ) -> list[Ranking]:
        """Nearest stored questions (cosine); with ``with_docs`` a hit's document is the
        stored question, its answer in ``meta["answer"]``."""
        rankings = self.dense.search(queries, k, **kw)
        if not with_docs:
            return list(rankings)
        return [
            Ranking.from_arrays(r.qid, r.docid_array, r.scores, [self.doc(d) for d in r.docids])
            for r in rankings
        ]

    def nearest(self, queries: Sequence[Query], k: int) -> list[list[tuple[QAPair, float]]]:
        return [
            [(self.pairs[d], s) for d, s in zip(r.docids, r.scores.tolist(), strict=True)]
            for r in self.dense.search(queries, k)
        ]

    def doc(self, docid: str) -> Document | None:
        p = self.pairs.get(docid)
        return None if p is None else Document(p.id, p.question, meta={"answer": p.answer})


def calibration_of(manifest: Manifest) -> Mapping[str, Any] | None:
    """The calibration recorded in a qa-memory manifest, or None."""
    found = manifest.params.get(CALIBRATION)
    return found if isinstance(found, Mapping) else None


def write_calibration(path: str | Path, calibration: Mapping[str, Any]) -> Manifest:
    """Record ``calibration`` (at least ``threshold`` and ``rerank_model``) in the manifest
    of the qa-memory index at ``path``, replacing any earlier one; the manifest file is
    rewritten atomically, the rest of the index is untouched."""
    if "threshold" not in calibration or "rerank_model" not in calibration:
        raise ConfigError("a calibration needs 'threshold' and 'rerank_model' (None for cosine)")
    path = Path(path)
    manifest = Manifest.read(path, expect=QAMemoryIndex.kind)
    updated = replace(manifest, params={**manifest.params, CALIBRATION: dict(calibration)})
    updated.write(path)
    return updated


KIND = IndexKind(
    QAMemoryIndex, "question-answer pairs searched by question (RePAQ)", QAMemoryBuildParams,
    {"qa_pairs", "documents", "instructions"}, reads_corpus=False, unit="question-answer pairs",
    corpus_help="a JSONL of {question, answer}",
)  # fmt: skip
