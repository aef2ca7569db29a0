"""The pipeline layer: YAML checks before anything loads, run semantics, failure
isolation, threads, and the CLI. Real Lucene and MiniLM on tiny data; no LLM here."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from rarx.errors import ConfigError
from rarx.pipeline import Pipeline, Resources, load_spec, parse_spec
from rarx.stages.common import run_active
from rarx.types import Query, QueryState
from tests.conftest import TINY_DOCS, write_jsonl

# -- validation: every bad input names the file, the stage, the key, what is accepted --

BAD = [
    ({"stages": [{"retriev": {"index": "x"}}]}, ["stage 1", "'retriev'", "accepted stages:",
                                                   "qa_memory, rerank, retrieve"]),
    ({"stages": [{"retrieve": {"index": "x", "kk": 3}}]},
     ["stage 1 (retrieve)", "unknown parameter 'kk'", "accepted: index, k, instruction"]),
    ({"stages": [{"retrieve": {"k": 3}}]},
     ["stage 1 (retrieve)", "missing required parameter 'index'"]),
    ({"stages": [{"retrieve": {"index": "x", "k": "ten"}}]},
     ["stage 1 (retrieve)", "parameter 'k'", "expected int", "found str 'ten'"]),
    ({"stages": [{"retrieve": {"index": "x", "k": True}}]}, ["parameter 'k'", "expected int"]),
    ({"stages": [{"retrieve": {"index": "x"}}, {"gate": {"mode": "sometimes"}}]},
     ["stage 2 (gate)", "parameter 'mode'", "'adapt-llm'", "'popularity'", "found 'sometimes'"]),
    ({"stages": [{"gate": {"mode": "threshold"}}]},
     ["stage 1 (gate)", "needs parameter 'threshold'"]),
    ({"stages": [{"rerank": {"k": 10}}]},
     ["stage 1 (rerank) needs 'ranking'", "no earlier stage provides", "arr, fuse, retrieve"]),
    ({"stages": [{"generate": {"top_docs": 3}}]},
     ["stage 1 (generate) needs 'ranking'", "top_docs: 0"]),
    ({"stages": [{"fuse": {"retrieve": [{"index": "a"}, {"idx": "b"}]}}]},
     ["stage 1 (fuse)", "parameter 'retrieve'[1]", "unknown parameter 'idx'"]),
    ({"stages": [{"fuse": {"retrieve": [{"index": "a"}]}}]}, ["at least two"]),
    ({"stages": [{"retrieve": {"index": "x"}, "generate": {}}]}, ["one key"]),
    ({"stages": [{"retrieve": ["x"]}]}, ["stage 1 (retrieve)", "must be a mapping"]),
    ({"stages": []}, ["non-empty list"]),
    ({"stages": [{"retrieve": {"index": "x"}}], "stagse": 1}, ["unknown key 'stagse'"]),
    (["retrieve"], ["a mapping with keys"]),
    ({"stages": [{"generate": {"top_docs": 0, "llm": 3}}]}, ["parameter 'llm'", "expected str"]),
]  # fmt: skip


@pytest.mark.parametrize(("data", "fragments"), BAD)
def test_bad_pipelines_are_named_errors(data: Any, fragments: list[str], tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_good_spec_has_typed_params() -> None:
    spec = parse_spec({
        "name": "x",
        "stages": [
            {"fuse": {"retrieve": [{"index": "a", "k": 50}, {"index": "b"}], "k": 5}},
            {"rerank": {"method": "listwise", "llm": {"model": "m", "backend": "openai"}}},
            "generate",
            {"gate": {"mode": "popularity", "threshold": 1000}},
        ],
    })  # fmt: skip
    fuse = spec.stages[0].params
    assert [r.index for r in fuse.retrieve] == ["a", "b"] and fuse.retrieve[0].k == 50
    assert spec.stages[1].params.llm == {"model": "m", "backend": "openai"}
    assert spec.stages[2].params.top_docs == 3  # defaults
    assert spec.stages[3].params.threshold == 1000.0 and isinstance(
        spec.stages[3].params.threshold, float
    )


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("stages: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(path)


def test_missing_index_fails_before_loading(tmp_path: Path) -> None:
    resources = Resources()
    data = {"stages": [{"retrieve": {"index": str(tmp_path / "nope")}}]}
    with pytest.raises(ConfigError, match="no index there.*rarx index"):
        Pipeline.from_dict(data, resources=resources)
    assert len(resources) == 0


def test_wrong_index_kind_is_named(tiny_bm25: Any) -> None:
    data = {"stages": [{"qa_memory": {"index": str(tiny_bm25.path)}}]}
    with pytest.raises(ConfigError, match="a 'bm25' index; this stage takes qa-memory"):
        Pipeline.from_dict(data)


# -- running ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dense(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("faiss")
    from rarx.index.dense import DenseIndex
    from rarx.io.corpus import Corpus

    root = tmp_path_factory.mktemp("dense")
    rows = [{"_id": d["id"], "title": d["title"], "text": d["text"]} for d in TINY_DOCS]
    corpus = write_jsonl(root / "corpus.jsonl", rows)
    return DenseIndex.build(Corpus(corpus), root / "index", quiet=True)


def test_retrieve_pipeline_matches_the_index(tiny_bm25: Any, resources: Resources) -> None:
    pipe = Pipeline.from_dict({"stages": [{"retrieve": {"index": str(tiny_bm25.path), "k": 3}}]},
                              resources=resources)  # fmt: skip
    assert pipe.run([]) == []
    queries = [Query("a", "volcano lava"), Query("b", "genetic information helix")]
    states = pipe.run(queries)
    direct = tiny_bm25.search(queries, 3)
    assert [s.ranking.docids for s in states] == [r.docids for r in direct]
    assert states[0].ranking.docids[0] == "d4" and states[0].ranking.hits[0].doc is not None
    assert states[0].trace[0].stage == "retrieve" and states[0].trace[0].event == "retrieved"
    # strings get ids by position; a single string is refused (it would run per character)
    assert [s.query.qid for s in pipe.run(["volcano", "gravity"])] == ["q1", "q2"]
    with pytest.raises(ConfigError, match="list of queries"):
        pipe.run("volcano")  # type: ignore[arg-type]


def test_inputs_are_never_mutated(tiny_bm25: Any, resources: Resources) -> None:
    pipe = Pipeline.from_dict({"stages": [{"retrieve": {"index": str(tiny_bm25.path)}}]},
                              resources=resources)  # fmt: skip
    state = QueryState(Query("a", "volcano"), context={"keep": 1})
    before = (state.ranking, dict(state.context), state.trace)
    (out,) = pipe.run([state])
    assert (state.ranking, dict(state.context), state.trace) == before
    assert out is not state and out.ranking is not None and out.context["keep"] == 1


@pytest.mark.slow
def test_hybrid_fuses_bm25_and_dense(tiny_bm25: Any, tiny_dense: Any, resources: Resources) -> None:
    from rarx.index.fusion import rrf

    pipe = Pipeline.from_dict({"stages": [{"fuse": {"k": 4, "retrieve": [
        {"index": str(tiny_bm25.path), "k": 8}, {"index": str(tiny_dense.path), "k": 8}]}}]},
        resources=resources)  # fmt: skip
    queries = [Query("a", "why do volcanoes erupt"), Query("b", "what makes ATP in cells")]
    states = pipe.run(queries)
    expected = rrf([tiny_bm25.search(queries, 8), tiny_dense.search(queries, 8)], k=4)
    assert [s.ranking.docids for s in states] == [r.docids for r in expected]
    assert states[1].ranking.docids[0] == "d2"
    # the same index path is loaded once, whichever stage names it
    before = len(resources)
    Pipeline.from_dict({"stages": [{"retrieve": {"index": str(tiny_dense.path)}}]},
                       resources=resources)  # fmt: skip
    assert len(resources) == before


class _Flaky:
    """Fails for queries whose text contains 'boom'."""

    name: ClassVar[str] = "flaky"
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset({"seen"})

    def run(self, batch: Sequence[QueryState]) -> list[QueryState]:
        return run_active(self.name, batch, self._run)

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        if any("boom" in s.query.text for s in batch):
            raise ValueError("cannot handle boom")
        return [s.with_context(seen=True) for s in batch]


def test_one_failing_query_does_not_sink_the_batch(tiny_bm25: Any, resources: Resources) -> None:
    retrieve = Pipeline.from_dict({"stages": [{"retrieve": {"index": str(tiny_bm25.path)}}]},
                                  resources=resources).stages[0]  # fmt: skip
    pipe = Pipeline([_Flaky(), retrieve])
    states = pipe.run(["volcano", "boom", "gravity"])
    assert [s.context.get("seen") for s in states] == [True, None, True]
    assert "cannot handle boom" in states[1].context["error"]
    assert states[1].trace[0].event == "error" and states[1].trace[1].event == "skipped"
    assert states[1].ranking is None and states[0].ranking is not None
    with pytest.raises(ValueError, match="boom"):
        Pipeline([_Flaky(), retrieve], strict=True).run(["volcano", "boom"])


def test_popularity_gate_skips_retrieval_and_flags_bad_queries(
    tiny_bm25: Any, resources: Resources
) -> None:
    pipe = Pipeline.from_dict({"stages": [
        {"gate": {"mode": "popularity", "threshold": 100, "field": "pop"}},
        {"retrieve": {"index": str(tiny_bm25.path)}},
    ]}, resources=resources)  # fmt: skip
    rare, famous, unknown = (Query("r", "volcano", {"pop": 3}),
                             Query("f", "gravity", {"pop": 5000}), Query("u", "dna"))  # fmt: skip
    r, f, u = pipe.run([rare, famous, unknown])
    assert r.context["retrieve"] is True and r.ranking is not None
    assert f.context["retrieve"] is False and f.ranking is None
    assert f.trace[-1].event == "skipped" and "no retrieval" in f.trace[-1].data["reason"]
    assert "no numeric 'pop'" in u.context["error"] and u.ranking is None
    # always / never need no model
    never = Pipeline.from_dict({"stages": [{"gate": {"mode": "never"}},
                                           {"retrieve": {"index": str(tiny_bm25.path)}}]},
                               resources=resources)  # fmt: skip
    assert never.run(["volcano"])[0].ranking is None


@pytest.mark.slow
def test_run_is_thread_safe(tiny_bm25: Any, tiny_dense: Any, resources: Resources) -> None:
    pipe = Pipeline.from_dict({"stages": [{"fuse": {"k": 5, "retrieve": [
        {"index": str(tiny_bm25.path)}, {"index": str(tiny_dense.path)}]}}]},
        resources=resources)  # fmt: skip
    texts = [d["text"] for d in TINY_DOCS]
    expected = [s.ranking.docids for s in pipe.run(texts)]
    results: dict[int, list[list[str]]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                results[i] = [s.ranking.docids for s in pipe.run(texts[i % 3 :] + texts[: i % 3])]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, got in results.items():
        assert got == expected[i % 3 :] + expected[: i % 3]


# -- CLI -------------------------------------------------------------------------------


def _rarx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rarx.cli.main", *args],
                          capture_output=True, text=True)  # fmt: skip


def test_validate_loads_no_model_and_no_torch(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("stages:\n  - gate: {mode: adapt-llm}\n  - retrieve: {index: nowhere}\n"
                    "  - rerank: {k: 20}\n  - generate: {top_docs: 2}\n")  # fmt: skip
    code = (
        "import sys\nfrom rarx.cli.main import main\n"
        f"main(['pipeline', 'validate', '--no-index-check', {str(good)!r}])\n"
        "heavy = {'torch', 'transformers', 'jnius', 'faiss'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout and "gate → retrieve → rerank → generate" in out.stdout
    # with the index check, the missing index is the error
    checked = _rarx("pipeline", "validate", str(good))
    assert checked.returncode == 1 and "stage 2 (retrieve)" in checked.stderr
    assert "no index there" in checked.stderr and len(checked.stderr.strip().splitlines()) == 1


def test_cli_run_writes_jsonl_and_explains(tiny_bm25: Any, tmp_path: Path) -> None:
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"stages:\n  - retrieve: {{index: {tiny_bm25.path}, k: 2}}\n")
    topics = tmp_path / "q.tsv"
    topics.write_text("a\tvolcano lava\nb\tgenetic information helix\n")
    out = tmp_path / "run.jsonl"
    done = _rarx("run", str(pipe), "--topics", str(topics), "-o", str(out), "--explain")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["qid"] for r in rows] == ["a", "b"]
    # the written ranking is the index's own: same ids, order and BM25 scores
    (direct,) = tiny_bm25.search([Query("a", "volcano lava")], k=2)
    assert [(h["rank"], h["docid"]) for h in rows[0]["ranking"]] == [
        (i, d) for i, d in enumerate(direct.docids, 1)
    ]
    assert direct.docids[0] == "d4"
    assert [h["score"] for h in rows[0]["ranking"]] == pytest.approx(
        [h.score for h in direct.hits], rel=1e-6
    )
    assert rows[1]["ranking"][0]["docid"] == "d8" and rows[0]["trace"][0]["stage"] == "retrieve"
    assert "# a: volcano lava" in done.stdout and "retrieve   retrieved" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - retrieve: {index: x, k: many}\n")
    failed = _rarx("run", str(bad), "--query", "volcano")
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"rarx: error: {bad}: stage 1 (retrieve): parameter 'k'")
    both = _rarx("run", str(pipe))
    assert both.returncode == 1 and "--query" in both.stderr


def test_examples_validate() -> None:
    root = Path(__file__).resolve().parents[1] / "pipelines"
    files = sorted(root.glob("*.yaml"))
    names = {f.stem for f in files}
    assert {"bm25", "dense", "hybrid", "bm25-first", "adaptive-rag", "qa-memory-rag",
            "demos-fewshot", "arr"} <= names  # fmt: skip
    for f in files:
        spec = load_spec(f)
        assert spec.name == f.stem
        assert f.read_text().startswith("# Run from the repository root")


def test_library_export_is_lazy() -> None:
    code = (
        "import sys, rarx\nassert 'rarx.pipeline' not in sys.modules\n"
        "from rarx import Pipeline\nassert Pipeline.__module__ == 'rarx.pipeline.pipeline'\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_a_pipeline_is_a_stage(tiny_bm25: Any, resources: Resources) -> None:
    from rarx.stages.base import Stage

    inner = Pipeline.from_dict({"stages": [{"retrieve": {"index": str(tiny_bm25.path)}}]},
                               resources=resources)  # fmt: skip
    outer = Pipeline([_Flaky(), inner])
    assert isinstance(inner, Stage) and "ranking" in inner.provides
    states = outer.run(["volcano", "boom"])
    assert states[0].ranking.docids == inner.run(["volcano"])[0].ranking.docids
    assert states[1].context["error"] and states[1].ranking is None
