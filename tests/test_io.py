import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rarx.errors import InputError
from rarx.io.corpus import Corpus, corpus_checksum
from rarx.io.topics import read_topics
from rarx.io.trec import read_qrels, read_run, write_qrels, write_run
from rarx.types import Hit, Ranking
from tests.conftest import write_jsonl


def docs(path, **kw):
    return list(Corpus(path, **kw))


def test_pyserini_jsonl(tmp_path: Path):
    p = write_jsonl(
        tmp_path / "c.jsonl", [{"id": "a", "contents": "alpha"}, {"id": 7, "contents": "b"}]
    )
    got = docs(p)
    assert [(d.docid, d.text, d.title) for d in got] == [("a", "alpha", ""), ("7", "b", "")]


def test_beir_folder_keeps_title_and_extra_fields(tmp_path: Path):
    (tmp_path / "beir").mkdir()
    write_jsonl(
        tmp_path / "beir" / "corpus.jsonl",
        [{"_id": "x", "title": "T", "text": "body", "metadata": {"url": "u"}}],
    )
    (d,) = docs(tmp_path / "beir")
    assert (d.docid, d.title, d.text, d.meta["metadata"]) == ("x", "T", "body", {"url": "u"})


def test_parquet_and_folder_of_shards(tmp_path: Path):
    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["one", "two"]}), folder / "a.parquet")
    write_jsonl(folder / "b.jsonl", [{"id": "j1", "contents": "three"}])
    assert [d.docid for d in docs(folder)] == ["p1", "p2", "j1"]


def test_malformed_line_names_file_and_line(tmp_path: Path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"id": "a", "contents": "x"}\n\n{"id": "b", "contents": \n')
    with pytest.raises(InputError, match=r"c\.jsonl:3: malformed JSON"):
        docs(p)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"contents": "x"}, r":2: missing id field \(expected one of id, _id, docid\)"),
        ({"id": "b"}, r":2: document 'b': missing text field"),
        ({"id": "b", "contents": 3}, r":2: document 'b': text must be a string"),
        (["not", "an", "object"], r":2: expected a JSON object, found list"),
    ],
)
def test_missing_or_wrong_fields_name_field_and_line(tmp_path: Path, row, message):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"id": "a", "contents": "x"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InputError, match=message):
        docs(p)


def test_duplicate_ids_error_or_dedupe(tmp_path: Path):
    rows = [
        {"id": "a", "contents": "1"},
        {"id": "b", "contents": "2"},
        {"id": "a", "contents": "3"},
    ]
    p = write_jsonl(tmp_path / "c.jsonl", rows)
    with pytest.raises(
        InputError, match=r":3: duplicate document id 'a' \(first at .* line 1\).*--dedupe"
    ):
        docs(p)
    corpus = Corpus(p, dedupe=True)
    assert [d.text for d in corpus] == ["1", "2"]
    assert corpus.duplicates == 1


def test_empty_missing_and_unreadable_corpora(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="corpus is empty"):
        docs(empty)
    with pytest.raises(InputError, match="corpus not found"):
        Corpus(tmp_path / "nope.jsonl")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(InputError, match="no corpus files found"):
        Corpus(tmp_path / "emptydir")
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(InputError, match="not UTF-8"):
        docs(binary)
    bad_parquet = tmp_path / "bad.parquet"
    bad_parquet.write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        docs(bad_parquet)


def test_checksum_changes_with_content(tmp_path: Path):
    p = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "contents": "x"}])
    before = corpus_checksum(p)
    write_jsonl(p, [{"id": "a", "contents": "y"}])
    assert corpus_checksum(p) != before and before.startswith("sha256:")


def test_topics_formats(tmp_path: Path):
    tsv = tmp_path / "q.tsv"
    tsv.write_text("1\tfirst query\n2\tsecond one\n")
    assert [(q.qid, q.text) for q in read_topics(tsv)] == [
        ("1", "first query"),
        ("2", "second one"),
    ]

    sgml = tmp_path / "topics.txt"
    sgml.write_text(
        "<DOC>\n<DOCNO> 1 </DOCNO>\n\n What about TSS\n(Time Sharing)?\n\nPooch, U.\n</DOC>\n"
        "<DOC>\n<DOCNO> 2 </DOCNO>\n sorting\n</DOC>\n"
    )
    assert [(q.qid, q.text) for q in read_topics(sgml)] == [
        ("1", "What about TSS (Time Sharing)? Pooch, U."),
        ("2", "sorting"),
    ]

    trec = tmp_path / "topics.301"
    trec.write_text(
        "<top>\n<num> Number: 301\n<title> International Organized Crime\n"
        "<desc> Description:\nfoo\n</top>\n"
    )
    assert [(q.qid, q.text) for q in read_topics(trec)] == [
        ("301", "International Organized Crime")
    ]

    beir = write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "hi", "answers": ["a"]}])
    (q,) = read_topics(beir)
    assert (q.qid, q.text, q.meta["answers"]) == ("q1", "hi", ["a"])


def test_bad_topics(tmp_path: Path):
    tsv = tmp_path / "q.tsv"
    tsv.write_text("1\tok\n2 no tab here\n")
    with pytest.raises(InputError, match=r"q\.tsv:2: expected 'qid<TAB>query text'"):
        read_topics(tsv)
    tsv.write_text("1\ta\n1\tb\n")
    with pytest.raises(InputError, match="duplicate query id '1'"):
        read_topics(tsv)


def test_run_roundtrip_and_qrels(tmp_path: Path):
    run = [Ranking("q1", (Hit("d2", 3.5), Hit("d1", 1.25))), Ranking("q2", ())]
    write_run(tmp_path / "run.trec", run, tag="t")
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert lines == ["q1 Q0 d2 1 3.500000 t", "q1 Q0 d1 2 1.250000 t"]
    (back,) = read_run(tmp_path / "run.trec")
    assert back.docids == ["d2", "d1"] and back.hits[1].score == 1.25

    write_qrels(tmp_path / "qrels.txt", {"q1": {"d2": 1}})
    assert read_qrels(tmp_path / "qrels.txt") == {"q1": {"d2": 1}}
    write_qrels(tmp_path / "test.tsv", {"q1": {"d2": 2}}, beir=True)
    assert read_qrels(tmp_path / "test.tsv") == {"q1": {"d2": 2}}

    (tmp_path / "bad.trec").write_text("q1 Q0 d1 1 x tag\n")
    with pytest.raises(InputError, match=r"bad\.trec:1: score is not a number"):
        read_run(tmp_path / "bad.trec")


def test_read_run_sorts_by_score_and_keeps_file_order_among_ties(tmp_path: Path):
    lines = ["q1 Q0 b 1 2.0 t", "q1 Q0 a 2 5.0 t", "q2 Q0 x 1 1.0 t", "q1 Q0 c 3 2.0 t"]
    (tmp_path / "run.trec").write_text("\n".join(lines) + "\n")
    q1, q2 = read_run(tmp_path / "run.trec")
    assert (q1.qid, q1.docids, q1.scores.tolist()) == ("q1", ["a", "b", "c"], [5.0, 2.0, 2.0])
    assert q2.docids == ["x"]


def test_atomic_write_gives_the_mode_of_any_new_file(tmp_path):
    import os

    from rarx.io.atomic import atomic_write

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "report.html") as f:
            f.write("<p>x</p>")
    finally:
        os.umask(old)
    assert (tmp_path / "report.html").read_text() == "<p>x</p>"
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
