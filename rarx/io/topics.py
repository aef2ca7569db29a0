"""Topic (query) files: TSV ``qid<TAB>text``, BEIR ``queries.jsonl``, SGML ``<DOC><DOCNO>``
(classic collections such as CACM) and TREC ``<top><num><title>``."""

from __future__ import annotations

import re
from pathlib import Path

from rarx.errors import InputError
from rarx.io.jsonl import open_text, read_jsonl
from rarx.types import Query

_SGML_DOC = re.compile(r"<DOC>\s*<DOCNO>\s*(.*?)\s*</DOCNO>(.*?)</DOC>", re.S | re.I)
_TREC_TOP = re.compile(r"<top>(.*?)</top>", re.S | re.I)
_TREC_NUM = re.compile(r"<num>\s*(?:Number:)?\s*(\S+)", re.I)
_TREC_TITLE = re.compile(r"<title>\s*(?:Topic:)?(.*?)(?=<desc>|<narr>|</top>|<title>)", re.S | re.I)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _read_sgml(path: Path, text: str) -> list[Query]:
    return [Query(m.group(1), _one_line(m.group(2))) for m in _SGML_DOC.finditer(text)]


def _read_trec(path: Path, text: str) -> list[Query]:
    queries = []
    for block in _TREC_TOP.findall(text):
        num, title = _TREC_NUM.search(block), _TREC_TITLE.search(block)
        if not num or not title:
            raise InputError("a <top> block lacks <num> or <title>", path)
        queries.append(Query(num.group(1), _one_line(title.group(1))))
    return queries


def _read_tsv(path: Path, text: str) -> list[Query]:
    queries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        qid, sep, query = line.partition("\t")
        if not sep or not query.strip():
            raise InputError("expected 'qid<TAB>query text'", path, lineno)
        queries.append(Query(qid.strip(), query.strip()))
    return queries


def _read_jsonl(path: Path) -> list[Query]:
    queries = []
    for lineno, obj in read_jsonl(path):
        qid = obj.get("_id", obj.get("qid", obj.get("id")))
        text = obj.get("text", obj.get("query"))
        if qid is None or not isinstance(text, str):
            raise InputError(
                "expected fields '_id' (or 'qid') and 'text' (or 'query')", path, lineno
            )
        meta = {k: v for k, v in obj.items() if k not in ("_id", "qid", "id", "text", "query")}
        queries.append(Query(str(qid), text, meta))
    return queries


def read_topics(path: str | Path) -> list[Query]:
    """Read queries, choosing the format from the file's name and first characters."""
    path = Path(path)
    if path.is_dir() and (path / "queries.jsonl").is_file():
        path = path / "queries.jsonl"
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        queries = _read_jsonl(path)
    else:
        with open_text(path) as f:
            text = f.read()
        head = text.lstrip()[:200].lower()
        if head.startswith("<doc>"):
            queries = _read_sgml(path, text)
        elif head.startswith("<top>"):
            queries = _read_trec(path, text)
        else:
            queries = _read_tsv(path, text)
    if not queries:
        raise InputError("no queries found", path)
    seen: set[str] = set()
    for q in queries:
        if q.qid in seen:
            raise InputError(f"duplicate query id {q.qid!r}", path)
        seen.add(q.qid)
    return queries
