import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rarx.errors import ConfigError, IndexExistsError, IndexFormatError, InputError, RarxError
from rarx.index import anserini
from rarx.index.base import MANIFEST_NAME, load_index
from rarx.index.java import jclass
from rarx.index.lucene import LuceneIndex
from rarx.io.corpus import Corpus
from rarx.types import Document, Query
from tests.conftest import TINY_DOCS, write_jsonl


def test_search_finds_the_obvious_document(tiny_bm25):
    (r,) = tiny_bm25.search([Query("q", "why do volcanoes erupt lava")], k=3)
    assert r.docids[0] == "d4"
    assert len(r) <= 3 and all(a.score >= b.score for a, b in zip(r.hits, r.hits[1:], strict=False))


def test_title_is_indexed_and_documents_come_back_whole(tiny_bm25):
    (r,) = tiny_bm25.search([Query("q", "mitochondria")], k=1, with_docs=True)
    doc = r.hits[0].doc
    assert doc == Document("d2", TINY_DOCS[1]["text"], "Mitochondria")
    assert tiny_bm25.doc("d7") == Document("d7", TINY_DOCS[6]["text"], "")
    assert tiny_bm25.doc("missing") is None


def test_batch_search_equals_single_searches(tiny_bm25):
    queries = [Query("a", "water sun clouds"), Query("b", "cell energy"), Query("c", "zzz unknown")]
    batch = tiny_bm25.search(queries, k=5, threads=2)
    singles = [tiny_bm25.search([q], k=5)[0] for q in queries]
    assert [r.qid for r in batch] == ["a", "b", "c"]
    assert batch == singles
    assert batch[2].hits == ()
    assert tiny_bm25.search([], k=5) == []


def test_manifest_records_what_was_built(tiny_bm25):
    m = json.loads((tiny_bm25.path / MANIFEST_NAME).read_text())
    assert m["kind"] == "bm25" and m["documents"] == len(TINY_DOCS) and m["format_version"] == 1
    assert m["params"]["k1"] == 0.9 and m["params"]["b"] == 0.4
    assert m["corpus_checksum"].startswith("sha256:") and m["built_at"]
    assert isinstance(load_index(tiny_bm25.path), LuceneIndex)


def test_bm25_parameters_and_rm3_change_scores(tiny_bm25):
    q = [Query("q", "water")]
    default = tiny_bm25.search(q, k=3)[0]
    other = LuceneIndex.load(tiny_bm25.path, k1=1.2, b=0.75).search(q, k=3)[0]
    assert default.docids == other.docids and default.hits[0].score != other.hits[0].score
    rm3 = LuceneIndex.load(tiny_bm25.path, rm3=True).search(q, k=8)[0]
    assert rm3.hits and rm3.hits[0].score != default.hits[0].score


def _failing(docs, after: int, exc: BaseException):
    for i, d in enumerate(docs):
        if i == after:
            raise exc
        yield d


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), InputError("boom", "c.jsonl", 5)])
def test_interrupted_build_leaves_the_old_index(tmp_path: Path, tiny_corpus: Path, exc):
    target = tmp_path / "idx"
    LuceneIndex.build(Corpus(tiny_corpus), target, quiet=True)
    before = sorted(p.name for p in target.rglob("*"))
    with pytest.raises(type(exc)):
        LuceneIndex.build(_failing(Corpus(tiny_corpus), 3, exc), target, overwrite=True, quiet=True)
    assert sorted(p.name for p in target.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "idx"]  # no temp dirs
    assert LuceneIndex.load(target).manifest.documents == len(TINY_DOCS)


