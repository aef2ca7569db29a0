"""``rarx eval qa``: a pipeline's answers scored against gold answers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rarx.eval.qa_run import score_states
from rarx.types import Hit, Query, QueryState, Ranking
from tests.conftest import write_jsonl


def test_score_states_counts_em_f1_and_retrieval():
    states = [
        QueryState(Query("a", "q?")).with_context(answer="The Water"),
        QueryState(Query("b", "q?"), Ranking("b", (Hit("d", 1.0),))).with_context(answer="red sun"),
        QueryState(Query("c", "q?")).with_context(error="generate: boom"),
    ]
    result = score_states(states, [["water"], ["the red giant sun"], ["x"]])
    assert [r["em"] for r in result.per_query] == [1.0, 0.0, 0.0]
    assert result.per_query[1]["f1"] == pytest.approx(2 * (1.0 * 2 / 3) / (1.0 + 2 / 3))
    assert result.aggregate["retrieval_rate"] == pytest.approx(1 / 3)
    assert result.aggregate["errors"] == 1.0


def _bank(path: Path, questions: list[str]) -> Path:
    """A qa-memory index's manifest and stored pairs: all the overlap check reads."""
    path.mkdir()
    (path / "rarx_index.json").write_text(json.dumps({"kind": "qa-memory"}))
    write_jsonl(path / "answers.jsonl", [{"id": f"m{i}", "question": q, "answer": "x"}
                                         for i, q in enumerate(questions)])  # fmt: skip
    return path


def test_memory_overlap_counts_evaluated_questions_by_normalised_text(tmp_path: Path):
    from rarx.errors import RarxError
    from rarx.eval.qa_run import check_memory_overlap, memory_overlap
    from rarx.pipeline import parse_spec

    memory = _bank(tmp_path / "mem", ["What is the chemical formula of WATER", "Who?"])
    demos = _bank(tmp_path / "demos", ["Which planet is largest?"])
    spec = parse_spec({"stages": [
        {"demos": {"index": str(demos)}},
        {"qa_memory": {"index": str(memory)}},
        {"retrieve": {"index": str(tmp_path / "not-built-yet")}},
        {"generate": {"top_docs": 1}},
    ]})  # fmt: skip
    queries = [Query("q1", "What is the chemical formula of water?"),
               Query("q2", "what is the chemical formula of the water"),
               Query("q3", "Which gas do plants need?")]  # fmt: skip
    (overlap,) = memory_overlap(spec, queries)  # the bank holds none of them
    assert (overlap.stage, overlap.found, overlap.questions, overlap.stored) == (
        "stage 2 (qa_memory)", 2, 3, 2)  # fmt: skip
    with pytest.raises(RarxError, match=r"stage 2 \(qa_memory\): .*mem holds 2 of the 3 "):
        check_memory_overlap(spec, queries)
    assert check_memory_overlap(spec, queries, allow=True) == [overlap]
    assert check_memory_overlap(spec, queries[2:]) == []


def rarx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rarx.cli.main", *args], capture_output=True,
                          text=True)  # fmt: skip


@pytest.mark.slow
def test_eval_qa_with_a_memory_pipeline(tmp_path: Path):
    data = tmp_path / "qa"
    (data / "qrels").mkdir(parents=True)
    write_jsonl(data / "corpus.jsonl", [{"_id": "d1", "title": "", "text": "Water is H2O."}])
    questions = [
        {"_id": "q1", "text": "What is the chemical formula of water?", "answers": ["H2O"]},
        {"_id": "q2", "text": "What colour is the sky on a clear day?", "answers": ["blue"]},
        {"_id": "q3", "text": "Who wrote the play Hamlet?", "answers": ["Shakespeare"]},
    ]
    write_jsonl(data / "queries.jsonl", questions)
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"question": "What is the chemical formula of water?", "answer": "H2O"},
        {"question": "What colour is the sky on a clear day?", "answer": "grey"},
    ])  # fmt: skip
    built = rarx("index", "--kind", "qa-memory", "--corpus", str(pairs), "--index",
                 str(tmp_path / "mem"), "--quiet")  # fmt: skip
    assert built.returncode == 0, built.stderr
    pipeline = tmp_path / "memory.yaml"
    pipeline.write_text(f"name: memory\nstages:\n  - qa_memory: {{index: {tmp_path / 'mem'}, "
                        "threshold: 0.95}\n")  # fmt: skip
    # The memory holds two of the three evaluated questions: refused, saying so.
    refused = rarx("eval", "qa", "--dataset", str(data), "--pipeline", str(pipeline), "--quiet")
    assert refused.returncode == 1 and "holds 2 of the 3 evaluated questions" in refused.stderr
    assert "--allow-memory-overlap" in refused.stderr
    out = rarx("eval", "qa", "--dataset", str(data), "--pipeline", str(pipeline), "--json",
               "--quiet", "-o", str(tmp_path / "answers.jsonl"),
               "--allow-memory-overlap")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "warning: stage 1 (qa_memory)" in out.stderr and "upper bound" in out.stderr
    result = json.loads(out.stdout)
    assert [o["found"] for o in result["system"]["memory_overlap"]] == [2]
    figures = result["figures"]
    # q1 answered right from memory, q2 answered wrong from memory, q3 not in memory.
    assert figures["EM"] == pytest.approx(1 / 3) and figures["retrieval_rate"] == 0.0
    rows = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert [(r["qid"], r["answer"]) for r in rows] == [("q1", "H2O"), ("q2", "grey"), ("q3", "")]

    (data / "queries.jsonl").write_text('{"_id": "q1", "text": "no answers here"}\n')
    bad = rarx("eval", "qa", "--dataset", str(data), "--pipeline", str(pipeline), "--quiet",
               "--allow-memory-overlap")  # fmt: skip
    assert bad.returncode == 1 and "has no 'answers' list" in bad.stderr
