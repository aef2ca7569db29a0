"""The Stage protocol: a batch of QueryStates in, a new batch out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

from rarx.types import QueryState


@runtime_checkable
class Stage(Protocol):
    """``run([]) == []``; inputs are never mutated (QueryState is frozen); one output
    state per input state, in order. ``needs``/``provides`` name context keys (and
    ``"ranking"``) so a pipeline can be validated before anything loads."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    provides: ClassVar[frozenset[str]]

    def run(self, batch: Sequence[QueryState]) -> list[QueryState]: ...
