"""Indexes that defend themselves: a build's lock on its target (two real processes),
temporary directories of killed builds (kill -9), the file record in the manifest, the
size check on open, ``rarx index check``, and damaged files of every kind giving one
line that names the index, the file and the fix, in the library, the CLI and serve."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rarx.errors import IndexCorruptError, IndexExistsError, LockedError, RarxError
from rarx.index.base import MANIFEST_NAME, Manifest, load_index, staged_build
from rarx.index.check import check_index
from rarx.index.lucene import LuceneIndex
from rarx.io.hashing import file_checksum
from rarx.io.lock import exclusive_lock
from rarx.types import Document, Query
from tests.conftest import TINY_DOCS, write_jsonl

DOCS = [Document(d["id"], d["text"], d["title"]) for d in TINY_DOCS]
LAVA = [Query("q", "volcano lava")]


def rarx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rarx.cli.main", *args], capture_output=True, text=True
    )


def copy(index: Any, to: Path) -> Path:
    shutil.copytree(index.path, to)
    return to


def spoil(file: Path, seed: int = 0) -> None:
    """200 random bytes written over the middle of ``file``; its size stays the same."""
    data = bytearray(file.read_bytes())
    start = max(0, len(data) // 2 - 100)
    data[start : start + 200] = random.Random(seed).randbytes(min(200, len(data) - start))
    file.write_bytes(bytes(data))


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def unrecorded(path: Path) -> Path:
    """The index as an older rarx (or ``rarx index adopt``) left it: no file record."""
    replace(Manifest.read(path, check_files=False), files={}).write(path)
    return path


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.glob(f".{target.name}.*"))


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rarx: error: "), result.stderr
    return lines[0]


# -- the record and the size check ----------------------------------------------------------


def test_a_build_records_every_file_it_wrote(tiny_bm25: Any, tmp_path: Path) -> None:
    path = Path(tiny_bm25.path)
    files = tiny_bm25.manifest.files
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    # All but the manifest, Lucene's empty lock file (not data; a copy may drop it) and the
    # score matrix, which keeps its own manifest and is rebuilt when stale.
    matrix = {name for name in on_disk if name.startswith("matrix/")}
    assert matrix, "the BM25 build writes its score matrix"
    assert set(files) == on_disk - {MANIFEST_NAME, "lucene/write.lock"} - matrix
    assert any(name.startswith("lucene/segments_") for name in files)
    gone = copy(tiny_bm25, tmp_path / "no-lock")
    (gone / "lucene" / "write.lock").unlink()
    assert load_index(gone).search(LAVA, 1)[0].docids == ["d4"]
    for name, record in files.items():
        assert record == {"size": (path / name).stat().st_size,
                          "checksum": file_checksum(path / name)}  # fmt: skip


def test_a_truncated_file_is_named_when_the_index_opens(tiny_bm25: Any, tmp_path: Path) -> None:
    path = copy(tiny_bm25, tmp_path / "idx")
    size = (path / "lucene" / "_0.fdt").stat().st_size
    truncate(path / "lucene" / "_0.fdt")
    with pytest.raises(IndexCorruptError) as caught:
        load_index(path)
    assert caught.value.file == "lucene/_0.fdt" and caught.value.index == str(path)
    assert str(caught.value) == (
        f"index {path} is damaged: lucene/_0.fdt: {size // 2:,} bytes, built as {size:,}; "
        f"rebuild it with 'rarx index --index {path} --overwrite' from its corpus"
    )
    (path / "lucene" / "_0.fdt").unlink()
    with pytest.raises(IndexCorruptError, match=r"lucene/_0\.fdt: missing; rebuild it"):
        load_index(path)


def test_files_that_appear_beside_an_index_later_are_outside_its_record(
    tiny_bm25: Any, tmp_path: Path
) -> None:
    path = copy(tiny_bm25, tmp_path / "idx")
    (path / "notes.txt").write_text("a user's note")
    assert (path / "matrix").is_dir()  # the derived score matrix, with its own manifest
    assert load_index(path).search(LAVA, 1)[0].docids == ["d4"]
    report = check_index(path, lucene=False)
    assert report.ok and report.unrecorded == ["notes.txt"] and report.derived == ["matrix/"]
    assert report.lines()[2:4] == [
        "  derived, with their own manifests, not checked: matrix/",
        "  not written by its build, not checked: notes.txt",
    ]


def test_a_derived_directory_the_build_writes_stays_out_of_its_record(tmp_path: Path) -> None:
    # Rebuilt on its own when stale (a newer format), it must never read as damage.
    with staged_build(tmp_path / "x") as tmp:
        (tmp / "data.bin").write_bytes(b"data")
        (tmp / "matrix").mkdir()
        (tmp / "matrix" / "scores.npy").write_bytes(b"scores")
        Manifest(kind="bm25", documents=1, corpus_checksum="sha256:0").write(tmp)
    assert list(Manifest.read(tmp_path / "x").files) == ["data.bin"]
    (tmp_path / "x" / "matrix" / "scores.npy").write_bytes(b"rebuilt, another size")
    assert Manifest.read(tmp_path / "x").files["data.bin"]["size"] == 4  # opens: no damage


# -- damaged Lucene files -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["matrix", "lucene"])
def test_bytes_written_into_stored_fields_are_found_and_named(
    tiny_bm25: Any, tmp_path: Path, engine: str
) -> None:
    path = copy(tiny_bm25, tmp_path / "idx")
    spoil(path / "lucene" / "_0.fdt")  # the stored-fields block of d3, d4 and d5
    # Same size: opening stays cheap and does not read it all.
    index = load_index(path, engine=engine)
    assert index.settings["engine"] == engine
    damage = r"is damaged: lucene/_0\.fdt: checksum differs from the build's"
    if engine == "lucene":
        with pytest.raises(IndexCorruptError, match=damage):
            index.search(LAVA, 3)  # reads the hits' stored ids from the damaged block
    else:  # the matrix holds the docids: a search that shows no text reads no stored field
        assert index.search(LAVA, 3) == tiny_bm25.search(LAVA, 3)
    # Hits with text read the damaged block: an error naming it, never an empty text
    # (Anserini's own lookups return null there).
    with pytest.raises(IndexCorruptError, match=damage):
        index.search(LAVA, 3, with_docs=True)
    with pytest.raises(IndexCorruptError, match=damage):
        index.doc("d4")
    # Documents in intact blocks read as built.
    photo = [Query("p", "photosynthesis")]
    assert index.search(photo, 1, with_docs=True) == tiny_bm25.search(photo, 1, with_docs=True)
    assert index.search(photo, 1, with_docs=True)[0].docs[0] == DOCS[0]
    assert index.doc("d1") == DOCS[0] and index.doc("no-such-doc") is None
    report = check_index(path)
    assert [str(p) for p in report.problems] == [
        "lucene/_0.fdt: checksum differs from the build's (bytes changed)"
    ]
    assert report.lucene == ["lucene/: CheckIndex found 1 broken segment(s)"]
    assert "  DAMAGED lucene/_0.fdt: checksum differs from the build's (bytes changed)" in (
        report.lines()
    )


@pytest.mark.parametrize("engine", ["matrix", "lucene"])
def test_a_block_lucene_calls_corrupt_is_named_never_read_as_a_missing_id(
    tiny_bm25: Any, tmp_path: Path, engine: str
) -> None:
    from rarx.index.java import jclass

    path = copy(tiny_bm25, tmp_path / "idx")
    fdt = path / "lucene" / "_0.fdt"
    data = bytearray(fdt.read_bytes())
    start = jclass("org.apache.lucene.codecs.CodecUtil").indexHeaderLength(
        "Lucene90StoredFieldsFastData", "")  # fmt: skip
    assert data[start] == 0  # the block's first document
    data[start] = 5  # Lucene: CorruptIndexException, which Anserini's id lookup returns as null
    fdt.write_bytes(bytes(data))
    index = load_index(path, engine=engine)
    photo = [Query("p", "photosynthesis")]
    damage = r"is damaged: lucene/_0\.fdt: checksum differs from the build's"
    if engine == "lucene":  # the hits' ids are read from the block
        with pytest.raises(IndexCorruptError, match=damage):
            index.search(photo, 3)
    else:
        assert index.search(photo, 3) == tiny_bm25.search(photo, 3)
    with pytest.raises(IndexCorruptError, match=damage):
        index.search(photo, 3, with_docs=True)


def test_a_score_matrix_built_from_damaged_stored_fields_names_the_file(
    tiny_bm25: Any, tmp_path: Path
) -> None:
    path = copy(tiny_bm25, tmp_path / "idx")
    spoil(path / "lucene" / "_0.fdt")
    shutil.rmtree(path / "matrix")  # as an index from before the matrix: built on open
    with pytest.raises(IndexCorruptError, match=r"is damaged: lucene/_0\.fdt: checksum differs"):
        load_index(path)  # the build compares stored ids with the ones it sorted
    assert not (path / "matrix").exists() and leftovers(path / "matrix") == []


def test_lucene_checkindex_names_the_file_when_no_checksums_were_recorded(
    tiny_bm25: Any, tmp_path: Path
) -> None:
    path = unrecorded(copy(tiny_bm25, tmp_path / "idx"))
    spoil(path / "lucene" / "_0.fdt")
    report = check_index(path)
    assert not report.verified
    assert [p.file for p in report.problems] == ["lucene/_0.fdt"]
    assert "checksum failed" in report.problems[0].what
    # A search fails in Lucene; without a record it cannot say which file: it says how to.
    with pytest.raises(RarxError) as caught:
        load_index(path, engine="lucene").search(LAVA, 3)
    assert str(caught.value).startswith(f"Lucene failed on index {path}: ")
    assert str(caught.value).endswith(f"'rarx index check {path}' tells whether the index is "
                                      "damaged")  # fmt: skip
    # A stored document that cannot be decoded is damage, on either engine: named as far
    # as Lucene names it (its Lucene part), never an empty text.
    for engine in ("matrix", "lucene"):
        with pytest.raises(IndexCorruptError) as caught:
            load_index(path, engine=engine).doc("d4")
        assert str(caught.value).startswith(f"index {path} is damaged: lucene/")
        assert "(as Lucene names it: no build checksums to confirm)" in str(caught.value)


def test_an_old_index_without_checksums_opens_and_check_says_it_cannot_verify(
    tiny_bm25: Any, tmp_path: Path
) -> None:
    path = unrecorded(copy(tiny_bm25, tmp_path / "idx"))
    assert load_index(path).search(LAVA, 1)[0].docids == ["d4"]
    report = check_index(path)
    assert report.ok and not report.verified and report.opened
    assert report.lines()[1].startswith(
        "  checksums: cannot verify: its manifest records no file checksums"
    )
    assert report.lucene == ["lucene/: CheckIndex clean (1 segment(s))"]
    # Truncated, it is still named: by Lucene's own footer check, when it opens.
    truncate(path / "lucene" / "_0.fdt")
    with pytest.raises(IndexCorruptError, match=r"lucene/_0\.fdt: unreadable \(CorruptIndex"):
        load_index(path)


def test_a_query_lucene_refuses_is_not_called_damage(tiny_bm25: Any) -> None:
    words = " ".join(f"term{i}" for i in range(1100))  # one clause each: over Lucene's 1024
    lucene = load_index(tiny_bm25.path, engine="lucene")  # the score matrix has no such limit
    with pytest.raises(RarxError) as caught:
        lucene.search([Query("long", words)], 3)
    assert not isinstance(caught.value, IndexCorruptError)
    assert str(caught.value) == (
        f"Lucene refused the query on index {tiny_bm25.path}: IndexSearcher$TooManyClauses: "
        "maxClauseCount is set to 1024; shorten the query"
    )


@pytest.mark.slow
def test_the_command_line_reports_and_exits_as_documented(tiny_bm25: Any, tmp_path: Path) -> None:
    checked = rarx("index", "check", str(tiny_bm25.path))
    assert checked.returncode == 0, checked.stderr
    n = len(tiny_bm25.manifest.files)
    assert checked.stdout.splitlines() == [
        f"{tiny_bm25.path}: bm25 index, 8 documents",
        f"  checksums: {n} of {n} files match the build",
        "  lucene: lucene/: CheckIndex clean (1 segment(s))",
        "  derived, with their own manifests, not checked: matrix/",
        "  ok: opens and reads",
    ]
    assert one_line_error(rarx("index", "check", str(tmp_path))).endswith(
        "not a rarx index (no rarx_index.json); build one with 'rarx index'"
    )
    damaged = copy(tiny_bm25, tmp_path / "damaged")
    spoil(damaged / "lucene" / "_0.fdt")
    checked = rarx("index", "check", str(damaged))
    assert "  DAMAGED lucene/_0.fdt: checksum differs from the build's" in checked.stdout
    line = one_line_error(checked)
    assert line == (
        f"rarx: error: index {damaged} is damaged: lucene/_0.fdt: checksum differs from the "
        f"build's (bytes changed); rebuild it with 'rarx index --index {damaged} --overwrite' "
        "from its corpus"
    )
    for engine in ("matrix", "lucene"):  # hits shown with their text: the block is read
        assert one_line_error(rarx("search", "--index", str(damaged), "--query", "lava",
                                   "--search-engine", engine)) == line  # fmt: skip
    topics = tmp_path / "q.tsv"
    topics.write_text("a\tvolcano lava\nb\tphotosynthesis glucose\n")
    shown = rarx("search", "--index", str(damaged), "--topics", str(topics), "--format",
                 "jsonl", "-o", str(tmp_path / "run.jsonl"))  # fmt: skip
    assert one_line_error(shown) == line and not (tmp_path / "run.jsonl").exists()
    # A TREC run shows no text: the score matrix answers it without stored fields.
    runs = [tmp_path / "damaged.trec", tmp_path / "intact.trec"]
    for index, run in zip((damaged, tiny_bm25.path), runs, strict=True):
        done = rarx("search", "--index", str(index), "--topics", str(topics), "-o", str(run))
        assert done.returncode == 0, done.stderr
    assert runs[0].read_text() == runs[1].read_text() and "d4" in runs[0].read_text()
    old = unrecorded(copy(tiny_bm25, tmp_path / "old"))
    checked = rarx("index", "check", str(old), "--no-lucene")
    assert checked.returncode == 0, checked.stderr
    assert "checksums: cannot verify" in checked.stdout and "lucene:" not in checked.stdout


# -- the build lock ------------------------------------------------------------------------

HELD_BUILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from rarx.index.registry import build_index
    from rarx.types import Document

    target, go, kind = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

    def docs():
        yield Document("first-1", "the first build")
        print("building", flush=True)  # inside the build: the lock is held
        while not go.exists():
            time.sleep(0.02)
        yield Document("first-2", "the first build, again")

    build_index(kind, docs(), target, overwrite=True, quiet=True)
""")


