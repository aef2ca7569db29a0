"""DenseIndex with the packaged MiniLM and real faiss, on corpora built here."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rarx.errors import ConfigError, IndexExistsError, InputError
from rarx.index.base import MANIFEST_NAME, Manifest, load_index
from rarx.index.dense import DenseIndex
from rarx.models.encoder import Encoder
from rarx.types import Document, Query

DOCS = [
    Document("d01", "The cat sat on the mat and purred while the kitten slept.", "Cats"),
    Document(
        "d02", "Photosynthesis converts sunlight, water and carbon dioxide into glucose.", "Plants"
    ),
    Document("d03", "The stock market fell sharply as investors sold shares in banks."),
    Document("d04", "A volcano erupts when magma rises through the crust and escapes as lava."),
    Document("d05", "Python is a programming language popular for data science and scripting."),
    Document("d06", "The football team won the championship final after a penalty shootout."),
    Document("d07", "Bread is baked from flour, water, yeast and salt in a hot oven.", "Baking"),
    Document("d08", "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."),
    Document("d09", "Vaccines train the immune system to recognise viruses and bacteria."),
    Document("d10", "Jupiter is the largest planet in the solar system, a gas giant."),
    Document("d11", "The violin is a string instrument played with a bow in orchestras."),
    Document("d12", "Glaciers are slow rivers of ice that carve valleys in mountains."),
]
QUERIES = [
    Query("q1", "which planet is the biggest"),
    Query("q2", "how do plants make sugar from light"),
    Query("q3", "how to make a loaf of bread"),
]
EXPECTED = {"q1": "d10", "q2": "d02", "q3": "d07"}


@pytest.fixture(scope="module")
def encoder(minilm: Encoder) -> Encoder:
    return minilm


@pytest.fixture(scope="module")
def flat_path(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Path:
    path = tmp_path_factory.mktemp("dense") / "flat"
    DenseIndex.build(DOCS, path, encoder=encoder, quiet=True)
    return path


@pytest.fixture(scope="module")
def flat(flat_path: Path, encoder: Encoder) -> DenseIndex:
    return DenseIndex.load(flat_path, encoder=encoder)


def test_roundtrip_search_finds_the_relevant_document(flat: DenseIndex) -> None:
    rankings = flat.search(QUERIES, k=3)
    assert [r.qid for r in rankings] == ["q1", "q2", "q3"]
    for r in rankings:
        assert r.hits[0].docid == EXPECTED[r.qid]
        assert len(r) == 3
        assert all(-1.0 - 1e-5 <= h.score <= 1.0 + 1e-5 for h in r.hits)
        assert r.hits[0].doc is None


def test_manifest_records_model_and_faiss(flat_path: Path) -> None:
    data = json.loads((flat_path / MANIFEST_NAME).read_text())
    assert data["kind"] == "dense"
    assert data["documents"] == len(DOCS)
    assert data["model"] == "minilm"
    assert data["corpus_checksum"].startswith("sha256:")
    assert data["built_at"]
    params = data["params"]
    assert params["dim"] == 384
    assert params["faiss"] == "flat"
    assert params["query_prefix"] == "" and params["doc_prefix"] == ""
    assert params["max_seq_length"] > 0
    assert params["normalize"] is True
    assert params["faiss_params"] == {}


def test_embeddings_are_normalised_rows_in_docstore_order(
    flat: DenseIndex, encoder: Encoder
) -> None:
    emb = flat.embeddings
    assert isinstance(emb, np.memmap) and emb.shape == (len(DOCS), 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert flat.docids == [d.docid for d in DOCS]
    np.testing.assert_allclose(emb[6], encoder.encode_docs([DOCS[6].contents])[0], atol=1e-5)


def test_search_vectors_matches_text_search(flat: DenseIndex, encoder: Encoder) -> None:
    vectors = encoder.encode_queries([q.text for q in QUERIES])
    by_vector = flat.search_vectors([q.qid for q in QUERIES], vectors, k=5)
    assert by_vector == flat.search(QUERIES, k=5)


def test_rankings_are_faiss_arrays_as_they_came(flat: DenseIndex, encoder: Encoder) -> None:
    vectors = encoder.encode_queries([q.text for q in QUERIES])
    scores, rows = flat._index.search(vectors, 4)  # what faiss itself answers
    rankings = flat.search_vectors([q.qid for q in QUERIES], vectors, k=4)
    for r, row_scores, row_ids in zip(rankings, scores.tolist(), rows.tolist(), strict=True):
        assert r.docids == [DOCS[i].docid for i in row_ids]
        assert r.scores.tolist() == row_scores  # float32 values, exactly
        assert not r.scores.flags.writeable and not r.docid_array.flags.writeable


def test_padding_from_faiss_is_dropped(flat: DenseIndex) -> None:
    # Approximate indexes pad a row with id -1 when fewer than k documents are reachable.
    scores = np.array([[0.9, 0.5, -3.4e38], [0.7, 0.6, 0.1]], dtype=np.float32)
    rows = np.array([[3, 1, -1], [0, 2, 5]])
    padded, full = flat._rankings(["a", "b"], scores, rows, with_docs=True)
    assert padded.docids == ["d04", "d02"] and padded.docs == (DOCS[3], DOCS[1])
    assert padded.scores.tolist() == scores[0, :2].tolist()
    assert full.docids == ["d01", "d03", "d06"] and full.docs == (DOCS[0], DOCS[2], DOCS[5])


def test_doc_and_with_docs(flat: DenseIndex) -> None:
    d = flat.doc("d07")
    assert d == DOCS[6] and d.title == "Baking" and d.text.startswith("Bread is baked")
    assert flat.doc("d03").title == ""
    assert flat.doc("nope") is None
    (ranking,) = flat.search([QUERIES[2]], k=2, with_docs=True)
    assert ranking.hits[0].doc == DOCS[6]
    assert all(h.doc is not None and h.doc.docid == h.docid for h in ranking.hits)


def test_meta_survives_build_doc_and_search(tmp_path: Path, encoder: Encoder) -> None:
    import pyarrow.parquet as pq

    meta = {"year": 2020, "tags": ["astronomy"], "source": {"url": "https://example.org/j"}}
    docs = [Document("j", DOCS[9].text, "Jupiter", meta), *DOCS[:3]]
    index = DenseIndex.build(docs, tmp_path / "idx", encoder=encoder, quiet=True)
    assert dict(index.doc("j").meta) == meta and dict(index.doc("d01").meta) == {}
    (r,) = index.search([QUERIES[0]], k=1, with_docs=True)
    assert r.hits[0].docid == "j" and dict(r.hits[0].doc.meta) == meta
    # An index built before the meta column still reads, with empty meta.
    store = tmp_path / "idx" / "docstore.parquet"
    pq.write_table(pq.read_table(store).drop(["meta"]), store)
    manifest = Manifest.read(tmp_path / "idx", check_files=False)
    replace(manifest, files={}).write(tmp_path / "idx")  # as rarx wrote it then: no file record
    old = DenseIndex.load(tmp_path / "idx", encoder=encoder)
    assert old.doc("j") == Document("j", DOCS[9].text, "Jupiter") and old.doc("j").meta == {}
    with pytest.raises(InputError, match="'bad': its meta cannot be stored as JSON"):
        DenseIndex.build([Document("bad", "x", meta={"when": object()})], tmp_path / "bad",
                         encoder=encoder, quiet=True)  # fmt: skip


def test_k_larger_than_corpus_and_empty_queries(flat: DenseIndex) -> None:
    (ranking,) = flat.search([QUERIES[0]], k=100)
    assert sorted(ranking.docids) == sorted(d.docid for d in DOCS)
    assert flat.search([], k=10) == []
    assert flat.search_vectors([], np.zeros((0, 384), dtype=np.float32)) == []


def test_bad_query_vectors_and_k(flat: DenseIndex) -> None:
    with pytest.raises(InputError, match=r"shape \(2, 384\)"):
        flat.search_vectors(["a", "b"], np.zeros((2, 10), dtype=np.float32))
    with pytest.raises(ConfigError, match="k must be"):
        flat.search(QUERIES, k=0)


def test_instruction_changes_the_query_embedding(flat: DenseIndex) -> None:
    plain = flat.search([QUERIES[0]], k=len(DOCS))[0]
    instructed = flat.search([QUERIES[0]], k=len(DOCS), instruction="Retrieve a music text:")[0]
    assert [h.score for h in plain.hits] != [h.score for h in instructed.hits]


def test_load_index_dispatches_and_loads_the_encoder_lazily(flat_path: Path) -> None:
    index = load_index(flat_path)
    assert isinstance(index, DenseIndex)
    assert index._encoder is None
    assert index.search([QUERIES[0]], k=1)[0].docids == ["d10"]
    assert index._encoder is not None


def test_hnsw_agrees_with_flat(tmp_path: Path, encoder: Encoder, flat: DenseIndex) -> None:
    hnsw = DenseIndex.build(
        DOCS, tmp_path / "hnsw", faiss="hnsw", hnsw_m=8, encoder=encoder, quiet=True
    )
    assert hnsw.manifest.params["faiss_params"]["m"] == 8
    exact, approx = flat.search(QUERIES, k=5), hnsw.search(QUERIES, k=5)
    for e, a in zip(exact, approx, strict=True):
        assert e.docids == a.docids
        np.testing.assert_allclose([h.score for h in e.hits], [h.score for h in a.hits], atol=1e-5)
    reloaded = DenseIndex.load(tmp_path / "hnsw", ef_search=4, encoder=encoder)
    assert reloaded._index.hnsw.efSearch == 4


def _generated(n: int, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    topics = ["river", "engine", "garden", "planet", "violin", "market", "protein", "castle"]
    words = ["small", "old", "bright", "heavy", "quiet", "fast", "green", "cold", "deep", "rare"]
    return [
        Document(
            f"g{i:04d}",
            " ".join(rng.choice(words) for _ in range(4))
            + f" {rng.choice(topics)} {rng.choice(topics)}",
        )
        for i in range(n)
    ]


def test_ivfpq_finds_documents_by_their_own_text(tmp_path: Path, encoder: Encoder) -> None:
    docs = _generated(260)
    index = DenseIndex.build(docs, tmp_path / "pq", faiss="ivfpq", encoder=encoder, quiet=True)
    fp = index.manifest.params["faiss_params"]
    assert fp["pq_m"] == 48 and 1 <= fp["nlist"] <= 260 // 39 and fp["nprobe"] == fp["nlist"]
    probes = docs[::15]
    rankings = index.search([Query(d.docid, d.text) for d in probes], k=5)
    assert all(d.docid in r.docids for d, r in zip(probes, rankings, strict=True))
    assert DenseIndex.load(tmp_path / "pq", nprobe=1, encoder=encoder)._index.nprobe == 1


def test_ivfpq_on_a_tiny_corpus_is_a_clear_error(tmp_path: Path, encoder: Encoder) -> None:
    with pytest.raises(InputError, match="at least 256 documents.*'flat'"):
        DenseIndex.build(DOCS, tmp_path / "pq", faiss="ivfpq", encoder=encoder, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_ivfpq_rejects_a_pq_m_that_does_not_divide_dim(tmp_path: Path, encoder: Encoder) -> None:
    with pytest.raises(ConfigError, match="pq_m must divide"):
        DenseIndex.build(
            _generated(260), tmp_path / "pq", faiss="ivfpq", pq_m=7, encoder=encoder, quiet=True
        )


def test_unknown_faiss_kind(tmp_path: Path, encoder: Encoder) -> None:
    with pytest.raises(ConfigError, match="flat, hnsw, ivfpq"):
        DenseIndex.build(DOCS, tmp_path / "x", faiss="lsh", encoder=encoder, quiet=True)


def test_empty_corpus_and_duplicate_ids(tmp_path: Path, encoder: Encoder) -> None:
    with pytest.raises(InputError, match="empty"):
        DenseIndex.build([], tmp_path / "empty", encoder=encoder, quiet=True)
    with pytest.raises(InputError, match="duplicate document id 'd01'"):
        DenseIndex.build([*DOCS, DOCS[0]], tmp_path / "dup", encoder=encoder, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_existing_index_needs_overwrite(flat_path: Path, encoder: Encoder) -> None:
    with pytest.raises(IndexExistsError, match="--overwrite"):
        DenseIndex.build(DOCS, flat_path, encoder=encoder, quiet=True)


def test_failed_rebuild_leaves_the_previous_index_untouched(
    tmp_path: Path, encoder: Encoder
) -> None:
    target = tmp_path / "idx"
    DenseIndex.build(DOCS[:4], target, encoder=encoder, quiet=True)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def failing() -> Iterator[Document]:
        yield from DOCS[:5]
        raise RuntimeError("corpus read failed")

    # chunk_size=2: two chunks are encoded and written before the failure
    with pytest.raises(RuntimeError, match="corpus read failed"):
        DenseIndex.build(
            failing(), target, overwrite=True, chunk_size=2, encoder=encoder, quiet=True
        )
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]

    rebuilt = DenseIndex.build(
        DOCS, target, overwrite=True, chunk_size=5, encoder=encoder, quiet=True
    )
    assert len(rebuilt) == len(DOCS) and rebuilt.docids == [d.docid for d in DOCS]
    assert rebuilt.doc("d12") == DOCS[11]  # from the last of three row groups
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_cuda_device_without_gpu_faiss_searches_on_cpu(flat_path: Path, encoder: Encoder) -> None:
    import faiss

    if faiss.get_num_gpus() > 0:
        pytest.skip("faiss sees a GPU here")
    index = DenseIndex.load(flat_path, device="cuda", encoder=encoder)
    assert isinstance(index._index, faiss.IndexFlatIP) and index._gpu_resources is None
    assert index.search([QUERIES[0]], k=1)[0].docids == ["d10"]
