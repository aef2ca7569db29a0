"""LLM preference lists: the first LLM installed here runs, a fallback says so in one
line, and one explicitly named LLM never falls back."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from rarx.errors import ModelNotFoundError
from rarx.llm import choose_llm
from rarx.models.registry import MODELS
from rarx.pipeline import Pipeline, Resources
from rarx.pipeline.output import explain
from rarx.pipeline.spec import load_spec
from rarx.types import Query

QWEN = "qwen2.5-coder-1.5b"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A rarx cache with nothing installed in it (qwen's weights live in the cache)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RARX_CACHE", str(cache))
    return cache


def test_a_packaged_model_counts_only_where_its_weights_are(empty_cache: Path) -> None:
    prefs = [f"ctranslate2:{QWEN}", "ctranslate2:smollm2-135m"]
    chosen, why, fell_back = choose_llm(prefs)
    assert chosen == "ctranslate2:smollm2-135m" and fell_back
    assert "falling back to ctranslate2:smollm2-135m" in why
    assert f"rarx models install {QWEN}" in why  # names what is missing and the fix
    # The joined GGUF where `rarx models install` puts it makes qwen the choice (nothing loads).
    split = MODELS[QWEN].split
    assert split is not None
    split.path().parent.mkdir(parents=True)
    split.path().write_bytes(b"")
    chosen, why, fell_back = choose_llm(prefs)
    assert chosen == f"ctranslate2:{QWEN}" and not fell_back
    assert "first choice" in why


def test_no_installed_llm_is_an_error_naming_each(empty_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        choose_llm([QWEN, str(tmp_path / "no-such-model")])
    assert f"{QWEN} is not installed" in str(err.value)
    assert "no-such-model: no such path" in str(err.value)


def test_one_named_llm_never_falls_back(empty_cache: Path) -> None:
    pipe = {"stages": [{"generate": {"llm": QWEN, "top_docs": 0}}]}
    with pytest.raises(ModelNotFoundError, match=f"rarx models install {QWEN}"):
        Pipeline.from_dict(pipe, resources=Resources())


@pytest.mark.slow
def test_a_pipeline_runs_the_installed_fallback_and_logs_it_once(
    resources: Resources, smol: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    prefs = [QWEN, "smollm2-135m"]
    pipe = {"stages": [{"gate": {"mode": "adapt-llm", "llm": prefs}},
                       {"generate": {"llm": prefs, "top_docs": 0}}]}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="rarx"):
        with monkeypatch.context() as m:
            m.setenv("RARX_CACHE", str(tmp_path / "cache"))  # qwen not installed
            resources.choose(prefs)  # the choice is made once per list, as loading does
        pipeline = Pipeline.from_dict(pipe, resources=resources)  # two stages, one choice
    choices = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert len(choices) == 1 and choices[0].levelno == logging.WARNING
    (state,) = pipeline.run([Query("q1", "What gas do plants take in for photosynthesis?")])
    models = {e.data["call"]["model"] for e in state.trace if "call" in e.data}
    assert models == {"smollm2-135m"}
    # SmolLM2 does not write <RET>: the gate answers closed-book, and --explain says so.
    assert "answered from: the model's own memory (gate; the gate decided not to retrieve)" \
        in explain(state)  # fmt: skip


def test_shipped_pipelines_fall_back_to_the_packaged_model(
    empty_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a fresh clone (qwen not installed, no trained gate under models/) every LLM
    the shipped pipelines name resolves to the packaged SmolLM2, so `make demo` runs."""
    monkeypatch.chdir(tmp_path)  # their paths are relative to where rarx runs
    seen = 0
    for path in sorted((ROOT / "pipelines").glob("*.yaml")):
        for stage in load_spec(path).stages:
            for name in ("llm", "draft_llm", "revise_llm"):
                ref = getattr(stage.params, name, None)
                if not isinstance(ref, tuple):
                    continue
                seen += 1
                chosen, _, _ = choose_llm(ref)
                assert chosen == "ctranslate2:smollm2-135m", (path.name, stage.where)
    assert seen >= 6


def test_validate_says_which_llm_each_list_resolves_to(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "p.yaml"
    path.write_text(f"stages:\n  - generate: {{llm: [{QWEN}, smollm2-135m], top_docs: 0}}\n")
    env = {**os.environ, "RARX_CACHE": str(tmp_path / "cache")}  # qwen not installed
    out = subprocess.run([sys.executable, "-m", "rarx.cli.main", "pipeline", "validate", str(path)],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"stage 1 (generate) llm: LLM: falling back to smollm2-135m (choice 2 of [{QWEN}, " \
        "smollm2-135m]): qwen2.5-coder-1.5b is not installed" in out.stdout  # fmt: skip
