"""Models and indexes a pipeline names, loaded once and shared between its stages.

Two stages that name the same LLM (with the same settings) or the same index path get
the same object. Each loaded object is wrapped so that its calls run one at a time:
torch models and the JVM behind Lucene are not safe to call from several threads at
once, and a pipeline must be (``Pipeline.run`` from a web server's worker threads).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rarx.pipeline.params import LLMRef


class Serialized:
    """A proxy whose method calls hold one lock; attributes pass through unchanged."""

    def __init__(self, target: Any):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_lock", threading.RLock())

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value
        lock = self._lock

        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return value(*args, **kwargs)

        return call

    def __len__(self) -> int:
        return len(self._target)


def _key(kind: str, name: str, settings: Mapping[str, Any]) -> str:
    return json.dumps([kind, name, dict(settings)], sort_keys=True, default=str)


def llm_name(ref: LLMRef) -> str:
    return ref if isinstance(ref, str) else str(ref.get("model", "?"))


class Resources:
    """A cache of loaded LLMs and indexes keyed by name and settings. One may be shared
    by several pipelines (tests do, so SmolLM2 loads once)."""

    def __init__(self, llm_options: Mapping[str, Any] | None = None):
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.llm_options = dict(llm_options or {})  # e.g. {"device": "cpu"} for all LLMs

    def _get(self, key: str, load: Callable[[], Any]) -> Any:
        with self._lock:  # loading under the lock: two stages never load the same thing
            if key not in self._items:
                self._items[key] = Serialized(load())
            return self._items[key]

    def llm(self, ref: LLMRef) -> Any:
        from rarx.llm import load_llm

        if isinstance(ref, str):
            spec: str | dict[str, Any] = ref
            settings: dict[str, Any] = dict(self.llm_options)
        else:
            spec = {**self.llm_options, **ref}
            settings = spec
        return self._get(
            _key("llm", llm_name(ref), settings),
            lambda: load_llm(spec, **self.llm_options) if isinstance(spec, str) else load_llm(spec),
        )

    def index(self, path: str | Path) -> Any:
        from rarx.index.base import load_index

        resolved = str(Path(path).resolve())
        return self._get(_key("index", resolved, {}), lambda: load_index(path))

    def __len__(self) -> int:
        return len(self._items)

    def loaded(self) -> list[str]:
        return sorted(self._items)
