"""The Stage protocol, and what a stage builder may ask for (:class:`Resources`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rarx.types import QueryState

if TYPE_CHECKING:
    from rarx.index.base import Index
    from rarx.llm import LLM, LLMRef


@runtime_checkable
class Stage(Protocol):
    """``run([]) == []``; inputs are never mutated (QueryState is frozen); one output
    state per input state, in order. ``needs``/``provides`` name context keys (and
    ``RANKING``) so a pipeline can be checked before it runs."""

    @property
    def name(self) -> str: ...

    @property
    def needs(self) -> frozenset[str]: ...

    @property
    def provides(self) -> frozenset[str]: ...

    def run(self, batch: Sequence[QueryState]) -> list[QueryState]: ...


class Resources(Protocol):
    """Loaded models and indexes, shared between the stages of a pipeline (the pipeline
    layer implements it; stages only see this protocol)."""

    def llm(self, ref: LLMRef) -> LLM: ...

    def cross_encoder(self, name: str) -> Any: ...  # a sentence-transformers CrossEncoder

    def index(self, path: str | Path) -> Index: ...