@pytest.fixture
def held_build(tmp_path: Path) -> Iterator[Any]:
    """Start a real build process of a target that waits, holding its lock, until told."""
    started: list[subprocess.Popen] = []

    def start(target: Path, kind: str = "bm25") -> tuple[subprocess.Popen, Path]:
        go = tmp_path / f"go-{len(started)}"
        proc = subprocess.Popen([sys.executable, "-c", HELD_BUILD, str(target), str(go), kind],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "building\n"
        return proc, go

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.slow
def test_two_builds_of_one_path_the_second_fails_and_never_replaces(
    held_build: Any, tmp_path: Path
) -> None:
    target = tmp_path / "indexes" / "same"
    first, go = held_build(target)
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "second", "contents": "second build"}])
    second = rarx("index", "--corpus", str(corpus), "--index", str(target), "--quiet")
    line = one_line_error(second)
    assert line.startswith(f"rarx: error: {target} is being written by another process "
                           f"(pid {first.pid}, since ")  # fmt: skip
    assert line.endswith("wait for it to finish, or write a rarx index to another path")
    go.touch()
    assert first.wait(timeout=60) == 0
    built = LuceneIndex.load(target)
    assert built.manifest.documents == 2 and built.doc("second") is None
    assert built.doc("first-2") is not None
    again = rarx("index", "--corpus", str(corpus), "--index", str(target), "--quiet")
    assert one_line_error(again).endswith("already exists; pass --overwrite to replace it")
    assert leftovers(target) == []  # no lock file, no temporary directory


