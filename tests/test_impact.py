"""The splade kind: SPLADE impacts in Lucene, with the packaged splade-tiny on tiny data."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rarx.errors import (
    ConfigError,
    IndexExistsError,
    IndexFormatError,
    InputError,
    ModelNotFoundError,
)
from rarx.index.base import MANIFEST_NAME, load_index
from rarx.index.registry import index_kind, kinds_with
from rarx.index.registry import search as registry_search
from rarx.models.sparse import quantize
from rarx.types import Document, Query
from tests.conftest import TINY_DOCS, write_jsonl

QUERIES = [
    Query("a", "why do volcanoes erupt lava"),
    Query("b", "what makes energy in a cell"),
    Query("c", "how do clouds form from water"),
    Query("d", "genetic information"),
]


def _docs() -> list[Document]:
    return [Document(d["id"], d["text"], d["title"]) for d in TINY_DOCS]


@pytest.fixture(scope="module")
def encoder() -> Any:
    from rarx.models.sparse import SparseEncoder

    return SparseEncoder(model="splade-tiny", device="cpu")


@pytest.fixture(scope="module")
def splade(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from rarx.index.impact import ImpactIndex

    root = tmp_path_factory.mktemp("splade")
    return ImpactIndex.build(_docs(), root / "index", quiet=True, encoder=encoder)


def _score(query: dict[str, int], doc: dict[str, int]) -> float:
    """Anserini's impact score: the sum over shared terms of query x document impact."""
    return float(sum(w * doc[t] for t, w in query.items() if t in doc))


def test_quantisation_is_javas_math_round_of_a_float_product() -> None:
    def f32(x: float) -> float:
        return struct.unpack("f", struct.pack("f", x))[0]

    weights = np.array([0.005, 0.00499, 0.015, 1.234567, 2.5, 0.0, 3.14159, 0.125], np.float32)
    for factor in (100.0, 256 / 5, 7.0):
        expected = [math.floor(f32(f32(float(w)) * f32(factor)) + 0.5) for w in weights]
        assert quantize(weights, factor).tolist() == expected
    assert quantize(weights, 100).tolist() == [1, 0, 2, 123, 250, 0, 314, 13]  # halves go up


def test_documents_are_found_and_come_back_whole(splade: Any) -> None:
    (r,) = splade.search(QUERIES[:1], k=3, with_docs=True)
    assert r.docids[0] == "d4" and len(r) == 3
    assert all(a.score >= b.score for a, b in zip(r.hits, r.hits[1:], strict=False))
    assert r.hits[0].doc == Document("d4", TINY_DOCS[3]["text"], "Volcanoes")
    assert splade.doc("d7") == Document("d7", TINY_DOCS[6]["text"], "")
    assert splade.doc("missing") is None
    assert splade.search([], k=3) == []
    empty, unknown = splade.search_impacts(["e", "u"], [{}, {"no-such-term": 7}], k=3)
    assert (empty.qid, empty.hits, unknown.hits) == ("e", (), ())


def test_scores_are_query_impacts_times_document_impacts(splade: Any, encoder: Any) -> None:
    docs = _docs()
    doc_impacts = encoder.impacts(encoder.encode_docs([d.contents for d in docs]), 100.0)
    query = splade.encode_queries([QUERIES[1].text])[0]
    assert query and all(isinstance(w, int) and w > 0 for w in query.values())
    (r,) = splade.search_impacts(["b"], [query], k=len(docs))
    expected = {d.docid: _score(query, v) for d, v in zip(docs, doc_impacts, strict=True)}
    assert {h.docid: h.score for h in r.hits} == {d: s for d, s in expected.items() if s > 0}


def test_rankings_equal_anserinis_impact_searcher(splade: Any) -> None:
    from rarx.index.java import jclass

    # The class pyserini's LuceneImpactSearcher wraps, given the same integer query impacts.
    theirs = jclass("io.anserini.search.SimpleImpactSearcher")(str(splade.path / "lucene"))
    hash_map, integer = jclass("java.util.HashMap"), jclass("java.lang.Integer")
    impacts = splade.encode_queries([q.text for q in QUERIES])
    qids = [q.qid for q in QUERIES]
    for k in (3, 100):
        ours = splade.search_impacts(qids, impacts, k)
        assert splade.search(QUERIES, k) == ours
        assert splade.search(QUERIES, k, threads=2) == ours
        for r, query in zip(ours, impacts, strict=True):
            jquery = hash_map()
            for term, weight in query.items():
                jquery.put(term, integer(weight))
            expected = [(h.docid, h.score) for h in theirs.search(jquery, k)]
            assert [(h.docid, h.score) for h in r.hits] == expected and expected
    theirs.close()


