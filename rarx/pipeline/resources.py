"""Models and indexes a pipeline names, loaded once and shared between its stages,
under an explicit concurrency policy.

Two stages that name the same LLM (with the same settings) or the same index path get
the same object. How that object is shared by the threads that call a pipeline (a web
server's workers) is a :class:`ConcurrencyPolicy`:

- :class:`Serial` (the default): each model and index runs one call at a time. torch
  models on a CPU and the JVM behind Lucene gain nothing from concurrent calls, and
  some are not safe under them.
- :class:`Shared`: objects are used as they are, for backends that are safe to call
  concurrently (an OpenAI-compatible server) or that batch concurrent calls themselves.

A service that merges concurrent requests into batches supplies its own policy.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rarx.index.base import Index, Manifest
from rarx.llm import LLM, LLMChoice, LLMOutput, LLMRef, Prompt, llm_name
from rarx.types import Document, Query, Ranking

T = TypeVar("T")
log = logging.getLogger(__name__)


class ConcurrencyPolicy(Protocol):
    def llm(self, llm: LLM) -> LLM: ...

    def index(self, index: Index) -> Index: ...

    def cross_encoder(self, model: Any) -> Any: ...


class SerializedLLM:
    """An LLM whose calls hold one lock (the LLM protocol, nothing more)."""

    def __init__(self, llm: LLM):
        self.inner = llm
        self._lock = threading.RLock()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_length(self) -> int:
        return self.inner.context_length

    def generate(
        self, prompts: Sequence[Prompt], max_new_tokens: int = 128, stop: Sequence[str] = ()
    ) -> list[LLMOutput]:
        with self._lock:
            return self.inner.generate(prompts, max_new_tokens=max_new_tokens, stop=stop)

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        with self._lock:
            return self.inner.next_token_logprobs(prompts, candidates)

    def render(self, prompt: Prompt) -> str:
        with self._lock:
            return self.inner.render(prompt)

    def path_logprobs(
        self, prompts: Sequence[Prompt], paths: Sequence[Sequence[str]], candidates: Sequence[str]
    ) -> list[list[dict[str, float]]]:
        """The optional one-pass reading of :mod:`rarx.llm.reply`, where the model has it."""
        fn = getattr(self.inner, "path_logprobs", None)
        if fn is None:
            raise NotImplementedError(f"{self.inner.name} reads one context per forward pass")
        with self._lock:
            return fn(prompts, paths, candidates)

    def count_tokens(self, prompt: Prompt) -> int:
        with self._lock:
            return self.inner.count_tokens(prompt)

    def truncate(self, text: str, max_tokens: int) -> str:
        with self._lock:
            return self.inner.truncate(text, max_tokens)

    def tokenize(self, text: str) -> list[str]:
        with self._lock:
            return self.inner.tokenize(text)

    def check_single_tokens(self, candidates: Sequence[str]) -> None:
        with self._lock:
            self.inner.check_single_tokens(candidates)


class SerializedIndex:
    """An index whose searches and lookups hold one lock."""

    def __init__(self, index: Index):
        self.inner = index
        self.kind = index.kind
        self.path: Path = index.path
        self.manifest: Manifest = index.manifest
        self._lock = threading.RLock()

    def _locked(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return fn(*args, **kwargs)

    def search(self, queries: Sequence[Query], k: int = 10, **options: Any) -> list[Ranking]:
        return self._locked(self.inner.search, queries, k, **options)

    def doc(self, docid: str) -> Document | None:
        return self._locked(self.inner.doc, docid)


class SerializedQAMemory(SerializedIndex):
    """A question-answer memory (``nearest`` and its ``pairs``) under one lock."""

    @property
    def pairs(self) -> Mapping[str, Any]:
        return self.inner.pairs  # type: ignore[attr-defined]

    def nearest(self, queries: Sequence[Query], k: int) -> list[list[tuple[Any, float]]]:
        return self._locked(self.inner.nearest, queries, k)  # type: ignore[attr-defined]


class SerializedCrossEncoder:
    """A sentence-transformers ``CrossEncoder`` whose ``predict`` calls hold one lock."""

    def __init__(self, model: Any):
        self.inner = model
        self._lock = threading.RLock()

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self.inner.predict(*args, **kwargs)


class Serial:
    """One call at a time per model and per index (the default)."""

    def llm(self, llm: LLM) -> LLM:
        return SerializedLLM(llm)

    def cross_encoder(self, model: Any) -> Any:
        return SerializedCrossEncoder(model)

    def index(self, index: Index) -> Index:
        wrapper = SerializedQAMemory if hasattr(index, "nearest") else SerializedIndex
        return wrapper(index)  # type: ignore[return-value]


class Shared:
    """Objects used as they are: their callers may overlap."""

    def llm(self, llm: LLM) -> LLM:
        return llm

    def index(self, index: Index) -> Index:
        return index

    def cross_encoder(self, model: Any) -> Any:
        return model


def _key(kind: str, name: str, settings: Mapping[str, Any]) -> str:
    return json.dumps([kind, name, dict(settings)], sort_keys=True, default=str)


class Resources:
    """A cache of loaded LLMs and indexes keyed by name and settings, shared under
    ``policy``. One may be shared by several pipelines (tests do, so SmolLM2 loads once)."""

    def __init__(
        self, llm_options: Mapping[str, Any] | None = None, policy: ConcurrencyPolicy | None = None
    ):
        self._items: dict[str, Any] = {}
        self._choices: dict[str, Any] = {}  # preference list -> the LLM chosen from it
        self._lock = threading.Lock()
        self.llm_options = dict(llm_options or {})  # e.g. {"device": "cpu"} for all LLMs
        self.policy: ConcurrencyPolicy = policy if policy is not None else Serial()

    def _get(self, key: str, load: Callable[[], T]) -> T:
        with self._lock:  # loading under the lock: two stages never load the same thing
            if key not in self._items:
                self._items[key] = load()
            return self._items[key]

    def choose(self, refs: tuple[Any, ...] | list[Any]) -> Any:
        """The LLM a preference list resolves to here, chosen (and logged, one line)
        once per list; a fallback from the first choice is logged as a warning."""
        from rarx.llm import choose_llm

        key = _key("llm-choice", "", {"refs": list(refs)})
        with self._lock:
            if key not in self._choices:
                chosen, why, fell_back = choose_llm(refs)
                (log.warning if fell_back else log.info)(why)
                self._choices[key] = chosen
            return self._choices[key]

    def llm(self, ref: LLMRef) -> LLM:
        from rarx.llm import load_llm

        one: LLMChoice = self.choose(ref) if isinstance(ref, tuple | list) else ref
        if isinstance(one, str):
            spec: str | dict[str, Any] = one
            settings: dict[str, Any] = dict(self.llm_options)
        else:
            spec = {**self.llm_options, **one}
            settings = spec

        def load() -> LLM:
            llm = load_llm(spec, **self.llm_options) if isinstance(spec, str) else load_llm(spec)
            return self.policy.llm(llm)

        return self._get(_key("llm", llm_name(one), settings), load)

    def cross_encoder(self, name: str) -> Any:
        """A cross-encoder (sentence-transformers ``CrossEncoder``) by name or path, loaded
        once with the LLM options' ``device``, for every reranker that names it."""
        from rarx.rerank.cross_encoder import CrossEncoderReranker

        device = self.llm_options.get("device")
        load = lambda: CrossEncoderReranker(name, device=device).model  # noqa: E731
        return self._get(_key("cross-encoder", name, {"device": device}),
                         lambda: self.policy.cross_encoder(load()))  # fmt: skip

    def index(self, path: str | Path, **options: Any) -> Index:
        """The index at ``path``, opened with load ``options`` (one object per path and
        options)."""
        from rarx.index.base import load_index

        resolved = str(Path(path).resolve())
        return self._get(_key("index", resolved, options),
                         lambda: self.policy.index(load_index(path, **options)))  # fmt: skip

    def __len__(self) -> int:
        return len(self._items)

    def loaded(self) -> list[str]:
        return sorted(self._items)
