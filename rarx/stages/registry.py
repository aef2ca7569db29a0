"""Stage kinds: each stage module declares its kind once, on its class.

```python
@stage_kind("generate", GenerateParams, "a reader LLM writes the answer",
            needs=lambda p: {RANKING} if p.top_docs else (), provides={ANSWER})
class GenerateStage(KindStage[GenerateParams]):
    @classmethod
    def from_params(cls, params, resources): ...

    def _run(self, batch): ...  # the states the skip rules leave to it
```

The declaration carries the kind's name (as pipeline files use it), its frozen params
dataclass, what it needs from earlier stages and provides to later ones (fixed, or a
function of its params), the indexes it opens and what it needs of them, and the
builder. A stage instance reads its needs/provides from the same declaration, so the
two cannot drift. :func:`stage_kinds` imports every module of :mod:`rarx.stages`, so a
new kind is one new module. Importing this module loads no model.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from rarx.errors import ConfigError
from rarx.stages.base import Resources, Stage
from rarx.stages.common import run_active
from rarx.types import QueryState

P = TypeVar("P")
Keys = Iterable[str] | Callable[[Any], Iterable[str]]


@dataclass(frozen=True)
class IndexUse:
    """An index a stage opens (a path from its params) and the capability it needs of it
    (see :mod:`rarx.index.registry`), checked from the manifest before anything loads."""

    path: str
    capability: str


def index_param(capability: str) -> Callable[[Any], list[IndexUse]]:
    """``indexes=`` for a kind whose params name one index in ``index``."""
    return lambda p: [IndexUse(p.index, capability)]


@dataclass(frozen=True)
class StageKind(Generic[P]):
    name: str
    params: type[P]
    summary: str
    build: Callable[[P, Resources], Stage]
    needs_of: Callable[[P | None], frozenset[str]]
    provides_of: Callable[[P | None], frozenset[str]]
    indexes: Callable[[P], tuple[IndexUse, ...]]
    fixed_needs: bool  # needs do not depend on params (for "put X before it" hints)
    needs_hint: str = ""  # how else its needs can be met, e.g. "or set 'top_docs: 0'"


def _keys(keys: Keys) -> Callable[[Any], frozenset[str]]:
    if callable(keys):
        fn = keys
        return lambda p: frozenset(fn(p)) if p is not None else frozenset()
    fixed = frozenset(keys)
    return lambda p: fixed


class KindStage(Generic[P]):
    """Base of registered stage classes: ``name``, ``needs`` and ``provides`` come from
    the class's :class:`StageKind` and the instance's ``params``. ``run`` applies the
    skip rules (:func:`run_active`) and hands the rest of the batch to ``_run``."""

    kind: ClassVar[StageKind[Any]]
    name: ClassVar[str]
    retrieval: ClassVar[bool] = False  # a retrieval stage also skips on the gate's "no"
    params: P | None = None

    def run(self, batch: Sequence[QueryState]) -> list[QueryState]:
        return run_active(self.name, batch, self._run, retrieval=self.retrieval)

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        raise NotImplementedError(f"{type(self).__name__} must define _run")

    @property
    def needs(self) -> frozenset[str]:
        return self.kind.needs_of(self.params)

    @property
    def provides(self) -> frozenset[str]:
        return self.kind.provides_of(self.params)


_KINDS: dict[str, StageKind[Any]] = {}
_discovered = False
_C = TypeVar("_C")


def stage_kind(
    name: str,
    params: type[P],
    summary: str,
    *,
    needs: Keys = (),
    provides: Keys = (),
    indexes: Callable[[P], Iterable[IndexUse]] | None = None,
    needs_hint: str = "",
) -> Callable[[_C], _C]:
    """Register the decorated class (which has ``from_params(params, resources)``) as
    the stage kind ``name``."""

    def register(decorated: _C) -> _C:
        cls: Any = decorated
        if name in _KINDS and _KINDS[name].build.__qualname__ != cls.from_params.__qualname__:
            raise ValueError(f"stage kind {name!r} is registered twice")
        kind: StageKind[Any] = StageKind(
            name=name,
            params=params,
            summary=summary,
            build=cls.from_params,
            needs_of=_keys(needs),
            provides_of=_keys(provides),
            indexes=(lambda p: tuple(indexes(p))) if indexes else (lambda p: ()),
            fixed_needs=not callable(needs),
            needs_hint=needs_hint,
        )
        cls.kind = kind
        cls.name = name
        _KINDS[name] = kind
        return decorated

    return register


def stage_kinds() -> dict[str, StageKind[Any]]:
    """Every registered stage kind, by name (the modules of :mod:`rarx.stages` are
    imported on the first call to register theirs)."""
    global _discovered
    if not _discovered:
        import rarx.stages

        for module in pkgutil.iter_modules(rarx.stages.__path__):
            importlib.import_module(f"rarx.stages.{module.name}")
        _discovered = True
    return dict(sorted(_KINDS.items()))


def get_stage_kind(name: str, where: str) -> StageKind[Any]:
    kinds = stage_kinds()
    if name not in kinds:
        raise ConfigError(f"{where}: unknown stage {name!r}; accepted stages: {', '.join(kinds)}")
    return kinds[name]
