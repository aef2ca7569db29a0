"""``rarx index adopt``: indexes built in the test by pyserini's own indexers (Anserini's
IndexCollection, pyserini's faiss writer) are searched by rarx exactly as pyserini's
searchers search them, and what rarx cannot search faithfully is refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rarx.errors import ConfigError, IndexExistsError, IndexFormatError
from rarx.index.adopt import adopt
from rarx.index.base import MANIFEST_NAME, load_index
from rarx.index.java import jclass
from rarx.pipeline.search import SearchOptions, search_pipeline
from rarx.types import Query
from tests.conftest import TINY_DOCS, write_jsonl

TEXTS = ["volcano lava magma", "genetic information helix", "water evaporates clouds",
         "cells", "the sun and the earth", "nothing here zzz"]  # fmt: skip


def anserini_index(root: Path, name: str, *flags: str, rows: list[dict] | None = None,
                   collection: str = "JsonCollection") -> Path:  # fmt: skip
    """An index written by Anserini's IndexCollection, as ``pyserini.index.lucene`` runs it."""
    source = root / f"{name}-input"
    source.mkdir()
    rows = rows or [{"id": d["id"], "contents": f"{d['title']}\n{d['text']}".strip()}
                    for d in TINY_DOCS]  # fmt: skip
    write_jsonl(source / "docs.jsonl", rows)
    index = root / name
    jclass("io.anserini.index.IndexCollection").main([
        "-collection", collection, "-generator", "DefaultLuceneDocumentGenerator",
        "-input", str(source), "-index", str(index), "-threads", "1", "-quiet", *flags,
    ])  # fmt: skip
    return index


def fingerprint(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.name != MANIFEST_NAME}  # fmt: skip


def rarx_rankings(path: Path, k: int = 5) -> list[list[tuple[str, float]]]:
    """What ``rarx search`` returns: its pipeline over the loaded index."""
    states = search_pipeline([load_index(path)], SearchOptions(k=k)).run(
        [Query(f"q{i}", t) for i, t in enumerate(TEXTS)]
    )
    return [list(zip(s.ranking.docids, s.ranking.scores.tolist(), strict=True)) for s in states]