def test_interrupted_first_build_leaves_nothing(tmp_path: Path, tiny_corpus: Path):
    with pytest.raises(KeyboardInterrupt):
        LuceneIndex.build(
            _failing(Corpus(tiny_corpus), 2, KeyboardInterrupt()), tmp_path / "idx", quiet=True
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_overwrite_is_required(tmp_path: Path, tiny_corpus: Path):
    target = tmp_path / "idx"
    LuceneIndex.build(Corpus(tiny_corpus), target, quiet=True)
    with pytest.raises(IndexExistsError, match="--overwrite"):
        LuceneIndex.build(Corpus(tiny_corpus), target, quiet=True)
    small = write_jsonl(tmp_path / "small.jsonl", [{"id": "only", "contents": "one doc"}])
    assert (
        LuceneIndex.build(Corpus(small), target, overwrite=True, quiet=True).manifest.documents == 1
    )
    notindex = tmp_path / "precious"
    notindex.mkdir()
    (notindex / "file.txt").write_text("keep me")
    with pytest.raises(IndexExistsError, match="not a rarx index"):
        LuceneIndex.build(Corpus(small), notindex, overwrite=True, quiet=True)
    assert (notindex / "file.txt").read_text() == "keep me"


def test_not_an_index_and_incompatible_versions(tmp_path: Path, tiny_bm25):
    with pytest.raises(IndexFormatError, match="no such index directory"):
        load_index(tmp_path / "nothing")
    with pytest.raises(IndexFormatError, match="not a rarx index"):
        load_index(tmp_path)
    fake = tmp_path / "old"
    fake.mkdir()
    manifest = json.loads((tiny_bm25.path / MANIFEST_NAME).read_text())
    (fake / MANIFEST_NAME).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexFormatError, match="format version 99.*rebuild"):
        load_index(fake)
    (fake / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(IndexFormatError, match="unreadable index manifest"):
        load_index(fake)


def test_empty_corpus_is_an_error(tmp_path: Path):
    with pytest.raises(RarxError, match="no documents"):
        LuceneIndex.build(iter(()), tmp_path / "idx", quiet=True)
    assert not (tmp_path / "idx").exists()


@pytest.mark.slow
def test_bm25_search_does_not_import_torch(tiny_bm25):
    code = (
        "import sys\n"
        "from rarx.index.base import load_index\n"
        "from rarx.types import Query\n"
        f"r = load_index({str(tiny_bm25.path)!r}).search([Query('q', 'lava')], k=1)\n"
        "assert r[0].docids == ['d4'], r\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_meta_survives_build_doc_and_search(tmp_path):
    meta = {"year": 2020, "tags": ["geology"], "source": {"url": "https://example.org/v"}}
    corpus = write_jsonl(tmp_path / "c.jsonl", [
        {"_id": "m1", "title": "Volcano", "text": "Lava flows downhill.", **meta},
        {"_id": "m2", "text": "Rain falls from clouds."},
    ])  # fmt: skip
    index = LuceneIndex.build(Corpus(corpus), tmp_path / "idx", quiet=True)
    assert dict(index.doc("m1").meta) == meta and index.doc("m1").title == "Volcano"
    assert dict(index.doc("m2").meta) == {}
    (r,) = index.search([Query("q", "lava")], k=1, with_docs=True)
    assert r.hits[0].doc.text == "Lava flows downhill." and dict(r.hits[0].doc.meta) == meta
    with pytest.raises(RarxError, match="'bad': its meta cannot be stored as JSON"):
        LuceneIndex.build([Document("bad", "x", meta={"when": object()})], tmp_path / "bad")


# -- rankings read back as arrays are Anserini's own ------------------------------------

_TIES = [  # same text under ids out of Lucene's (insertion) order: ties broken by docid
    *({"id": f"tie-{c}", "contents": "lava flows from the volcano"} for c in "cab"),
    {"id": "near-1", "contents": "lava flows from the volcano, slowly"},
    {"id": "near-0", "contents": "lava flows from a volcano slowly"},
    {"id": "other", "contents": "glaciers carve valleys"},
]


@pytest.fixture(scope="module")
def ties_bm25(tmp_path_factory: pytest.TempPathFactory) -> LuceneIndex:
    root = tmp_path_factory.mktemp("ties")
    corpus = write_jsonl(root / "corpus.jsonl", _TIES)
    return LuceneIndex.build(Corpus(corpus), root / "idx", threads=1, quiet=True)


def _anserini(index: LuceneIndex, text: str, k: int) -> list[tuple[str, float]]:
    """What Anserini's SimpleSearcher returns itself, one Java object per hit."""
    return [(h.docid, h.score) for h in index._searcher.search(text, k)]


@pytest.mark.parametrize(("rm3", "engine"), [(False, "lucene"), (False, "matrix"), (True, "auto")])
def test_rankings_are_anserinis_to_the_last_tie(ties_bm25: LuceneIndex, rm3: bool, engine: str):
    index = LuceneIndex.load(ties_bm25.path, rm3=rm3, engine=engine)
    assert index.settings["engine"] == ("lucene" if rm3 else engine)
    texts = ["lava volcano", "volcano slowly flows", "glaciers", "nothing matches this"]
    queries = [Query(f"q{i}", t) for i, t in enumerate(texts)]
    for k in (1, 2, 4, 100):
        for threads in (1, 2):
            got = index.search(queries, k, threads=threads)
            expected = [_anserini(index, t, k) for t in texts]
            assert [list(zip(r.docids, r.scores.tolist(), strict=True)) for r in got] == expected
    first = index.search(queries[:1], 4)[0]
    if not rm3:
        assert first.docids[:3] == ["tie-a", "tie-b", "tie-c"]  # docid order among equals
        assert first.scores[0] > first.scores[1] > first.scores[2]  # Anserini's 1e-6 steps


def test_search_rejects_a_k_below_one(tiny_bm25):
    with pytest.raises(ConfigError, match="k must be at least 1"):
        tiny_bm25.search([Query("q", "lava")], k=0)


def _java_ties(scores: np.ndarray) -> np.ndarray:
    """Anserini's ScoreTiesAdjusterReranker run on the scores (ScoredDocs built by Jackson)."""
    mapper = jclass("com.fasterxml.jackson.databind.ObjectMapper")()
    text = json.dumps({"scores": scores.tolist(), "lucene_documents": [None] * len(scores)})
    docs = mapper.readValue(text, jclass("io.anserini.search.ScoredDocs"))
    adjusted = jclass("io.anserini.rerank.lib.ScoreTiesAdjusterReranker")().rerank(docs, None)
    return np.array(adjusted.scores, dtype=np.float32)


@pytest.mark.parametrize("passes", [anserini._TIE_PASSES, 0])  # 0: the in-order walk only
def test_score_tie_adjustment_is_anserinis(monkeypatch, passes: int):
    monkeypatch.setattr(anserini, "_TIE_PASSES", passes)
    rng = np.random.default_rng(0)
    for _ in range(60):  # runs of equal scores and steps of about 1e-4, Anserini's edge
        n = int(rng.integers(1, 80))
        steps = rng.choice([0, 1, 2, 30], size=n, p=[0.4, 0.4, 0.1, 0.1]).cumsum()
        jitter = rng.choice([0.0, 1e-6, -2e-7, 4e-5], size=n)
        base = rng.choice([0.5, 7.25, 12.0, 100.0])
        scores = np.sort((base - steps * 1e-4 + jitter).astype(np.float32))[::-1]
        assert np.array_equal(anserini.adjust_score_ties(scores), _java_ties(scores))


def test_score_ties_of_a_batch_restart_at_each_query():
    a = np.array([5.0, 5.0, 4.9999], dtype=np.float32)
    b = np.array([4.9999, 4.9999], dtype=np.float32)  # would continue a's run if not split
    batch = anserini.adjust_score_ties(np.concatenate([a, b, a]), starts=[0, 3, 3, 5])
    alone = [anserini.adjust_score_ties(x) for x in (a, b, a)]
    assert np.array_equal(batch, np.concatenate(alone))
    assert batch[3] == np.float32(4.9999)  # first hit of a query: rounded, not stepped down


def test_a_batch_too_big_for_one_fetch_is_split(monkeypatch, ties_bm25: LuceneIndex):
    queries = [Query(f"q{i}", t) for i, t in enumerate(["lava", "slowly", "glaciers", "volcano"])]
    ties_bm25 = LuceneIndex.load(ties_bm25.path, engine="lucene")
    whole = ties_bm25.search(queries, k=3)
    monkeypatch.setattr(anserini, "_BATCH_HITS", 7)  # two queries of 3 hits per Java call
    batches: list[int] = []
    fetch = anserini.AnseriniHits._search_batch
    monkeypatch.setattr(
        anserini.AnseriniHits,
        "_search_batch",
        lambda self, texts, k: batches.append(len(texts)) or fetch(self, texts, k),
    )
    assert ties_bm25.search(queries, k=3) == whole and batches == [2, 2]
    assert [r.docids for r in whole] == [_anserini_ids(ties_bm25, q.text, 3) for q in queries]


def _anserini_ids(index: LuceneIndex, text: str, k: int) -> list[str]:
    return [docid for docid, _ in _anserini(index, text, k)]
