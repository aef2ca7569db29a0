"""``load_llm``: an LLM from an explicit backend name, never guessed from a model name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rarx.errors import ConfigError
from rarx.llm.base import LLM

BACKENDS = ("transformers", "ctranslate2", "openai")

# An LLM as a pipeline or a stage names it: "smollm2-135m", "openai:gpt-4o-mini", or
# {model: ..., backend: ..., device: ..., batch_size: ...} (ctranslate2 adds
# compute_type: int8 | int8_float32 | float32 | float16 | int8_float16 ...).
LLMChoice = str | Mapping[str, Any]
# ... or a preference list of those: the first installed one is used
# (:mod:`rarx.llm.preference`), e.g. [ctranslate2:qwen2.5-coder-1.5b, ctranslate2:smollm2-135m].
LLMRef = LLMChoice | tuple[LLMChoice, ...]


def llm_name(ref: LLMRef) -> str:
    """The model name an :data:`LLMRef` names (for labels and cache keys); a preference
    list's names joined with ``|`` (resolve it with :func:`rarx.llm.preference.choose_llm`
    to name the one that runs)."""
    if isinstance(ref, tuple | list):
        return "|".join(llm_name(r) for r in ref)
    return ref if isinstance(ref, str) else str(ref.get("model", "?"))


@dataclass(frozen=True)
class LLMSpec:
    """Which backend, which model, and the backend's own options (``base_url``,
    ``device``, ``batch_size``, ...)."""

    model: str
    backend: str = "transformers"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"unknown LLM backend {self.backend!r}; expected one of {', '.join(BACKENDS)}"
            )
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @classmethod
    def parse(cls, text: str, **options: Any) -> LLMSpec:
        """``"smollm2-135m"`` (transformers) or ``"BACKEND:MODEL"`` with BACKEND one of
        :data:`BACKENDS`, e.g. ``"openai:gpt-4o-mini"`` or ``"ctranslate2:qwen2.5-coder-1.5b"``.
        Only an exact backend name before the first colon counts, so a path with a colon
        stays a model name."""
        head, sep, rest = text.partition(":")
        if sep and head in BACKENDS and rest:
            return cls(rest, head, options)
        return cls(text, "transformers", options)


def load_llm(spec: LLMSpec | str | Mapping[str, Any], **options: Any) -> LLM:
    """Load an LLM. ``spec`` is an :class:`LLMSpec`, a string for :meth:`LLMSpec.parse`,
    or a mapping ``{"model": ..., "backend": ..., **options}`` (as in pipeline YAML)."""
    if isinstance(spec, str):
        spec = LLMSpec.parse(spec, **options)
    elif isinstance(spec, Mapping):
        params = dict(spec)
        if "model" not in params:
            raise ConfigError(f"an LLM spec needs 'model', got keys {sorted(params)}")
        spec = LLMSpec(params.pop("model"), params.pop("backend", "transformers"),
                       {**params, **options})  # fmt: skip
    elif options:
        spec = LLMSpec(spec.model, spec.backend, {**spec.options, **options})
    if spec.backend == "transformers":
        from rarx.llm.transformers_backend import TransformersLLM

        return TransformersLLM(spec.model, **spec.options)
    if spec.backend == "ctranslate2":
        from rarx.llm.ctranslate2_backend import CTranslate2LLM

        return CTranslate2LLM(spec.model, **spec.options)
    from rarx.llm.openai_backend import OpenAILLM

    return OpenAILLM(spec.model, **spec.options)
