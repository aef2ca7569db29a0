"""Any OpenAI-compatible server (vLLM, llama.cpp server, hosted APIs) by base URL.

Two request shapes:

- ``api="completions"`` sends rendered text to ``/v1/completions``. With a
  ``tokenizer`` (an HF name or path, or a rarx model name) the chat template is
  rendered here, so the server sees exactly what the local backend sees; that is how
  FIRST's ``[`` prefix reaches the model. Token counts and truncation are exact.
- ``api="chat"`` sends messages to ``/v1/chat/completions``. A ``ChatPrompt.prefix``
  is sent as a final assistant message with vLLM's ``continue_final_message``.

Tokenisation is explicit: ``tokenizer`` names the served model's tokenizer (an HF name
or path, or a rarx model name), or is None. With one, token counts, truncation and
token splits are exact and a logprob candidate must be one token. Without one, counts
and truncation are estimates (3 characters a token), text cannot be split into the
server's tokens (``tokenize`` raises, so the gate's threshold mode says to pass a
tokenizer instead of scoring character pieces the server never reports), and a
``next_token_logprobs`` call none of whose candidates the server reports among its top
tokens is an error, not a row of ``-inf``.

The API key comes only from the environment (``api_key_env``, default
``OPENAI_API_KEY``); local servers that need none get a placeholder. Timeouts and
retries with exponential backoff are the openai client's own.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from rarx.errors import ConfigError, require
from rarx.llm.base import (
    LLMError,
    LLMOutput,
    Prompt,
    TokenizationError,
    as_chat,
    token_pieces,
    truncate_tokens,
)

# Without a tokenizer, token counts are estimated at this many characters per token
# (low on purpose: over-counting splits a window early, under-counting overflows it).
_CHARS_PER_TOKEN = 3.0


class OpenAILLM:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api: Literal["completions", "chat"] = "completions",
        tokenizer: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 3,
        concurrency: int = 4,
        context_length: int = 8192,
        top_logprobs: int = 20,
    ):
        openai = require("openai", "openai")
        if api not in ("completions", "chat"):
            raise ConfigError(f"api must be 'completions' or 'chat', got {api!r}")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ConfigError(
                "the openai backend needs a server: pass base_url (e.g. "
                "http://127.0.0.1:8000/v1) or set OPENAI_BASE_URL"
            )
        self.name = model
        self.base_url = base_url
        self.api = api
        self.context_length = int(context_length)
        self.top_logprobs = int(top_logprobs)
        self.concurrency = max(1, int(concurrency))
        self.api_key_env = api_key_env
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=os.environ.get(api_key_env) or "unused",
            timeout=timeout,
            max_retries=max_retries,
        )
        self._openai = openai
        self.tokenizer_name = tokenizer  # None: counts and truncation are estimates
        self._tok = _load_tokenizer(tokenizer) if tokenizer else None

    # -- rendering and tokens -------------------------------------------------------

    def render(self, prompt: Prompt) -> str:
        chat = as_chat(prompt)
        if self._tok is not None and getattr(self._tok, "chat_template", None):
            messages = [{"role": r, "content": c} for r, c in chat.messages]
            text = self._tok.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return text + chat.prefix
        return "\n\n".join(c for _, c in chat.messages) + "\n" + chat.prefix

    def count_tokens(self, prompt: Prompt) -> int:
        text = self.render(prompt)
        if self._tok is not None:
            return len(self._tok.encode(text, add_special_tokens=False))
        return math.ceil(len(text) / _CHARS_PER_TOKEN)

    def truncate(self, text: str, max_tokens: int) -> str:
        if self._tok is None:
            return text[: int(max_tokens * _CHARS_PER_TOKEN)]
        return truncate_tokens(self._tok, text, max_tokens)

    def tokenize(self, text: str) -> list[str]:
        if self._tok is None:
            raise TokenizationError(
                f"splitting {text!r} into {self.name}'s tokens needs its tokenizer, and this "
                f"openai backend has none: pass tokenizer=NAME_OR_PATH (the served model's "
                f"Hugging Face tokenizer or a rarx model name, e.g. llm: {{model: "
                f"{self.name}, backend: openai, tokenizer: ...}})"
            )
        enc = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return token_pieces(text, enc["offset_mapping"])

    def check_single_tokens(self, candidates: Sequence[str]) -> None:
        """Exact with a tokenizer; without one the server's answers are trusted: a
        candidate it does not report scores ``-inf`` and a call where it reports none
        of them is an error."""
        if self._tok is None:
            return
        for c in candidates:
            n = len(self._tok.encode(c, add_special_tokens=False))
            if n != 1:
                raise TokenizationError(
                    f"{c!r} is {n} tokens for {self.name}'s tokenizer, expected exactly one; "
                    f"use single-token identifiers or method 'listwise'"
                )

    # -- calls ------------------------------------------------------------------------

    def _map(self, fn: Any, prompts: Sequence[Prompt]) -> list[Any]:
        if len(prompts) <= 1 or self.concurrency == 1:
            return [fn(p) for p in prompts]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, prompts))

    def _request(self, prompt: Prompt, **params: Any) -> tuple[Any, float]:
        start = time.perf_counter()
        try:
            if self.api == "completions":
                resp = self.client.completions.create(
                    model=self.name, prompt=self.render(prompt), temperature=0.0, **params
                )
            else:
                chat = as_chat(prompt)
                messages = [{"role": r, "content": c} for r, c in chat.messages]
                extra: dict[str, Any] = {}
                if chat.prefix:
                    messages.append({"role": "assistant", "content": chat.prefix})
                    extra = {"continue_final_message": True, "add_generation_prompt": False}
                if "logprobs" in params:  # chat spells it logprobs=True + top_logprobs=N
                    params = {**params, "logprobs": True, "top_logprobs": params["logprobs"]}
                resp = self.client.chat.completions.create(
                    model=self.name, messages=messages, temperature=0.0, extra_body=extra,
                    **params,
                )  # fmt: skip
        except self._openai.AuthenticationError as exc:
            raise LLMError(
                f"{self.base_url} refused the API key: set {self.api_key_env} in the environment"
            ) from exc
        except self._openai.OpenAIError as exc:
            raise LLMError(f"{self.base_url} ({self.name}): {type(exc).__name__}: {exc}") from exc
        return resp, time.perf_counter() - start

    def generate(
        self, prompts: Sequence[Prompt], max_new_tokens: int = 128, stop: Sequence[str] = ()
    ) -> list[LLMOutput]:
        def one(prompt: Prompt) -> LLMOutput:
            resp, seconds = self._request(
                prompt, max_tokens=max_new_tokens, **({"stop": list(stop)} if stop else {})
            )
            choice = resp.choices[0]
            text = choice.text if self.api == "completions" else choice.message.content
            usage = resp.usage
            return LLMOutput(
                text=text or "",
                prompt_tokens=usage.prompt_tokens if usage else self.count_tokens(prompt),
                completion_tokens=usage.completion_tokens if usage else 0,
                seconds=seconds,
                finish_reason=choice.finish_reason,
            )

        return self._map(one, prompts)

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        n = max(self.top_logprobs, len(candidates))
        self.check_single_tokens(candidates)  # with a tokenizer: each is one token

        def one(prompt: Prompt) -> dict[str, float]:
            resp, _ = self._request(prompt, max_tokens=1, logprobs=n)
            top = _first_top_logprobs(resp, self.api)
            if top is None:
                raise LLMError(
                    f"{self.base_url} returned no logprobs for {self.name}; FIRST needs a "
                    f"server that supports logprobs/top_logprobs"
                )
            if self._tok is None and candidates and not any(c in top for c in candidates):
                # Below the top n, or not a token of this model at all: no tokenizer here
                # to tell which, so no score can be given.
                raise LLMError(
                    f"{self.base_url} ({self.name}) reports none of {list(candidates)} among "
                    f"its top {n} next tokens ({sorted(top)[:5]}...): without a tokenizer "
                    f"they cannot be scored; pass tokenizer=NAME_OR_PATH so candidates are "
                    f"checked to be tokens, or raise top_logprobs"
                )
            # Exact token text only, as the local backend scores it (" A" is another token);
            # a token below the server's top n scores -inf.
            return {c: float(top.get(c, -math.inf)) for c in candidates}

        return self._map(one, prompts)


def _first_top_logprobs(resp: Any, api: str) -> dict[str, float] | None:
    choice = resp.choices[0]
    lp = choice.logprobs
    if lp is None:
        return None
    if api == "completions":
        tops = getattr(lp, "top_logprobs", None)
        return dict(tops[0]) if tops else None
    content = getattr(lp, "content", None)
    if not content:
        return None
    return {t.token: t.logprob for t in content[0].top_logprobs}


def _load_tokenizer(name: str) -> Any:
    transformers = require("transformers", "llm")
    from rarx.models.cache import causal_lm_dir
    from rarx.models.registry import hub_error, resolve_model

    resolved = resolve_model(name, kind="llm")
    try:
        return transformers.AutoTokenizer.from_pretrained(causal_lm_dir(resolved, quiet=True))
    except OSError as exc:
        raise hub_error(name, exc) from exc