def test_an_index_that_appears_during_a_build_is_never_replaced(
    tiny_bm25: Any, tmp_path: Path
) -> None:
    target = tmp_path / "idx"

    def docs() -> Iterator[Document]:
        yield DOCS[0]
        shutil.copytree(tiny_bm25.path, target)  # written by something that takes no lock
        yield DOCS[1]

    with pytest.raises(IndexExistsError, match="already exists"):
        LuceneIndex.build(docs(), target, quiet=True)
    assert Manifest.read(target) == tiny_bm25.manifest
    assert leftovers(target) == []


def test_the_lock_is_exclusive_within_a_process_too(tmp_path: Path) -> None:
    with exclusive_lock(tmp_path / "x", "an index"):
        with pytest.raises(LockedError, match=rf"\(pid {os.getpid()}, since "):
            with exclusive_lock(tmp_path / "x"):
                pass
    with exclusive_lock(tmp_path / "x"):  # released, and its file gone
        pass
    assert list(tmp_path.iterdir()) == []


# -- builds killed with kill -9 ---------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("kind", ["bm25", pytest.param("dense", marks=pytest.mark.slow)])
def test_a_killed_build_leaves_the_old_index_and_the_next_build_cleans_up(
    held_build: Any, tiny_bm25: Any, tmp_path: Path, kind: str
) -> None:
    target = copy(tiny_bm25, tmp_path / "idx")
    killed, _ = held_build(target, kind)  # a dense build: its encoder loaded, encoding
    (building,) = target.parent.glob(f".idx.building-{killed.pid}-*")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert building.is_dir()  # left behind; the old index is intact
    assert load_index(target).search(LAVA, 1)[0].docids == ["d4"]
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (target.parent / f".idx.building-{live.pid}-0123abcd").mkdir()  # a live build's
        LuceneIndex.build(DOCS[:2], target, overwrite=True, quiet=True)
        assert leftovers(target) == [f".idx.building-{live.pid}-0123abcd"]
    finally:
        live.kill()
        live.wait()
    assert load_index(target).manifest.documents == 2


