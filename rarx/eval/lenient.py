"""Lenient relevance judgments: a passage whose text equals a judged passage's, after
SQuAD-style normalisation (:func:`rarx.text.normalize_answer`), is judged as that passage.

RAR-b-recipe Full sets pool every answer option of a split and deduplicate them by exact
text, so the corpus may still hold the gold answer under another docid, differing only in
case, punctuation or an article ("The Sun." / "the sun"). Strict qrels count a system that
ranks that copy first as a miss; lenient qrels count it as a hit. Comparing the two shows
how much of a score such copies move.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rarx.errors import InputError
from rarx.text import normalize_answer


@dataclass(frozen=True)
class LenientQrels:
    """The widened judgments and what was added to them."""

    qrels: dict[str, dict[str, int]]
    added: dict[str, dict[str, str]]  # qid -> {added docid: the judged docid it copies}

    @property
    def queries_widened(self) -> int:
        return sum(1 for docs in self.added.values() if docs)

    @property
    def documents_added(self) -> int:
        return sum(len(docs) for docs in self.added.values())


def lenient_qrels(
    qrels: Mapping[str, Mapping[str, int]],
    texts: Mapping[str, str],
    normalize: Callable[[str], str] = normalize_answer,
) -> LenientQrels:
    """``qrels`` with every passage of ``texts`` (docid -> text) whose normalised text
    equals a relevant passage's added at that passage's grade (the highest, if several).

    Texts that normalise to nothing (only punctuation or articles) match nothing: they
    would otherwise equate unrelated passages. Judged grades are never lowered, and
    non-relevant judgments (grade <= 0) are not widened.
    """
    by_key: dict[str, list[str]] = {}
    for docid, text in texts.items():
        key = normalize(text)
        if key:
            by_key.setdefault(key, []).append(docid)
    out: dict[str, dict[str, int]] = {}
    added: dict[str, dict[str, str]] = {}
    for qid, judged in qrels.items():
        wide = dict(judged)
        extra: dict[str, str] = {}
        for docid, grade in sorted(judged.items(), key=lambda kv: -kv[1]):
            if grade <= 0:
                continue
            if docid not in texts:
                raise InputError(
                    f"query {qid!r} judges document {docid!r}, which is not among the "
                    f"{len(texts)} passages given: pass the corpus the qrels were made for"
                )
            for copy in by_key.get(normalize(texts[docid]), ()):
                if copy not in judged and copy not in extra:
                    wide[copy] = grade  # the highest grade first: it is the one kept
                    extra[copy] = docid
        out[qid] = wide
        added[qid] = extra
    return LenientQrels(out, added)