def test_manifest_registry_and_capabilities(splade: Any) -> None:
    from rarx.index.impact import ImpactIndex

    m = json.loads((splade.path / MANIFEST_NAME).read_text())
    assert m["kind"] == "splade" and m["model"] == "splade-tiny" and m["documents"] == 8
    assert m["params"]["quantization"] == 100.0 and m["params"]["vocabulary"] == 30522
    assert m["params"]["max_seq_length"] == 512 and m["params"]["skipped_empty"] == 0
    assert m["params"]["terms_per_document"] > 5 and m["corpus_checksum"].startswith("sha256:")
    assert isinstance(load_index(splade.path), ImpactIndex)
    assert "splade" in kinds_with("ranked_search", "documents", "threads")
    assert not index_kind("splade").has("instructions")
    with pytest.raises(ConfigError, match="instructions"):
        registry_search(splade, QUERIES[:1], 3, instruction="Find: ")
    assert registry_search(splade, QUERIES, 3, threads=2) == splade.search(QUERIES, 3)


def test_bad_input_and_bad_indexes(splade: Any, encoder: Any, tmp_path: Path, tiny_bm25) -> None:
    from rarx.index.impact import ImpactIndex, SpladeBuildParams

    with pytest.raises(ConfigError, match="quantization must be positive"):
        SpladeBuildParams(quantization=0)
    # Parameters are checked before any model loads (this model does not exist).
    with pytest.raises(ConfigError, match="quantization"):
        ImpactIndex.build(_docs(), tmp_path / "q", model="./no-such-model", quantization=-1)
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        ImpactIndex.build(_docs(), tmp_path / "m", model="./no-such-model", quiet=True)
    twice = [*_docs(), Document("d1", "again")]
    with pytest.raises(InputError, match="duplicate document id 'd1'"):
        ImpactIndex.build(twice, tmp_path / "dup", quiet=True, encoder=encoder)
    with pytest.raises(InputError, match="empty"):
        ImpactIndex.build([], tmp_path / "empty", quiet=True, encoder=encoder)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no partial index anywhere
    with pytest.raises(ConfigError, match="k must be at least 1"):
        splade.search(QUERIES, k=0)
    with pytest.raises(InputError, match="2 qids but 1"):
        splade.search_impacts(["a", "b"], [{"lava": 3}])
    with pytest.raises(IndexFormatError, match="is a 'bm25' index, not 'splade'"):
        ImpactIndex.load(tiny_bm25.path)
    with pytest.raises(ConfigError, match="takes no load options|rm3"):
        load_index(splade.path, rm3=True)


def _failing(docs: list[Document], after: int, exc: BaseException) -> Any:
    for i, d in enumerate(docs):
        if i == after:
            raise exc
        yield d