def test_an_index_a_killed_build_moved_aside_is_put_back(tiny_bm25: Any, tmp_path: Path) -> None:
    target = tmp_path / "idx"
    shutil.copytree(tiny_bm25.path, tmp_path / f".idx.old-{_dead_pid()}-89abcdef")
    with pytest.raises(IndexExistsError, match="already exists"):  # it is back: not replaced
        LuceneIndex.build(DOCS[:2], target, quiet=True)
    assert Manifest.read(target) == tiny_bm25.manifest and leftovers(target) == []


# -- dense, splade and qa-memory ------------------------------------------------------------


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Any:
    from rarx.index.dense import DenseIndex

    path = tmp_path_factory.mktemp("integrity") / "dense"
    return DenseIndex.build(DOCS, path, encoder=minilm, quiet=True)


@pytest.mark.parametrize("name", ["docstore.parquet", "faiss.index", "embeddings.f32"])
def test_a_truncated_dense_file_is_named_with_and_without_a_record(
    dense: Any, tmp_path: Path, name: str
) -> None:
    path = copy(dense, tmp_path / "idx")
    truncate(path / name)
    with pytest.raises(IndexCorruptError, match=rf"is damaged: {name}: [\d,]+ bytes, built as"):
        load_index(path)
    unrecorded(path)  # an older index: its reader fails, named the same way
    want = {"docstore.parquet": "ArrowInvalid", "faiss.index": "RuntimeError",
            "embeddings.f32": r"4 rows, not 8"}[name]  # fmt: skip
    with pytest.raises(IndexCorruptError, match=want) as caught:
        load_index(path)
    assert name in str(caught.value) and "--overwrite" in str(caught.value)


