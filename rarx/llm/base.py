"""The LLM protocol and the typed values it returns.

A prompt is either plain text (sent as one user message when the model has a chat
template) or a :class:`ChatPrompt`: messages plus an optional ``prefix`` that is
appended after the assistant turn has been opened. FIRST opens its reply with ``"["``
and reads the identifier that follows; where the tokenizer merges the two (Qwen's
``[A``), :mod:`rarx.llm.reply` moves the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from rarx.errors import RarxError

ROLES = frozenset({"system", "user", "assistant"})


class LLMError(RarxError):
    """An LLM call failed (server error, timeout, bad output). Rerankers catch it per
    window unless they run in strict mode."""


class TokenizationError(RarxError):
    """Text that must be one token (an identifier) is not one for this tokenizer."""


@dataclass(frozen=True, slots=True)
class ChatPrompt:
    """Chat messages as ``(role, content)`` pairs; ``prefix`` starts the assistant's reply."""

    messages: tuple[tuple[str, str], ...]
    prefix: str = ""

    def __post_init__(self) -> None:
        messages = tuple((str(r), str(c)) for r, c in self.messages)
        bad = sorted({r for r, _ in messages} - ROLES)
        if bad:
            raise ValueError(f"ChatPrompt roles must be one of {sorted(ROLES)}, got {bad}")
        if not messages:
            raise ValueError("ChatPrompt needs at least one message")
        object.__setattr__(self, "messages", messages)

    @classmethod
    def user(cls, content: str, system: str | None = None, prefix: str = "") -> ChatPrompt:
        messages = ((("system", system),) if system else ()) + (("user", content),)
        return cls(messages, prefix)

    def as_text(self) -> str:
        """A readable rendering for traces (not what the model sees)."""
        body = "\n".join(f"<{r}> {c}" for r, c in self.messages)
        return f"{body}\n<assistant> {self.prefix}" if self.prefix else body


Prompt = str | ChatPrompt


def as_chat(prompt: Prompt) -> ChatPrompt:
    return prompt if isinstance(prompt, ChatPrompt) else ChatPrompt.user(prompt)


def truncate_tokens(tokenizer: Any, text: str, max_tokens: int) -> str:
    """``text`` cut after its ``max_tokens``-th token, at that token's end in the text (a
    Hugging Face fast tokenizer's character offsets); unchanged if it is no longer."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= max_tokens:
        return text
    return text[: enc["offset_mapping"][max_tokens - 1][1]] if max_tokens > 0 else ""


def token_pieces(text: str, offsets: Sequence[tuple[int, int]]) -> list[str]:
    """``text`` cut after each token's end offset (a tokenizer's offset mapping): one
    piece per token that adds text, joining back to ``text``."""
    pieces: list[str] = []
    start = 0
    for _, end in offsets:
        if end > start:
            pieces.append(text[start:end])
            start = end
    if start < len(text):  # trailing text no offset covers stays with the last piece
        pieces[-1:] = ["".join(pieces[-1:]) + text[start:]]
    return pieces


@dataclass(frozen=True, slots=True)
class LLMOutput:
    """One generated completion. ``prefill_seconds`` is the time to the first token
    when the backend can measure it (batch-wide for a batched call)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str | None = None
    prefill_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class LLMCall:
    """A record of one LLM call, as stored on a query's trace."""

    kind: str  # "generate" | "next_token_logprobs"
    model: str
    prompt: str
    output: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    error: str | None = None
    logprobs: Mapping[str, float] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.logprobs is not None:
            object.__setattr__(self, "logprobs", MappingProxyType(dict(self.logprobs)))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "prompt": self.prompt,
            "output": self.output,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": self.seconds,
            "error": self.error,
            "logprobs": None if self.logprobs is None else dict(self.logprobs),
            **({"meta": dict(self.meta)} if self.meta else {}),
        }


@runtime_checkable
class LLM(Protocol):
    """What rarx needs from a language model. Calls are deterministic (greedy)."""

    @property
    def name(self) -> str: ...

    @property
    def context_length(self) -> int:
        """Prompt + completion tokens the model accepts."""
        ...

    def generate(
        self, prompts: Sequence[Prompt], max_new_tokens: int = 128, stop: Sequence[str] = ()
    ) -> list[LLMOutput]: ...

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """For each prompt, the log-probability of each candidate as the next token
        (one forward pass). A candidate the backend cannot score gets ``-inf``. This is
        the raw reading after the rendered prompt; callers that score identifiers or
        labels after a reply prefix go through :func:`rarx.llm.reply.reply_logprobs`,
        which moves the boundary where the tokenizer merges prefix and candidate."""
        ...

    def render(self, prompt: Prompt) -> str:
        """The exact text the model reads for ``prompt``: chat template applied, the
        assistant's ``prefix`` appended (what :mod:`rarx.llm.reply` tokenises to score
        candidate replies at a real token boundary)."""
        ...

    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens the prompt takes once rendered (chat template included)."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` tokens (unchanged if shorter)."""
        ...

    def tokenize(self, text: str) -> list[str]:
        """``text`` as the model's tokens (pieces joining back to ``text``); raise
        :class:`TokenizationError` when the backend does not know its tokenizer."""
        ...

    def check_single_tokens(self, candidates: Sequence[str]) -> None:
        """Raise :class:`TokenizationError` unless every candidate is one token."""
        ...
