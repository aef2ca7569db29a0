"""The index kinds: each kind's module declares one ``KIND = IndexKind(...)`` (its class,
typed build parameters, load options and capabilities) and is listed once in
``KIND_MODULES``. A kind's module is imported when that kind is asked for (opening a
BM25 index imports no dense code); listing every kind imports them all, and kind modules
keep torch, faiss and the JVM behind function calls, so even that imports none of them.

Callers ask for capabilities, never for kind names: ``kinds_with(Capability.RANKED_SEARCH)``
for what a stage accepts, :func:`search` for a search that passes an instruction or
threads only to a kind that takes them.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError, IndexFormatError
from rarx.index.base import Capability, Index
from rarx.types import Query, Ranking

# One line per kind: its name and the module that defines its KIND.
KIND_MODULES = {
    "bm25": "rarx.index.lucene",
    "dense": "rarx.index.dense",
    "splade": "rarx.index.impact",
    "qa-memory": "rarx.index.qa_memory",
}


def param(default: Any, help: str) -> Any:
    """A build or load parameter: its default and the help text the CLI shows."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class IndexKind:
    """A kind: its class (named by ``cls.kind``), what it is, its typed build parameters
    and load options, and its capabilities (names of :class:`Capability` members)."""

    cls: Any  # an Index class; cls.build(source, path, *, overwrite, quiet, **build params)
    summary: str
    build_params: Any  # a frozen dataclass whose fields are keywords of cls.build
    capabilities: AbstractSet[str]  # Capability values; kept as a frozenset of Capability
    load_options: Any = None  # a frozen dataclass of keywords of cls.load, if it has any
    reads_corpus: bool = True  # False: build reads its own file format from a path
    unit: str = "documents"  # what one indexed item is, for messages
    corpus_help: str = ""  # what --corpus is when not a document corpus

    def __post_init__(self) -> None:
        object.__setattr__(self, "capabilities", frozenset(map(Capability, self.capabilities)))

    @property
    def name(self) -> str:
        return str(self.cls.kind)

    def has(self, capability: Capability | str) -> bool:
        return Capability(capability) in self.capabilities

    def takes(self, option: str) -> bool:
        """Whether ``cls.load`` takes load option ``option``."""
        return self.load_options is not None and option in {
            f.name for f in dataclasses.fields(self.load_options)
        }

    def make_build_params(self, options: Mapping[str, Any]) -> Any:
        return _typed(self.build_params, options, f"an index of kind {self.name!r}", "build")

    def load_kwargs(self, options: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Checked keywords for ``cls.load``; an option the kind does not take is an error."""
        if not options:
            return {}
        if self.load_options is None:
            raise ConfigError(
                f"{where}: takes no load options, got {', '.join(sorted(options))}; "
                f"those apply to {' or '.join(_kinds_with_load_option(options)) or 'no kind'}"
            )
        _typed(self.load_options, options, where, "load")
        return dict(options)


def _typed(cls: type, options: Mapping[str, Any], where: str, what: str) -> Any:
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigError(
            f"{where}: unknown {what} option(s) {', '.join(unknown)}; it takes {', '.join(names)}"
        )
    return cls(**options)


_KINDS: dict[str, IndexKind] = {}  # the kinds imported or registered so far


def register(kind: IndexKind) -> IndexKind:
    """Add a kind from outside rarx (rarx's own are found through KIND_MODULES)."""
    known = _find(kind.name)
    if known is not None and known.cls is not kind.cls:
        raise ConfigError(f"index kind {kind.name!r} is already registered by {known.cls}")
    _KINDS[kind.name] = kind
    return kind


def _find(name: str) -> IndexKind | None:
    if name not in _KINDS and name in KIND_MODULES:
        kind = importlib.import_module(KIND_MODULES[name]).KIND
        if kind.name != name:
            raise ConfigError(f"{KIND_MODULES[name]}.KIND is {kind.name!r}, listed as {name!r}")
        _KINDS[name] = kind
    return _KINDS.get(name)


def kinds() -> dict[str, IndexKind]:
    """Every kind by name: rarx's own in KIND_MODULES order, then registered ones."""
    names = [*KIND_MODULES, *(n for n in _KINDS if n not in KIND_MODULES)]
    return {n: k for n in names if (k := _find(n)) is not None}


def kinds_with(*capabilities: Capability | str) -> tuple[str, ...]:
    """Names of the kinds that have all ``capabilities``, e.g. ``kinds_with("ranked_search")``."""
    wanted = {Capability(c) for c in capabilities}
    return tuple(name for name, k in kinds().items() if wanted <= k.capabilities)


def index_kind(name: str) -> IndexKind:
    kind = _find(name)
    if kind is None:
        known = sorted({*KIND_MODULES, *_KINDS})
        raise IndexFormatError(
            f"unknown index kind {name!r} (known: {', '.join(known)}); a newer rarx, or a "
            "kind registered by a package not imported here, may have written it"
        )
    return kind


def has_capability(index: Any, capability: Capability | str) -> bool:
    """Whether an opened index (or a wrapper that passes ``kind`` on) has ``capability``;
    False for an object of no registered kind."""
    name = getattr(index, "kind", None)
    kind = _find(name) if isinstance(name, str) else None
    return kind is not None and kind.has(capability)


def build_index(
    kind: str, source: Any, path: str | Path, params: Any = None, *, overwrite: bool = False,
    quiet: bool = False,
) -> Index:  # fmt: skip
    """Build an index of ``kind`` from ``source`` (documents, or the path the kind reads)
    with its typed build parameters (the kind's defaults when ``params`` is None)."""
    k = index_kind(kind)
    params = k.build_params() if params is None else params
    if not isinstance(params, k.build_params):
        raise ConfigError(
            f"index kind {kind!r} takes {k.build_params.__name__}, got {type(params).__name__}"
        )
    return k.cls.build(source, path, overwrite=overwrite, quiet=quiet, **dataclasses.asdict(params))


def search(
    index: Any, queries: Sequence[Query], k: int, *, instruction: str = "", threads: int = 1,
    with_docs: bool = False,
) -> list[Ranking]:  # fmt: skip
    """Search any kind: ``instruction`` needs the instructions capability (else a
    ConfigError naming the kind); ``threads`` is used where the kind can."""
    caps = index_kind(index.kind).capabilities
    kwargs: dict[str, Any] = {"with_docs": with_docs}
    if instruction:
        if Capability.INSTRUCTIONS not in caps:
            raise ConfigError(
                f"an instruction needs an index with the 'instructions' capability "
                f"({', '.join(kinds_with(Capability.INSTRUCTIONS))}); {index.kind!r} indexes "
                "match the words of the query, so the instruction would be searched for"
            )
        kwargs["instruction"] = instruction
    if threads > 1 and Capability.THREADS in caps:
        kwargs["threads"] = threads
    return list(index.search(queries, k, **kwargs))


# -- what the CLI shows ------------------------------------------------------------------


@dataclass(frozen=True)
class OptionSpec:
    """One build parameter across the kinds that take it (a command-line option)."""

    name: str
    type: Any
    help: str
    defaults: dict[str, Any]  # kind -> its default

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def build_option_specs(among: Iterable[IndexKind] | None = None) -> list[OptionSpec]:
    """The union of the kinds' build parameters; one name must mean one type everywhere."""
    specs: dict[str, OptionSpec] = {}
    for kind in among if among is not None else kinds().values():
        hints = typing.get_type_hints(kind.build_params)
        for f in dataclasses.fields(kind.build_params):
            spec = specs.setdefault(
                f.name, OptionSpec(f.name, hints[f.name], f.metadata.get("help", ""), {})
            )
            if spec.type != hints[f.name]:
                raise ConfigError(
                    f"build parameter {f.name!r} is {spec.type} for "
                    f"{', '.join(spec.defaults)} but {hints[f.name]} for {kind.name}"
                )
            spec.defaults[kind.name] = f.default
    return list(specs.values())


def _kinds_with_load_option(options: Mapping[str, Any]) -> list[str]:
    return [
        k.name
        for k in kinds().values()
        if k.load_options is not None
        and set(options) <= {f.name for f in dataclasses.fields(k.load_options)}
    ]