def test_rarx_search_on_a_truncated_docstore_is_one_line(dense: Any, tmp_path: Path) -> None:
    path = unrecorded(copy(dense, tmp_path / "idx"))
    truncate(path / "docstore.parquet")
    line = one_line_error(rarx("search", "--index", str(path), "--query", "lava"))
    assert line.startswith(f"rarx: error: index {path} is damaged: docstore.parquet: "
                           "unreadable (ArrowInvalid: ")  # fmt: skip
    assert line.endswith(f"rebuild it with 'rarx index --index {path} --overwrite' from its corpus")


@pytest.mark.parametrize("name", ["docstore.parquet", "faiss.index", "embeddings.f32"])
def test_changed_dense_bytes_are_found_by_check(dense: Any, tmp_path: Path, name: str) -> None:
    path = copy(dense, tmp_path / "idx")
    spoil(path / name)
    report = check_index(path)
    assert report.problems[0].file == name and report.problems[0].what == (
        "checksum differs from the build's (bytes changed)"
    )
    assert report.lucene == [] and not report.opened  # a damaged index is not opened


@pytest.mark.slow
def test_splade_lucene_and_docstore_damage_is_named(tmp_path: Path) -> None:
    from rarx.index.impact import ImpactIndex

    built = ImpactIndex.build(DOCS, tmp_path / "splade", model="splade-tiny", device="cpu",
                              quiet=True)  # fmt: skip
    path = copy(built, tmp_path / "idx")
    truncate(path / "docstore.parquet")
    with pytest.raises(IndexCorruptError, match=r"is damaged: docstore\.parquet: [\d,]+ bytes"):
        load_index(path)
    path = copy(built, tmp_path / "idx2")
    spoil(path / "lucene" / "_0.fdt")  # the stored ids
    with pytest.raises(IndexCorruptError, match=r"lucene/_0\.fdt: checksum differs"):
        load_index(path).search(LAVA, 3)
    assert [p.file for p in check_index(path).problems] == ["lucene/_0.fdt"]


