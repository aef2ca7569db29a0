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
    out = rarx("eval", "qa", "--dataset", str(data), "--pipeline", str(pipeline), "--json",
               "--quiet", "-o", str(tmp_path / "answers.jsonl"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)["figures"]
    # q1 answered right from memory, q2 answered wrong from memory, q3 not in memory.
    assert figures["EM"] == pytest.approx(1 / 3) and figures["retrieval_rate"] == 0.0
    rows = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert [(r["qid"], r["answer"]) for r in rows] == [("q1", "H2O"), ("q2", "grey"), ("q3", "")]

    (data / "queries.jsonl").write_text('{"_id": "q1", "text": "no answers here"}\n')
    bad = rarx("eval", "qa", "--dataset", str(data), "--pipeline", str(pipeline), "--quiet")
    assert bad.returncode == 1 and "has no 'answers' list" in bad.stderr
