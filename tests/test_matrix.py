"""The score-matrix search path (rarx.index.matrix) against the Lucene path: every docid,
float32 score and rank, on a corpus built here to hit BM25's edges."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from rarx.errors import ConfigError, RarxError
from rarx.index import matrix as matrix_module
from rarx.index.lucene import LuceneIndex
from rarx.index.matrix import MATRIX_DIR, MATRIX_MANIFEST, stale_reason, verify_matrix
from rarx.io.corpus import Corpus
from rarx.types import Document, Query
from tests.conftest import write_jsonl

WORDS = (
    "lava volcano volcanoes erupt erupting eruption magma crust plate tectonic glacier "
    "valley river rivers running runs runner ran cell cells energy photosynthesis sunlight "
    "water clouds rain the of and a to in is naïve café 1,000 x-ray"
).split()


def _corpus() -> list[dict[str, str]]:
    rng = random.Random(7)
    rows = []
    for i in range(240):  # short and long documents from a small vocabulary: many ties
        n = rng.choice([1, 2, 3, 5, 8, 40, 200, 1500])
        rows.append({"id": f"d{i}", "contents": " ".join(rng.choices(WORDS, k=n))})
    # Equal documents whose ids sort differently as Python order of insertion, as numbers
    # and as UTF-8 bytes: only the docid can order them.
    for docid in ["z-dup", "a-dup", "É-dup", "e-dup", "d10-dup", "d9-dup", "m-dup"]:
        rows.append({"id": docid, "contents": "lava volcano erupting"})
    rows.append({"id": "huge", "contents": " ".join(["lava"] * 3000 + WORDS * 50)})
    rows.append({"id": "one", "contents": "lava"})
    rows.append({"id": "stop", "contents": "the of and a to"})  # nothing indexed: skipped
    return rows


QUERIES = [
    "lava volcano",
    "lava lava lava volcano",  # a repeated term: Anserini boosts it by its count
    "Running RUNS ran",  # stemming
    "the of and",  # stop words only: no terms, no hits
    "",  # empty
    "   ",
    "unseenterm",
    "naïve café 1,000 X-Ray",
    "erupt rarxquerybreak magma",  # the batch separator word inside a query
    " ".join(random.Random(3).choices(WORDS, k=600)),  # very long, with repeats
    "glacier valley rivers cells energy photosynthesis sunlight water clouds rain",
]


@pytest.fixture(scope="module")
def edge_bm25(tmp_path_factory: pytest.TempPathFactory) -> LuceneIndex:
    root = tmp_path_factory.mktemp("matrix")
    corpus = write_jsonl(root / "corpus.jsonl", _corpus())
    return LuceneIndex.build(Corpus(corpus), root / "idx", quiet=True)


def _hits(index: LuceneIndex, k: int) -> list[list[tuple[str, float]]]:
    queries = [Query(f"q{i}", t) for i, t in enumerate(QUERIES)]
    return [list(zip(r.docids, r.scores.tolist(), strict=True)) for r in index.search(queries, k)]


@pytest.mark.parametrize(
    ("k1", "b", "memory"),
    [
        (None, None, "ram"),
        (None, None, "mmap"),
        (1.2, 0.75, "ram"),
        (2.5, 1.0, "mmap"),
        (0.0, 0.0, "ram"),
    ],  # fmt: skip
)
def test_matrix_rankings_are_the_lucene_paths(edge_bm25, k1, b, memory):
    opts = {"k1": k1, "b": b} if k1 is not None else {}
    lucene = LuceneIndex.load(edge_bm25.path, engine="lucene", **opts)
    matrix = LuceneIndex.load(edge_bm25.path, engine="matrix", matrix_memory=memory, **opts)
    assert matrix.settings["engine"] == "matrix" and lucene.settings["engine"] == "lucene"
    for k in (1, 3, 7, 10, 1000):
        expected = _hits(lucene, k)
        assert _hits(matrix, k) == expected  # docids, float32 scores and order
    by_query = dict(zip(QUERIES, expected, strict=True))
    assert by_query[""] == by_query["the of and"] == by_query["unseenterm"] == []
    assert by_query["lava lava lava volcano"] != by_query["lava volcano"]
    dups = [d for d, _ in by_query["lava volcano"] if d.endswith("-dup")]
    if dups:  # equal documents come in docid (UTF-8 byte) order, scores stepped by ties
        assert dups == sorted(dups, key=lambda d: d.encode())


def test_default_is_the_matrix_and_it_equals_anserinis_own_searcher(edge_bm25):
    index = LuceneIndex.load(edge_bm25.path)
    assert index.settings["engine"] == "matrix"
    searcher = index._searcher  # Anserini's SimpleSearcher, one Java object per hit
    for i, text in enumerate(QUERIES):
        (r,) = index.search([Query(str(i), text)], 50)
        expected = [(h.docid, h.score) for h in searcher.search(text, 50)]
        assert list(zip(r.docids, r.scores.tolist(), strict=True)) == expected


def test_rm3_takes_lucene_and_bad_choices_are_errors(edge_bm25):
    assert LuceneIndex.load(edge_bm25.path, rm3=True).settings["engine"] == "lucene"
    with pytest.raises(ConfigError, match="RM3 runs on the Lucene path only"):
        LuceneIndex.load(edge_bm25.path, rm3=True, engine="matrix")
    with pytest.raises(ConfigError, match="auto, matrix, lucene"):
        LuceneIndex.load(edge_bm25.path, engine="fast")
    with pytest.raises(ConfigError, match="'ram' or 'mmap'"):
        LuceneIndex.load(edge_bm25.path, matrix_memory="disk")


def test_matrix_files_are_tied_to_the_lucene_index_and_rebuilt_when_stale(edge_bm25, tmp_path):
    import shutil

    copy = tmp_path / "idx"
    shutil.copytree(edge_bm25.path, copy)
    directory = copy / MATRIX_DIR
    manifest = json.loads((directory / MATRIX_MANIFEST).read_text())
    assert manifest["lucene"]["segments"].startswith("segments_")
    assert stale_reason(directory, copy / "lucene", "bm25") is None and not verify_matrix(directory)
    expected = _hits(LuceneIndex.load(copy, engine="lucene"), 20)

    with open(directory / "scores.npy", "r+b") as f:  # damaged in place, same size
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    assert verify_matrix(directory) == ["scores.npy"]
    (directory / "docs.npy").write_bytes(b"truncated")  # a wrong size: stale, rebuilt on open
    assert "docs.npy" in stale_reason(directory, copy / "lucene", "bm25")
    assert _hits(LuceneIndex.load(copy, engine="matrix"), 20) == expected
    assert stale_reason(directory, copy / "lucene", "bm25") is None

    manifest = json.loads((directory / MATRIX_MANIFEST).read_text())
    manifest["lucene"]["sha256"] = "sha256:" + "0" * 64  # built from another Lucene commit
    (directory / MATRIX_MANIFEST).write_text(json.dumps(manifest))
    assert "Lucene index changed" in stale_reason(directory, copy / "lucene", "bm25")
    shutil.rmtree(directory / ".." / MATRIX_DIR)  # and an index from before the matrix
    assert _hits(LuceneIndex.load(copy), 20) == expected
    assert stale_reason(directory, copy / "lucene", "bm25") is None
    assert not list(copy.glob(".matrix*"))  # no temporary directories left


def test_a_matrix_that_does_not_fit_is_a_clear_error(edge_bm25, monkeypatch):
    monkeypatch.setattr(matrix_module, "_available_memory", lambda: 1000)
    with pytest.raises(RarxError, match="--matrix-memory mmap.*--search-engine lucene"):
        LuceneIndex.load(edge_bm25.path)
    mapped = LuceneIndex.load(edge_bm25.path, matrix_memory="mmap")  # stays on disk
    assert mapped.settings["matrix_memory"] == "mmap"
    assert isinstance(mapped._matrix._docs, np.memmap)
    assert _hits(mapped, 5) == _hits(LuceneIndex.load(edge_bm25.path, engine="lucene"), 5)


def test_documents_come_back_with_matrix_hits(edge_bm25):
    (r,) = LuceneIndex.load(edge_bm25.path).search([Query("q", "lava")], 3, with_docs=True)
    assert [h.doc.docid for h in r.hits] == list(r.docids)
    assert isinstance(r.hits[0].doc, Document)


def test_cli_search_engine_switch_and_run_meta(edge_bm25, tmp_path):
    from click.testing import CliRunner

    from rarx.cli.main import cli

    topics = tmp_path / "topics.tsv"
    topics.write_text("".join(f"q{i}\t{t}\n" for i, t in enumerate(QUERIES) if t.strip()))
    runs = {}
    for engine in ("lucene", "matrix"):
        out = tmp_path / f"{engine}.trec"
        result = CliRunner().invoke(cli, [
            "search", "--index", str(edge_bm25.path), "--topics", str(topics), "--k", "100",
            "-o", str(out), "--search-engine", engine, "--quiet",
        ])  # fmt: skip
        assert result.exit_code == 0, result.output
        runs[engine] = out.read_text()
        meta = json.loads(Path(f"{out}.meta.json").read_text())
        assert meta["indexes"][0]["settings"]["engine"] == engine
    assert runs["lucene"] == runs["matrix"] and runs["matrix"].count("\n") > 100
    bad = CliRunner().invoke(cli, ["search", "--index", str(edge_bm25.path), "--query", "lava",
                                   "--rm3", "--search-engine", "matrix"])  # fmt: skip
    assert bad.exit_code != 0 and "RM3 runs on the Lucene path only" in str(bad.exception)


def test_docids_and_their_tie_order_are_read_in_few_calls_as_stored(
    edge_bm25, tmp_path, monkeypatch
):
    from rarx.index.java import jclass
    from rarx.index.matrix import Bm25Params, build_matrix

    # Seven documents per sorted search: each later one starts after the last one read.
    monkeypatch.setattr(matrix_module, "_DOCIDS_PER_CALL", 7)
    built = build_matrix(Path(edge_bm25.path) / "lucene", tmp_path / "m", "bm25",
                         Bm25Params(0.9, 0.4))  # fmt: skip
    docids = json.loads((tmp_path / "m" / "docids.json").read_text(encoding="utf-8"))
    stored_id = jclass("io.anserini.index.IndexReaderUtils").convertLuceneDocidToDocid
    reader = edge_bm25._searcher.reader
    assert docids == [stored_id(reader, i) for i in range(built["documents"])]
    # Anserini breaks score ties by the docid's UTF-8 bytes (equal ids: by Lucene id).
    by_bytes = sorted(range(len(docids)), key=lambda i: (docids[i].encode("utf-8"), i))
    rank = np.load(tmp_path / "m" / "id_rank.npy")
    assert rank[by_bytes].tolist() == list(range(len(docids)))
    one_call = Path(edge_bm25.path) / MATRIX_DIR
    for name in ("docids.json", "id_rank.npy"):
        assert (tmp_path / "m" / name).read_bytes() == (one_call / name).read_bytes()