@pytest.mark.slow
def test_qa_memory_answers_and_nested_dense_files_are_covered(tmp_path: Path) -> None:
    from rarx.index.qa_memory import QAMemoryIndex, QAPair, write_calibration

    pairs = [QAPair(f"p{i}", f"what is thing {i}?", f"answer {i}") for i in range(4)]
    built = QAMemoryIndex.build(pairs, tmp_path / "qa", quiet=True)
    files = built.manifest.files
    assert {"answers.jsonl", "dense/docstore.parquet", "dense/rarx_index.json"} <= set(files)
    write_calibration(built.path, {"threshold": 0.5, "rerank_model": None})
    assert Manifest.read(built.path).files == files  # the record outlives the rewrite
    path = copy(built, tmp_path / "idx")
    truncate(path / "answers.jsonl")
    with pytest.raises(IndexCorruptError, match=r"is damaged: answers\.jsonl: [\d,]+ bytes"):
        load_index(path)
    unrecorded(path)  # cut at a line's end, each line still reads: the count tells
    with pytest.raises(IndexCorruptError, match=r"answers\.jsonl: 2 pairs, not 4") as caught:
        load_index(path)
    assert f"'rarx index --index {path} --overwrite'" in str(caught.value)
    (path / "answers.jsonl").write_text('{"id": "p0", "question": "what')
    with pytest.raises(IndexCorruptError, match=r"answers\.jsonl: unreadable \(.*JSON"):
        load_index(path)
    path = copy(built, tmp_path / "idx2")
    spoil(path / "answers.jsonl")
    assert [p.file for p in check_index(path).problems] == ["answers.jsonl"]
    shutil.copy(built.path / "answers.jsonl", path / "answers.jsonl")
    truncate(path / "dense" / "faiss.index")  # named from the qa-memory index, the one to rebuild
    with pytest.raises(IndexCorruptError) as caught:
        load_index(path)
    assert str(caught.value).startswith(f"index {path} is damaged: dense/faiss.index: ")
    assert f"'rarx index --index {path} --overwrite'" in str(caught.value)