@pytest.fixture(scope="module")
def lucene_indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adopt-lucene")
    return {
        "raw": anserini_index(root, "raw", "-storeRaw", "-storeDocvectors"),
        "ids-only": anserini_index(root, "ids-only"),
        "contents": anserini_index(root, "contents", "-storeContents"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["raw", "ids-only", "contents"])
def test_an_anserini_index_searches_as_pyserinis_searcher(lucene_indexes: dict[str, Path],
                                                          name: str) -> None:  # fmt: skip
    from pyserini.search.lucene import LuceneSearcher  # the JVM rarx started is reused

    path = lucene_indexes[name]
    before = fingerprint(path)
    manifest = adopt(path)
    assert fingerprint(path) == before  # its own files untouched; one manifest added
    assert manifest.kind == "bm25" and manifest.documents == 8
    assert manifest.params["adopted"] is True and manifest.params["layout"] == "anserini-lucene"
    searcher = LuceneSearcher(str(path))
    expected = [[(h.docid, h.score) for h in searcher.search(t, 5)] for t in TEXTS]
    got = rarx_rankings(path)
    assert [[d for d, _ in r] for r in got] == [[d for d, _ in r] for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert np.array_equal(np.float32([s for _, s in mine]), np.float32([s for _, s in theirs]))
    assert got[0][0][0] == "d4"  # the volcano passage

    index = load_index(path)
    hit = index.search([Query("q", "volcano lava")], 1, with_docs=True)[0]
    if name == "ids-only":
        assert manifest.params["text"] == "none" and not manifest.params["analyzer_checked"]
        assert hit.docs == (None,) and index.doc("d4") is None
    else:
        assert manifest.params["analyzer_checked"]
        want = "Volcanoes\nMagma rises through the crust and erupts from volcanoes as lava."
        assert hit.docs[0].text == want and index.doc("d8").text.startswith("DNA\nDNA carries")


@pytest.mark.slow
def test_rm3_works_on_an_adopted_index_with_docvectors(lucene_indexes: dict[str, Path]) -> None:
    from pyserini.search.lucene import LuceneSearcher

    path = lucene_indexes["raw"]
    adopt(path, overwrite=True)
    assert json.loads((path / MANIFEST_NAME).read_text())["params"]["docvectors"] is True
    searcher = LuceneSearcher(str(path))
    searcher.set_rm3(10, 10, 0.5)
    index = load_index(path, rm3=True)
    for text in TEXTS[:3]:
        want = [h.docid for h in searcher.search(text, 5)]
        assert index.search([Query("q", text)], 5)[0].docids == want


@pytest.mark.slow
def test_what_cannot_be_searched_faithfully_is_refused(
    tmp_path: Path, lucene_indexes: dict[str, Path]
) -> None:
    vectors = [
        {"id": "a", "contents": "", "vector": {"lava": 30, "volcano": 12}},
        {"id": "b", "contents": "", "vector": {"dna": 50, "helix": 3, "gene": 7}},
    ]
    impact = anserini_index(tmp_path, "impact", "-impact", "-pretokenized", rows=vectors,
                            collection="JsonVectorCollection")  # fmt: skip
    with pytest.raises(IndexFormatError, match="an impact index"):
        adopt(impact)
    unstemmed = anserini_index(tmp_path, "unstemmed", "-storeRaw", "-stemmer", "none")
    with pytest.raises(IndexFormatError, match="another analyzer"):
        adopt(unstemmed)
    assert not (impact / MANIFEST_NAME).exists() and not (unstemmed / MANIFEST_NAME).exists()
    with pytest.raises(IndexFormatError, match="neither a Lucene index"):
        adopt(tmp_path / "impact-input")
    adopt(lucene_indexes["contents"], overwrite=True)  # adopted, or adopted again
    with pytest.raises(IndexExistsError, match="already adopted"):
        adopt(lucene_indexes["contents"])
    with pytest.raises(ConfigError, match="takes no model"):
        adopt(lucene_indexes["contents"], model="minilm", overwrite=True)


def test_a_rarx_index_is_not_adopted(tiny_bm25: Any) -> None:
    with pytest.raises(IndexExistsError, match="already a rarx index"):
        adopt(tiny_bm25.path)


# -- pyserini faiss folders -----------------------------------------------------------------


class QueryEncoder:
    """pyserini's QueryEncoder interface (``encode(text)``) over rarx's MiniLM."""

    def __init__(self, encoder: Any):
        self.encoder = encoder

    def encode(self, text: str) -> np.ndarray:
        return self.encoder.encode_queries([text])[0]


def pyserini_faiss(root: Path, encoder: Any, metric_ip: bool = True) -> Path:
    """A folder written by pyserini's FaissRepresentationWriter (``index`` + ``docid``)."""
    from pyserini.encode.optional._faiss import FaissRepresentationWriter

    texts = [f"{d['title']}\n{d['text']}".strip() for d in TINY_DOCS]
    vectors = encoder.encode_docs(texts).astype(np.float32)
    writer = FaissRepresentationWriter(str(root), dimension=vectors.shape[1])
    if not metric_ip:
        import faiss

        writer.index = faiss.IndexFlatL2(vectors.shape[1])
    with writer:
        writer.write({"id": [d["id"] for d in TINY_DOCS], "vector": vectors})
    return root


@pytest.mark.slow
def test_a_pyserini_faiss_folder_searches_as_pyserinis_searcher(tmp_path: Path,
                                                                minilm: Any) -> None:  # fmt: skip
    from pyserini.search.faiss import FaissSearcher

    path = pyserini_faiss(tmp_path / "faiss", minilm)
    before = fingerprint(path)
    with pytest.raises(ConfigError, match="--model"):
        adopt(path)
    manifest = adopt(path, model="minilm")
    assert fingerprint(path) == before
    assert (manifest.kind, manifest.documents, manifest.params["layout"]) == (
        "dense", 8, "pyserini-faiss")  # fmt: skip
    searcher = FaissSearcher(str(path), QueryEncoder(minilm))
    # One batch of query vectors, as rarx encodes a batch (padding moves the last bits).
    qids = [f"q{i}" for i in range(len(TEXTS))]
    found = searcher.batch_search(minilm.encode_queries(TEXTS), qids, k=5)
    expected = [[(h.docid, float(h.score)) for h in found[q]] for q in qids]
    got = rarx_rankings(path)
    assert [[d for d, _ in r] for r in got] == [[d for d, _ in r] for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert np.array_equal(np.float32([s for _, s in mine]), np.float32([s for _, s in theirs]))
    index = load_index(path)
    assert index.docids == [d["id"] for d in TINY_DOCS] and index.doc("d4") is None
    assert np.allclose(index.embeddings[3], minilm.encode_docs([
        "Volcanoes\nMagma rises through the crust and erupts from volcanoes as lava."])[0],
        atol=1e-6)  # fmt: skip


@pytest.mark.slow
def test_faiss_folders_rarx_cannot_rank_are_refused(tmp_path: Path, minilm: Any) -> None:
    l2 = pyserini_faiss(tmp_path / "l2", minilm, metric_ip=False)
    with pytest.raises(IndexFormatError, match="L2 distance"):
        adopt(l2, model="minilm")
    short = pyserini_faiss(tmp_path / "short", minilm)
    (short / "docid").write_text("d1\nd2\n")
    with pytest.raises(IndexFormatError, match="2 lines in 'docid' but 8 vectors"):
        adopt(short, model="minilm")


@pytest.mark.slow
def test_the_command_adopts_and_every_command_then_opens_it(lucene_indexes: dict[str, Path],
                                                            tmp_path: Path) -> None:  # fmt: skip
    path = lucene_indexes["ids-only"]
    (path / MANIFEST_NAME).unlink(missing_ok=True)

    def rarx(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rarx.cli.main", *args],
                              capture_output=True, text=True)  # fmt: skip

    before = rarx("search", "--index", str(path), "--query", "lava")
    assert before.returncode != 0 and "not a rarx index" in before.stderr
    adopted = rarx("index", "adopt", str(path))
    assert adopted.returncode == 0, adopted.stderr
    assert "bm25 index of 8 documents" in adopted.stderr and "warning" in adopted.stderr
    again = rarx("index", "adopt", str(path))
    assert again.returncode != 0 and "--overwrite" in again.stderr
    found = rarx("search", "--index", str(path), "--query", "volcano lava", "--format", "jsonl")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["hits"][0]["docid"] == "d4"
