"""The registry of index kinds: capabilities instead of kind names, typed build and load
options, the CLI's choices, and wrong kinds as IndexFormatError."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rarx.errors import ConfigError, IndexFormatError
from rarx.index.base import Capability, Manifest, load_index
from rarx.index.registry import (
    IndexKind,
    build_option_specs,
    has_capability,
    index_kind,
    kinds,
    kinds_with,
    search,
)
from rarx.types import Query

HEAVY = ("torch", "transformers", "sentence_transformers", "faiss", "jnius", "pyserini")


def test_the_kinds_and_what_they_can_do() -> None:
    assert list(kinds()) == ["bm25", "dense", "splade", "qa-memory"]
    assert kinds_with(Capability.RANKED_SEARCH) == ("bm25", "dense", "splade")
    assert kinds_with("instructions") == ("dense", "qa-memory")
    assert kinds_with("vectors", "ranked_search") == ("dense",)
    assert kinds_with("qa_pairs") == ("qa-memory",)
    assert kinds_with("documents") == ("bm25", "dense", "splade", "qa-memory")
    assert kinds_with("threads") == ("bm25", "splade")
    assert index_kind("bm25").has("threads") and not index_kind("bm25").has("instructions")
    with pytest.raises(ValueError, match="'ranked'"):
        kinds_with("ranked")
    with pytest.raises(IndexFormatError, match="unknown index kind 'colbert'.*bm25, dense"):
        index_kind("colbert")


def test_a_kind_imports_only_its_module_and_listing_imports_nothing_heavy() -> None:
    code = (
        "import sys\nfrom rarx.index.registry import index_kind, kinds\n"
        "assert index_kind('bm25').name == 'bm25' and 'rarx.index.dense' not in sys.modules\n"
        f"assert len(kinds()) == 4\nheavy = set({HEAVY!r}) & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["bm25", "dense", "splade", "qa-memory"])
def test_typed_parameters_are_the_keywords_of_build_and_load(name: str) -> None:
    kind = index_kind(name)
    assert kind.cls.kind == name
    for params, method in ((kind.build_params, kind.cls.build), (kind.load_options, kind.cls.load)):
        if params is None:
            continue
        signature = inspect.signature(method).parameters
        for f in dataclasses.fields(params):
            assert f.name in signature, f"{name}: {f.name} is not a keyword of {method}"
            assert signature[f.name].default == f.default, f"{name}: default of {f.name}"


def test_build_parameters_check_themselves() -> None:
    with pytest.raises(ConfigError, match="unknown build option.*faiss.*takes k1, b"):
        index_kind("bm25").make_build_params({"faiss": "hnsw"})
    with pytest.raises(ConfigError, match="unknown faiss index kind 'lsh'"):
        index_kind("dense").make_build_params({"faiss": "lsh"})
    assert index_kind("dense").make_build_params({"faiss": "hnsw"}).faiss == "hnsw"


def _manifest_dir(root: Path, kind: str) -> Path:
    root.mkdir()
    Manifest(kind=kind, documents=1, corpus_checksum="sha256:0").write(root)
    return root


def test_a_wrong_kind_is_an_index_format_error(tmp_path: Path) -> None:
    from rarx.index.dense import DenseIndex
    from rarx.index.lucene import LuceneIndex
    from rarx.index.qa_memory import QAMemoryIndex

    dense = _manifest_dir(tmp_path / "dense", "dense")
    bm25 = _manifest_dir(tmp_path / "bm25", "bm25")
    with pytest.raises(IndexFormatError, match="is a 'dense' index, not 'bm25'"):
        LuceneIndex.load(dense)
    with pytest.raises(IndexFormatError, match="is a 'dense' index, not 'qa-memory'"):
        QAMemoryIndex.load(dense)
    with pytest.raises(IndexFormatError, match="is a 'bm25' index, not 'dense'"):
        DenseIndex.load(bm25)
    with pytest.raises(IndexFormatError, match="unknown index kind 'colbert'"):
        load_index(_manifest_dir(tmp_path / "colbert", "colbert"))


def test_load_options_go_only_to_a_kind_that_takes_them(tmp_path: Path) -> None:
    memory = _manifest_dir(tmp_path / "memory", "qa-memory")
    with pytest.raises(ConfigError, match=r"qa-memory index\): takes no load options, got rm3; "
                       "those apply to bm25"):  # fmt: skip
        load_index(memory, rm3=True)
    dense = _manifest_dir(tmp_path / "dense", "dense")
    with pytest.raises(ConfigError, match="unknown load option.*rm3.*takes device, nprobe"):
        load_index(dense, rm3=True)


def test_bm25_load_options_and_search_capabilities(tiny_bm25: Any) -> None:
    assert has_capability(tiny_bm25, "threads") and not has_capability(tiny_bm25, "qa_pairs")
    assert not has_capability(object(), "documents")  # no registered kind
    expanded = load_index(tiny_bm25.path, rm3=True, k1=1.2)
    assert expanded.settings["rm3"] and expanded.settings["k1"] == 1.2
    queries = [Query("a", "volcano lava"), Query("b", "genetic helix")]
    plain = search(tiny_bm25, queries, 3, threads=2)
    assert [r.hits[0].docid for r in plain] == ["d4", "d8"]
    with pytest.raises(ConfigError, match="'instructions' capability.*'bm25' indexes match"):
        search(tiny_bm25, queries, 3, instruction="Retrieve the passage.")


def test_the_retrieve_stage_refuses_an_instruction_for_bm25(tiny_bm25: Any) -> None:
    from rarx.stages.retrieve import RetrieveStage
    from rarx.types import QueryState

    stage = RetrieveStage(tiny_bm25, k=2, instruction="Retrieve the passage.")
    with pytest.raises(ConfigError, match="'instructions' capability"):
        stage.run([QueryState(Query("a", "volcano lava"))])


def test_cli_kind_choices_and_options_come_from_the_registry(tmp_path: Path) -> None:
    from rarx.cli.index import index
    from rarx.cli.main import cli

    options = {p.name: p for p in index.params}
    assert list(options["kind"].type.choices) == list(kinds())
    assert {s.name for s in build_option_specs()} <= set(options)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "contents": "x"}\n')
    args = ["index", "--corpus", str(corpus), "--index", str(tmp_path / "i"), "--kind", "bm25"]
    wrong = "--faiss, --batch-size: not an option of --kind bm25; its build options are --k1, "
    with pytest.raises(ConfigError, match=wrong + "--b, --threads, --memory-buffer-mb"):
        cli.main([*args, "--faiss", "hnsw", "--batch-size", "8"], standalone_mode=False)
    with pytest.raises(ConfigError, match="--dedupe applies to document corpora"):
        cli.main([*args[:-1], "qa-memory", "--dedupe"], standalone_mode=False)
    assert not (tmp_path / "i").exists()


def test_one_option_name_means_one_type() -> None:
    @dataclasses.dataclass(frozen=True)
    class Other:
        k1: int = 3

    class OtherIndex:
        kind = "other"

    other = IndexKind(OtherIndex, "", Other, frozenset())
    with pytest.raises(ConfigError, match="'k1' is <class 'float'> for bm25 but <class 'int'>"):
        build_option_specs([index_kind("bm25"), other])


NEW_KIND = '''
"""A kind added from outside rarx: one module that declares KIND and registers it."""
import json
from dataclasses import dataclass
from typing import ClassVar

from rarx.index.base import ChecksumStream, Manifest, staged_build
from rarx.index.registry import IndexKind, param, register


@dataclass(frozen=True)
class CountParams:
    min_length: int = param(1, "Shortest word counted.")


class CountIndex:
    kind: ClassVar[str] = "count"

    def __init__(self, path, manifest):
        self.path, self.manifest = path, manifest

    @classmethod
    def build(cls, docs, path, *, overwrite=False, quiet=False, min_length=1):
        stream = ChecksumStream(docs)
        with staged_build(path, overwrite) as tmp:
            words = {d.docid: len([w for w in d.text.split() if len(w) >= min_length])
                     for d in stream}
            (tmp / "words.json").write_text(json.dumps(words))
            Manifest(kind=cls.kind, documents=stream.count, corpus_checksum=stream.checksum,
                     params={"min_length": min_length}).write(tmp)
        return cls.load(path)

    @classmethod
    def load(cls, path):
        return cls(path, Manifest.read(path, expect=cls.kind))


KIND = register(IndexKind(CountIndex, "words per document", CountParams, {"documents"}))
'''


def test_a_new_kind_is_one_module_and_its_registration(tmp_path: Path) -> None:
    (tmp_path / "count_index.py").write_text(NEW_KIND)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "contents": "an ox ate grass"}\n')
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import count_index
        from rarx.cli.main import main
        from rarx.index.registry import kinds_with
        assert kinds_with("documents")[-1] == "count"
        main(["index", "--kind", "count", "--min-length", "3", "--corpus", {str(corpus)!r},
              "--index", {str(tmp_path / "idx")!r}])
        print(open({str(tmp_path / "idx" / "words.json")!r}).read())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '{"a": 2}'  # "ate" and "grass"
    assert "indexed 1 documents" in out.stderr and "(count)" in out.stderr


def test_library_status_lines_are_log_records_silenced_by_quiet(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from rarx.cli.main import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "contents": "lava"}\n{"id": "b", "contents": "helix"}\n')
    main(["index", "--corpus", str(corpus), "--index", str(tmp_path / "loud")])
    loud = capfd.readouterr()
    assert "indexing 2 documents with Lucene (1 threads)..." in loud.err and loud.out == ""
    main(["index", "--corpus", str(corpus), "--index", str(tmp_path / "quiet"), "--quiet"])
    assert capfd.readouterr() == ("", "")
