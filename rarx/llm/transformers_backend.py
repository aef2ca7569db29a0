"""Local causal LMs through transformers: batched, left-padded, greedy.

Named models (``smollm2-135m``) load from rarx's safetensors cache of the packaged
GGUF; any other Hugging Face name or local path loads as it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rarx.errors import require
from rarx.llm.base import ChatPrompt, LLMError, LLMOutput, Prompt, as_chat
from rarx.llm.hf_tokens import HFTokens, render_prompt
from rarx.models.cache import causal_lm_dir
from rarx.models.registry import hub_error, resolve_model

log = logging.getLogger(__name__)

# A tokenizer's model_max_length above this is transformers' "unset" sentinel.
_UNSET_MAX_LENGTH = 10**7


def cpu_has_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU computes bfloat16 natively (AMX or AVX-512 BF16 in
    ``/proc/cpuinfo``); None where that cannot be read. Without either, torch emulates
    bfloat16 matrix products: measured here 6 times slower than float32."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags")
             for f in line.partition(":")[2].split()}  # fmt: skip
    if not flags:
        return None
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


class TransformersLLM(HFTokens):
    """A causal LM on CPU or CUDA. Plain-text prompts become one user message when the
    tokenizer has a chat template; without one, messages are joined as plain text."""

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        device: str | None = None,
        dtype: str = "float32",
        batch_size: int = 8,
        max_context: int | None = None,
        quiet: bool = True,
    ):
        torch = require("torch", "llm")
        transformers = require("transformers", "llm")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype == "bfloat16" and device == "cpu" and cpu_has_bf16() is False:
            log.warning("%s: this CPU has no bfloat16 units (no amx_bf16 or avx512_bf16), so "
                        "bfloat16 runs several times slower than float32 here; drop --dtype "
                        "bfloat16 or use a GPU", model)  # fmt: skip
        resolved = resolve_model(model, kind="llm")
        source = causal_lm_dir(resolved, quiet=quiet)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source)
            loaded = transformers.AutoModelForCausalLM.from_pretrained(
                source, dtype=getattr(torch, dtype)
            )
        except OSError as exc:
            raise hub_error(model, exc) from exc
        self._adopt(loaded, tokenizer, model, device, batch_size, max_context)

    @classmethod
    def wrap(
        cls, model: Any, tokenizer: Any, name: str, *, device: str = "cpu", batch_size: int = 8,
        max_context: int | None = None,
    ) -> TransformersLLM:  # fmt: skip
        """A model and tokenizer loaded already (a trainer's) as an LLM, set up exactly as
        a model loaded by name is (padding side, pad token, greedy generation)."""
        llm = cls.__new__(cls)
        llm._adopt(model, tokenizer, name, device, batch_size, max_context)
        return llm

    def _adopt(
        self, model: Any, tokenizer: Any, name: str, device: str, batch_size: int,
        max_context: int | None,
    ) -> None:  # fmt: skip
        self.name = name
        self.batch_size = max(1, int(batch_size))
        self.device = device
        self.tokenizer, self.model = tokenizer, model
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.templated = bool(getattr(self.tokenizer, "chat_template", None))
        limit = int(getattr(self.model.config, "max_position_embeddings", 2048))
        tok_limit = int(getattr(self.tokenizer, "model_max_length", _UNSET_MAX_LENGTH))
        if tok_limit < _UNSET_MAX_LENGTH:
            limit = min(limit, tok_limit)
        self.context_length = min(limit, max_context) if max_context else limit
        # Greedy and nothing else: drop sampling defaults a model's config may carry.
        gen = self.model.generation_config
        gen.do_sample = False
        gen.temperature = gen.top_p = gen.top_k = None
        self._eos_ids = self._eos_token_ids()
        self._control_ids = self._eos_ids | {
            i for i in (getattr(self.tokenizer, f"{k}_token_id", None)
                        for k in ("bos", "pad", "unk", "sep", "cls", "mask")) if i is not None
        }  # fmt: skip

    # -- rendering and tokens -------------------------------------------------------

    def _encode(self, texts: list[str]) -> Any:
        # A rendered chat template already holds its special tokens.
        return self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not self.templated
        ).to(self.device)

    def _eos_token_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [] if ids is None else ([ids] if isinstance(ids, int) else list(ids))
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return set(ids)

    # -- calls ------------------------------------------------------------------------

    def generate(
        self, prompts: Sequence[Prompt], max_new_tokens: int = 128, stop: Sequence[str] = ()
    ) -> list[LLMOutput]:
        torch = require("torch", "llm")
        texts = [self.render(p) for p in prompts]
        outputs: list[LLMOutput] = []
        for batch in _batches(len(texts), self.batch_size):
            enc = self._encode([texts[i] for i in batch])
            first_token_at: list[float] = []
            start = time.perf_counter()
            try:
                with torch.inference_mode():
                    out = self.model.generate(
                        **enc,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        pad_token_id=self.tokenizer.pad_token_id,
                        logits_processor=[_FirstCallTimer(first_token_at)],
                    )
            except (RuntimeError, ValueError) as exc:
                raise LLMError(f"{self.name}: generation failed: {exc}") from exc
            seconds = time.perf_counter() - start
            prefill = first_token_at[0] - start if first_token_at else None
            width = enc["input_ids"].shape[1]
            for row in range(len(batch)):
                outputs.append(
                    self._output(
                        out[row, width:].tolist(),
                        int(enc["attention_mask"][row].sum()),
                        seconds,
                        prefill,
                        stop,
                    )  # fmt: skip
                )
        return outputs

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        torch = require("torch", "llm")
        ids = [self.token_id(c) for c in candidates]
        texts = [self.render(p) for p in prompts]
        results: list[dict[str, float]] = []
        for batch in _batches(len(texts), self.batch_size):
            enc = self._encode([texts[i] for i in batch])
            # Left padding: positions must count real tokens only, as generate() does.
            positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            try:
                with torch.inference_mode():
                    logits = self.model(**enc, position_ids=positions, logits_to_keep=1).logits
            except (RuntimeError, ValueError) as exc:
                raise LLMError(f"{self.name}: forward pass failed: {exc}") from exc
            logprobs = torch.log_softmax(logits[:, -1, :].float(), dim=-1)[:, ids].cpu().tolist()
            results.extend(dict(zip(candidates, row, strict=True)) for row in logprobs)
        return results

    def path_logprobs(
        self, prompts: Sequence[Prompt], paths: Sequence[Sequence[str]], candidates: Sequence[str]
    ) -> list[list[dict[str, float]]]:
        """For each prompt and its path of tokens (appended after the prompt's prefix),
        the candidates' log-probabilities after the prompt and after each path token:
        ``len(path) + 1`` readings from one forward pass. The caller has checked that
        the rendered prompt + path tokenises as the prompt's tokens + the path
        (:mod:`rarx.llm.reply`)."""
        torch = require("torch", "llm")
        ids = [self.token_id(c) for c in candidates]
        texts = [self.render(ChatPrompt(as_chat(p).messages, as_chat(p).prefix + "".join(path)))
                 for p, path in zip(prompts, paths, strict=True)]  # fmt: skip
        results: list[list[dict[str, float]]] = []
        for batch in _batches(len(texts), self.batch_size):
            enc = self._encode([texts[i] for i in batch])
            positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            keep = max(len(paths[i]) for i in batch) + 1
            try:
                with torch.inference_mode():
                    logits = self.model(**enc, position_ids=positions, logits_to_keep=keep).logits
            except (RuntimeError, ValueError) as exc:
                raise LLMError(f"{self.name}: forward pass failed: {exc}") from exc
            lps = torch.log_softmax(logits[:, -keep:, :].float(), dim=-1)[:, :, ids].cpu().tolist()
            for row, i in enumerate(batch):
                steps = lps[row][keep - len(paths[i]) - 1 :]
                results.append([dict(zip(candidates, s, strict=True)) for s in steps])
        return results


class _FirstCallTimer:
    """A logits processor that notes when the first token's logits are ready (the end
    of prefill) and changes nothing."""

    def __init__(self, sink: list[float]):
        self.sink = sink

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if not self.sink:
            self.sink.append(time.perf_counter())
        return scores


__all__ = ["ChatPrompt", "TransformersLLM", "render_prompt"]
