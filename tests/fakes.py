"""Fakes shared by the tests, only where a real part would make a test slow or
nondeterministic for no gain (the real SmolLM2 is tested in its own tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rarx.llm import ChatPrompt, LLMOutput


class ScriptedLLM:
    """An LLM whose replies are scripted: fast tests of the logic around a model."""

    name = "scripted"

    def __init__(self, reply: Any = None, scores: Any = None, context_length: int = 100_000):
        self.reply = reply  # str | Exception | callable(prompt) -> str
        self.scores = scores  # callable(prompt, candidates) -> dict
        self.context_length = context_length
        self.calls: list[ChatPrompt] = []

    def generate(
        self, prompts: Sequence[Any], max_new_tokens: int = 128, stop: Any = ()
    ) -> list[LLMOutput]:
        self.calls.extend(prompts)
        if isinstance(self.reply, Exception):
            raise self.reply
        texts = [self.reply(p) if callable(self.reply) else self.reply for p in prompts]
        return [LLMOutput(t, 10, 5, 0.01) for t in texts]

    def next_token_logprobs(
        self, prompts: Sequence[Any], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        self.calls.extend(prompts)
        if isinstance(self.scores, Exception):
            raise self.scores
        return [self.scores(p, candidates) for p in prompts]

    def count_tokens(self, prompt: Any) -> int:
        return sum(len(c.split()) for _, c in prompt.messages)

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[:max_tokens])

    def check_single_tokens(self, candidates: Sequence[str]) -> None:
        pass

    def render(self, prompt: Any) -> str:
        return prompt.as_text()

    def tokenize(self, text: str) -> list[str]:
        return list(text)  # one token per character: every boundary is a token boundary


def passages_in(prompt: ChatPrompt) -> list[str]:
    """The ``[A] text`` passage lines of a reranking prompt's last message."""
    lines = prompt.messages[-1][1].splitlines()
    return [line[4:] for line in lines if len(line) > 3 and line[0] == "[" and line[2] == "]"]


def by_keyword(word: str) -> Callable[[ChatPrompt, Sequence[str]], dict[str, float]]:
    """A FIRST scorer that prefers passages containing ``word``, else keeps order."""

    def scores(prompt: ChatPrompt, candidates: Sequence[str]) -> dict[str, float]:
        ps = passages_in(prompt)
        return {c: (0.0 if word in p else -5.0) for c, p in zip(candidates, ps, strict=False)}

    return scores