def test_interrupted_rebuild_leaves_the_old_index(tmp_path: Path, encoder: Any) -> None:
    from rarx.index.impact import ImpactIndex

    target = tmp_path / "idx"
    old = ImpactIndex.build(_docs(), target, quiet=True, encoder=encoder)
    before = sorted(p.name for p in target.rglob("*"))
    ranked = old.search(QUERIES, 5)
    with pytest.raises(KeyboardInterrupt):
        ImpactIndex.build(_failing(_docs(), 3, KeyboardInterrupt()), target, overwrite=True,
                          quiet=True, encoder=encoder)  # fmt: skip
    assert sorted(p.name for p in target.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temp dirs left
    assert ImpactIndex.load(target, encoder=encoder).search(QUERIES, 5) == ranked
    with pytest.raises(IndexExistsError, match="--overwrite"):
        ImpactIndex.build(_docs(), target, quiet=True, encoder=encoder)
    # A rebuild with another quantisation replaces it: impacts are round(weight x 10) now.
    new = ImpactIndex.build(_docs()[:4], target, overwrite=True, quiet=True, encoder=encoder,
                            quantization=10)  # fmt: skip
    assert new.manifest.documents == 4 and new.manifest.params["quantization"] == 10.0
    query = new.encode_queries([QUERIES[0].text])[0]
    docs = _docs()[:4]
    impacts = encoder.impacts(encoder.encode_docs([d.contents for d in docs]), 10.0)
    assert max(query.values()) < 40  # splade-tiny's weights stay below 4
    (r,) = new.search_impacts(["a"], [query], k=4)
    assert {h.docid: h.score for h in r.hits} == {
        d.docid: _score(query, v) for d, v in zip(docs, impacts, strict=True) if _score(query, v)
    }


def test_cli_index_search_and_fuse(
    tmp_path: Path, tiny_corpus: Path, tiny_bm25: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from rarx.cli.main import cli
    from rarx.index.fusion import rrf

    index = tmp_path / "splade"
    cli.main(["index", "--corpus", str(tiny_corpus), "--index", str(index), "--kind", "splade",
              "--model", "splade-tiny", "--quantization", "50", "-q"],
             standalone_mode=False)  # fmt: skip
    built = load_index(index)
    assert built.manifest.params["quantization"] == 50.0
    with pytest.raises(ConfigError, match="--faiss: not an option of --kind splade"):
        cli.main(["index", "--corpus", str(tiny_corpus), "--index", str(tmp_path / "x"),
                  "--kind", "splade", "--faiss", "hnsw"], standalone_mode=False)  # fmt: skip
    capsys.readouterr()  # one index: rarx search runs the retrieve stage, as pipelines do
    cli.main(["search", "--index", str(index), "--query", "volcano lava", "--k", "2"],
             standalone_mode=False)  # fmt: skip
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].split()[:2] == ["1", "d4"] and "Volcanoes" in rows[2]
    topics = write_jsonl(tmp_path / "q.jsonl", [{"_id": q.qid, "text": q.text} for q in QUERIES])
    run = tmp_path / "fused.trec"
    cli.main(["search", "--index", str(index), "--index", str(tiny_bm25.path), "--topics",
              str(topics), "--k", "4", "--fusion-depth", "8", "-o", str(run), "-q"],
             standalone_mode=False)  # fmt: skip
    fused = rrf([built.search(QUERIES, 8), tiny_bm25.search(QUERIES, 8)], k=4)
    lines = [line.split() for line in run.read_text().splitlines()]
    assert [(r[0], r[2]) for r in lines] == [(f.qid, d) for f in fused for d in f.docids]


def test_eval_retrieval_with_splade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rarx.cli.main import cli
    from tests.test_eval_retrieval import _tiny_beir

    ds = _tiny_beir(tmp_path / "ds")
    args = ["eval", "retrieval", "--dataset", str(ds), "--bm25", "--splade", "splade-tiny",
            "--hybrid", "-m", "nDCG@10", "-m", "R@5", "-k", "5", "--work-dir",
            str(tmp_path / "work"), "--json", "-q"]  # fmt: skip
    cli.main(args, standalone_mode=False)
    out = json.loads(capsys.readouterr().out)
    names = [s["system"] for s in out["systems"]]
    assert names == ["bm25", "splade-tiny", "rrf(bm25 + splade-tiny)"]
    splade = out["systems"][1]
    assert splade["settings"]["kind"] == "splade" and splade["settings"]["quantization"] == 100.0
    assert splade["measures"]["R@5"] >= 0.8  # the five questions' passages are easy
    index = next((tmp_path / "work").glob("splade-splade-tiny-*"))
    cli.main([*args[:3], str(ds), "--index", str(index), "-m", "nDCG@10", "-k", "5", "--json",
              "-q"], standalone_mode=False)  # fmt: skip
    again = json.loads(capsys.readouterr().out)["systems"][0]
    assert again["measures"]["nDCG@10"] == splade["measures"]["nDCG@10"]


@pytest.mark.slow
def test_opening_and_searching_impacts_loads_no_torch(splade: Any) -> None:
    impacts = splade.encode_queries([QUERIES[0].text])
    code = (
        "import sys\nfrom rarx.index.base import load_index\n"
        f"index = load_index({str(splade.path)!r})\n"
        f"(r,) = index.search_impacts(['a'], [{impacts[0]!r}], 2)\n"
        "assert r.docids[0] == 'd4' and index.doc('d4').title == 'Volcanoes'\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_matrix_and_lucene_paths_give_the_same_impact_rankings(splade: Any) -> None:
    from rarx.index.impact import ImpactIndex

    matrix = ImpactIndex.load(splade.path, engine="matrix", encoder=splade.encoder)
    lucene = ImpactIndex.load(splade.path, engine="lucene", encoder=splade.encoder)
    assert (matrix.settings["engine"], lucene.settings["engine"]) == ("matrix", "lucene")
    impacts = splade.encode_queries([q.text for q in QUERIES])
    indexed = sorted(matrix._matrix.terms)  # the documents' terms
    impacts += [
        {indexed[0]: 0},  # a zero weight: its documents still match, with score 0
        {indexed[0]: 0, indexed[1]: 3},
        {t: 1 for t in indexed},  # every term once: many equal scores
        {},
        {"notaterm": 5},
    ]
    qids = [str(i) for i in range(len(impacts))]
    for k in (1, 3, 100):
        ours = matrix.search_impacts(qids, impacts, k)
        assert ours == lucene.search_impacts(qids, impacts, k)
    assert ours[-1].hits == ours[-2].hits == ()
    assert ours[4].hits and set(ours[4].scores.tolist()) == {0.0}
