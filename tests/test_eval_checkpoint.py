"""The adaptive evaluation's checkpoint: measurements kept per question as they are
made, a stopped run resumed without measuring anything twice, other settings refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from rarx.errors import ConfigError
from rarx.eval.checkpoint import Checkpoint


def test_a_stopped_measurement_resumes_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    asked: list[list[int]] = []

    def answers(idx: list[int]) -> list[str]:
        asked.append(list(idx))
        if len(asked) == 2:
            raise KeyboardInterrupt  # stopped during the second chunk
        return [f"answer {i}" for i in idx]

    with pytest.raises(KeyboardInterrupt):
        Checkpoint(path, {"gate_llm": "g"}, chunk=2).measure("NR", ["q1", "q2", "q3"], answers)
    asked.clear()
    values, _ = Checkpoint(path, {"gate_llm": "g"}, chunk=2).measure(
        "NR", ["q1", "q2", "q3", "q4"], answers
    )
    assert asked == [[2, 3]]  # only the questions the first run did not finish
    assert values == ["answer 0", "answer 1", "answer 2", "answer 3"]


def test_a_checkpoint_of_other_settings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    Checkpoint(path, {"gate_llm": "g", "top_docs": 1}, chunk=8).measure(
        "NR", ["q1"], lambda idx: ["x" for _ in idx]
    )
    with pytest.raises(ConfigError, match="top_docs differ"):
        Checkpoint(path, {"gate_llm": "g", "top_docs": 3}, chunk=8)
