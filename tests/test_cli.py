"""The command line, run as users run it: a subprocess, exit codes, one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_jsonl


def rarx(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rarx.cli.main", *args], capture_output=True, text=True, cwd=cwd
    )


def test_help_lists_commands_without_importing_torch():
    code = (
        "import sys\nfrom rarx.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for command in ("index", "search", "models"):
        assert f"  {command} " in out.stdout


@pytest.mark.slow
def test_index_then_search(tmp_path: Path, tiny_corpus: Path):
    index = tmp_path / "indexes" / "tiny"
    built = rarx("index", "--corpus", str(tiny_corpus), "--index", str(index), "--kind", "bm25")
    assert built.returncode == 0, built.stderr
    assert "indexed 8 documents" in built.stderr
    assert "indexing 8 documents with Lucene" in built.stderr and built.stdout == ""

    table = rarx("search", "--index", str(index), "--query", "volcano lava", "--k", "2")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["rank", "docid", "score", "text"]
    assert set(lines[1]) == {"-", " "}  # the rule under the header
    assert lines[2].split()[:2] == ["1", "d4"] and "Volcanoes" in lines[2]
    # A BM25 search goes through a pipeline of stages and still loads no torch.
    code = (
        "import sys\nfrom rarx.cli.main import main\n"
        f"try:\n    main(['search', '--index', {str(index)!r}, '--query', 'lava'])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert light.returncode == 0 and "d4" in light.stdout, light.stderr

    topics = tmp_path / "q.tsv"
    topics.write_text("a\tvolcano lava\nb\tgenetic information helix\n")
    run = tmp_path / "run.trec"
    searched = rarx(
        "search", "--index", str(index), "--topics", str(topics), "-o", str(run), "--k", "3"
    )
    assert searched.returncode == 0, searched.stderr
    rows = [line.split() for line in run.read_text().splitlines()]
    assert rows[0][:4] == ["a", "Q0", "d4", "1"] and rows[0][5] == "rarx"
    assert [r[2] for r in rows if r[0] == "b"][0] == "d8"

    again = rarx("index", "--corpus", str(tiny_corpus), "--index", str(index))
    assert again.returncode == 1 and "--overwrite" in again.stderr


@pytest.mark.slow
def test_errors_are_one_line_and_nonzero(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "contents": "x"}\n{"id": "b", "contents"\n')
    r = rarx("index", "--corpus", str(bad), "--index", str(tmp_path / "idx"), "--quiet")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"rarx: error: {bad}:2: malformed JSON (Expecting ':' delimiter)"
    ]
    assert not (tmp_path / "idx").exists()

    dup = write_jsonl(
        tmp_path / "dup.jsonl", [{"id": "a", "contents": "x"}, {"id": "a", "contents": "y"}]
    )
    r = rarx("index", "--corpus", str(dup), "--index", str(tmp_path / "idx"), "--quiet")
    assert r.returncode == 1 and "duplicate document id 'a'" in r.stderr
    r = rarx("index", "--corpus", str(dup), "--index", str(tmp_path / "idx"), "--dedupe")
    assert r.returncode == 0 and "dropped 1 documents" in r.stderr

    r = rarx("search", "--index", str(tmp_path), "--query", "x")
    assert r.returncode == 1
    assert (
        r.stderr.strip() == f"rarx: error: {tmp_path}: not a rarx index (no rarx_index.json); "
        "build one with 'rarx index'"
    )

    r = rarx("search", "--index", str(tmp_path / "idx"))
    assert r.returncode == 2 and "exactly one of --query TEXT or --topics FILE" in r.stderr


@pytest.mark.slow
def test_search_with_first_reranking(tmp_path: Path, tiny_bm25):
    out = rarx(
        "search",
        "--index",
        str(tiny_bm25.path),
        "--query",
        "water sun earth cells",
        "--k",
        "3",
        "--rerank",
        "first",
        "--rerank-k",
        "4",
        "--rerank-instruction",
        "Find the passage about the sun.",
        "--format",
        "jsonl",
    )
    assert out.returncode == 0, out.stderr
    import json

    (row,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(row["hits"]) == 3 and all(h["text"] for h in row["hits"])
    # FIRST orders the BM25 top 4 (one window) by the first-token logprobs of their
    # identifiers after "[" (SmolLM2 splits "[" from them), computed here directly with
    # the same model on the prompt that opens with the task instruction.
    from rarx.llm.transformers_backend import TransformersLLM
    from rarx.rerank import LISTWISE
    from rarx.rerank.base import passage_text
    from rarx.types import Query

    query = "water sun earth cells"
    (bm25,) = tiny_bm25.search([Query("q1", query)], k=4, with_docs=True)
    llm = TransformersLLM("smollm2-135m", device="cpu")
    ids = LISTWISE.ids(len(bm25.hits))
    prompt = LISTWISE.build(query, [passage_text(h, None) for h in bm25.hits],
                            instruction="Find the passage about the sun.")  # fmt: skip
    (logprobs,) = llm.next_token_logprobs([prompt], ids)
    by_logprob = sorted(range(len(ids)), key=lambda i: -logprobs[ids[i]])
    expected = [bm25.docids[i] for i in by_logprob][:3]
    assert expected != bm25.docids[:3]  # the model's order is not BM25's: a real reorder
    assert [h["docid"] for h in row["hits"]] == expected
