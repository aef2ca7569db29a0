"""An LLM preference list: the first of several LLMs whose weights are on this machine.

A pipeline that names ``llm: [ctranslate2:qwen2.5-coder-1.5b, ctranslate2:smollm2-135m]``
runs the 1.5B model where it is installed and the packaged SmolLM2 elsewhere. The check
loads nothing: a packaged model counts when its weights are found where ``rarx models
install`` puts them, a path when it exists, and a ``ctranslate2:`` entry also needs the
ctranslate2 package. A Hugging Face hub name and an ``openai:`` model cannot be checked
without loading or calling them, so they count as available (put them last, or name a
local path with ``./``). One explicit LLM (not a list) is loaded as named and never
replaced: a missing one is an error.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError, ModelNotFoundError
from rarx.llm.factory import LLMSpec


def _spec(ref: str | Mapping[str, Any]) -> tuple[str, str]:
    """(backend, model) of one LLM reference, without loading it."""
    if isinstance(ref, str):
        spec = LLMSpec.parse(ref)
        return spec.backend, spec.model
    if "model" not in ref:
        raise ConfigError(f"an LLM spec needs 'model', got keys {sorted(ref)}")
    return str(ref.get("backend", "transformers")), str(ref["model"])


def describe(ref: str | Mapping[str, Any]) -> str:
    """``BACKEND:MODEL`` (or the model alone for transformers), as a pipeline writes it."""
    backend, model = _spec(ref)
    return model if backend == "transformers" else f"{backend}:{model}"


def unavailable(ref: str | Mapping[str, Any]) -> str | None:
    """Why ``ref`` cannot load here (with the fix), or None when it can be tried."""
    from rarx.models.registry import MODELS

    backend, model = _spec(ref)
    if backend == "openai":
        return None
    if backend == "ctranslate2" and importlib.util.find_spec("ctranslate2") is None:
        return "the ctranslate2 package is not installed (pip install 'rarx[ctranslate2]')"
    if model in MODELS:
        spec = MODELS[model]
        return None if spec.locate() is not None else f"not installed ({spec.install})"
    if Path(os.path.expanduser(model)).exists():
        return None
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        return "no such path"
    return None  # a hub name: the loader fetches it (or finds it in the hub's cache)


def choose_llm(
    refs: Sequence[str | Mapping[str, Any]],
) -> tuple[str | Mapping[str, Any], str, bool]:
    """The first LLM of ``refs`` that can load here, a one-line account of the choice,
    and whether an earlier (preferred) one was passed over."""
    if not refs:
        raise ConfigError("an LLM preference list needs at least one LLM")
    names = [describe(r) for r in refs]
    listed = "[" + ", ".join(names) + "]"
    skipped: list[str] = []
    for i, ref in enumerate(refs):
        why = unavailable(ref)
        if why is None:
            if not skipped:
                return ref, f"LLM: {names[i]} (first choice of {listed}; installed here)", False
            return ref, (f"LLM: falling back to {names[i]} (choice {i + 1} of {listed}): "
                         f"{'; '.join(skipped)}"), True  # fmt: skip
        skipped.append(f"{names[i]} is {why}" if why.startswith("not") else f"{names[i]}: {why}")
    raise ModelNotFoundError(f"none of the LLMs {listed} can load here: {'; '.join(skipped)}")