# -- serve and pipelines ---------------------------------------------------------------------


def test_serve_refuses_a_damaged_index_at_start(
    tiny_bm25: Any, tmp_path: Path
) -> None:
    from rarx.serve import ServeConfig, create_app

    truncated = copy(tiny_bm25, tmp_path / "truncated")
    truncate(truncated / "lucene" / "_0.fdt")
    with pytest.raises(IndexCorruptError, match=r"lucene/_0\.fdt: [\d,]+ bytes, built as"):
        create_app(ServeConfig(indexes={"x": truncated}, api_key=None))


@pytest.mark.parametrize("engine", ["matrix", "lucene"])
def test_serve_answers_500_naming_a_file_damaged_after_it_started(
    tiny_bm25: Any, tmp_path: Path, engine: str
) -> None:
    import asyncio

    import httpx

    from rarx.serve import ServeConfig, create_app

    spoiled = copy(tiny_bm25, tmp_path / "spoiled")
    app = create_app(ServeConfig(indexes={"x": spoiled}, api_key=None, search_engine=engine))

    async def ask() -> list[httpx.Response]:
        await app.state.rarx.start()
        assert app.state.rarx.indexes["x"].inner.settings["engine"] == engine
        spoil(spoiled / "lucene" / "_0.fdt")  # after it loaded: found by the first search
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rarx") as client:
            return [await client.post("/v1/search", json={"index": "x", "query": q, "k": 1})
                    for q in ("lava", "photosynthesis")]  # fmt: skip

    damaged, intact = asyncio.run(ask())
    assert damaged.status_code == 500  # serve's hits carry their text: d4's block is read
    assert damaged.json()["detail"] == (
        f"index {spoiled} is damaged: lucene/_0.fdt: checksum differs from the build's (bytes "
        f"changed); rebuild it with 'rarx index --index {spoiled} --overwrite' from its corpus"
    )
    assert intact.status_code == 200  # d1's block is intact
    (hit,) = intact.json()["rankings"][0]["hits"]
    assert (hit["docid"], hit["title"], hit["text"]) == ("d1", DOCS[0].title, DOCS[0].text)


def test_a_pipeline_over_a_damaged_index_is_one_line(tiny_bm25: Any, tmp_path: Path) -> None:
    path = copy(tiny_bm25, tmp_path / "idx")
    truncate(path / "lucene" / "_0_Lucene99_0.doc")
    spec = tmp_path / "p.yaml"
    spec.write_text(f"name: p\nstages:\n  - retrieve: {{index: {json.dumps(str(path))}, k: 3}}\n")
    topics = tmp_path / "q.tsv"
    topics.write_text("a\tvolcano lava\n")
    result = rarx("run", str(spec), "--topics", str(topics), "-o", str(tmp_path / "out"))
    assert "lucene/_0_Lucene99_0.doc" in one_line_error(result)
