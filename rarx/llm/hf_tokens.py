"""What a local causal LM backend does with its Hugging Face tokenizer: the text the
model reads (chat template, assistant prefix), its token ids, single-token checks,
truncation, and turning generated ids into an output. The transformers and ctranslate2
backends share it, so both read exactly the same ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rarx.llm.base import (
    LLMOutput,
    Prompt,
    TokenizationError,
    as_chat,
    token_pieces,
    truncate_tokens,
)


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """The text a causal LM with this tokenizer reads for ``prompt``: the chat template
    applied (messages joined as plain text without one), the assistant prefix added.
    Trainers render with it too, so a model is trained on exactly what it reads."""
    chat = as_chat(prompt)
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": r, "content": c} for r, c in chat.messages]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = "\n\n".join(c for _, c in chat.messages) + "\n"
    return text + chat.prefix


class HFTokens:
    """Tokenizer-side methods of a local backend; it sets ``name``, ``tokenizer``,
    ``templated`` (the tokenizer has a chat template), ``_eos_ids`` (end tokens) and
    ``_control_ids`` (end, padding and other control tokens)."""

    name: str
    tokenizer: Any
    templated: bool
    _eos_ids: set[int]
    _control_ids: set[int]

    def render(self, prompt: Prompt) -> str:
        """The exact text the model reads: chat template applied, assistant prefix added."""
        return render_prompt(self.tokenizer, prompt)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """The token ids the model reads for ``prompt`` (what FIRST training feeds it)."""
        return self.tokenizer(self.render(prompt), add_special_tokens=not self.templated)[
            "input_ids"
        ]

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.prompt_ids(prompt))

    def truncate(self, text: str, max_tokens: int) -> str:
        return truncate_tokens(self.tokenizer, text, max_tokens)

    def tokenize(self, text: str) -> list[str]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return token_pieces(text, enc["offset_mapping"])

    def token_id(self, candidate: str) -> int:
        ids = self.tokenizer.encode(candidate, add_special_tokens=False)
        if len(ids) != 1:
            raise TokenizationError(
                f"{candidate!r} is {len(ids)} tokens for {self.name}'s tokenizer, expected "
                f"exactly one; FIRST needs single-token identifiers: use identifiers this "
                f"tokenizer keeps whole (A..T for most BPE vocabularies), or rerank with "
                f"method 'listwise'"
            )
        return int(ids[0])

    def check_single_tokens(self, candidates: Sequence[str]) -> None:
        ids = [self.token_id(c) for c in candidates]
        if len(set(ids)) != len(ids):
            raise TokenizationError(f"candidates {list(candidates)} share token ids {ids}")

    def _output(
        self, new: list[int], prompt_tokens: int, seconds: float, prefill: float | None,
        stop: Sequence[str],
    ) -> LLMOutput:  # fmt: skip
        """Generated ids as an output: cut at the first end token, then at a stop string."""
        finish = "length"
        for j, tok in enumerate(new):
            if tok in self._eos_ids:
                new, finish = new[: j + 1], "stop"
                break
        # Control tokens (end, padding, ...) are dropped; other special tokens are words
        # a model was taught, such as the gate's <RET>, and stay in the text.
        text = self.tokenizer.decode([t for t in new if t not in self._control_ids])
        for s in stop:
            if s and s in text:
                text, finish = text[: text.index(s)], "stop"
        return LLMOutput(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(new),
            seconds=seconds,
            finish_reason=finish,
            prefill_seconds=prefill,
        )


__all__ = ["HFTokens", "render_prompt"]
