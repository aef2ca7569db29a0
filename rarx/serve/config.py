"""What a server exposes and how much load it takes, fixed at start-up.

Indexes and pipelines are named here, by the operator; a request names them by these
names only, so no request can make the server open a path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from rarx.errors import ConfigError
from rarx.index.matrix import ENGINES
from rarx.stages.rerank import RerankParams

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
API_KEY_ENV = "RARX_API_KEY"


@dataclass(frozen=True)
class Limits:
    """What one request may ask; past a limit the answer is 422 naming the field."""

    max_query_chars: int = 2000
    max_qid_chars: int = 128
    max_k: int = 1000
    max_queries: int = 64  # queries in one request
    max_indexes: int = 8  # indexes fused in one request
    max_body_bytes: int = 1_000_000  # past it: 413

    def __post_init__(self) -> None:
        small = {name: v for name, v in vars(self).items() if v < 1}
        if small:
            raise ConfigError(f"limits must be at least 1, got {small}")


def _env_api_key() -> str | None:
    return os.environ.get(API_KEY_ENV) or None


@dataclass(frozen=True)
class ServeConfig:
    indexes: Mapping[str, str | Path] = field(default_factory=dict)  # name -> index directory
    pipelines: Mapping[str, str | Path] = field(default_factory=dict)  # name -> pipeline file
    rerank: RerankParams | None = None  # what a search with "rerank": true applies
    fusion_depth: int = 1000  # hits taken from each index before fusing
    max_batch_size: int = 32  # queries merged into one call; 1 turns batching off
    max_wait_ms: float = 5.0  # how long a request waits for others to join its batch
    max_concurrency: int = 64  # requests being served at once
    max_queue: int = 128  # requests waiting for a slot; past it 503 + Retry-After
    timeout_s: float = 30.0  # a request not answered by then gets 503
    retry_after_s: int = 1
    # By default from RARX_API_KEY; None (or empty) serves without a key.
    api_key: str | None = field(default_factory=_env_api_key, repr=False)
    cors_origins: tuple[str, ...] = ()  # no CORS headers unless origins are given
    limits: Limits = field(default_factory=Limits)
    # BM25 and SPLADE indexes: "matrix" (the score matrix), "lucene", or "auto" (the
    # matrix where it is exact), as 'rarx search --search-engine'; other kinds ignore it.
    search_engine: str = "auto"

    def __post_init__(self) -> None:
        indexes = {str(k): Path(v) for k, v in self.indexes.items()}
        pipelines = {str(k): Path(v) for k, v in self.pipelines.items()}
        object.__setattr__(self, "indexes", MappingProxyType(indexes))
        object.__setattr__(self, "pipelines", MappingProxyType(pipelines))
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        object.__setattr__(self, "api_key", self.api_key or None)
        if not indexes and not pipelines:
            raise ConfigError("nothing to serve: name at least one index or pipeline")
        for what, names in (("index", indexes), ("pipeline", pipelines)):
            for name in names:
                if not NAME.match(name):
                    raise ConfigError(
                        f"{what} name {name!r} is not allowed; use 1-64 letters, digits, '.', "
                        "'_' or '-', starting with a letter or digit"
                    )
        numbers = {
            "fusion_depth": self.fusion_depth, "max_batch_size": self.max_batch_size,
            "max_concurrency": self.max_concurrency, "retry_after_s": self.retry_after_s,
        }  # fmt: skip
        small = {name: v for name, v in numbers.items() if v < 1}
        if small:
            raise ConfigError(f"these settings must be at least 1: {small}")
        if self.max_queue < 0 or self.max_wait_ms < 0 or self.timeout_s <= 0:
            raise ConfigError(
                f"need max_queue >= 0, max_wait_ms >= 0 and timeout_s > 0; got {self.max_queue}, "
                f"{self.max_wait_ms}, {self.timeout_s}"
            )
        if self.search_engine not in ENGINES:
            raise ConfigError(
                f"search_engine must be one of {', '.join(ENGINES)}, got {self.search_engine!r}"
            )

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1


def parse_named(values: tuple[str, ...] | list[str], what: str) -> dict[str, str]:
    """``NAME=PATH`` options as a mapping; a repeated name is an error."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--{what} takes NAME=PATH, got {value!r}")
        if name in out:
            raise ConfigError(f"--{what} name {name!r} is given twice")
        out[name] = path
    return out
