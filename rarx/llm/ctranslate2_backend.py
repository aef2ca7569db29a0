"""Causal LMs through CTranslate2: int8 on the CPU, float16 / int8_float16 on CUDA.

The model is converted once into rarx's cache (:mod:`rarx.models.ct2_cache`); the
prompt is rendered and tokenized by the model's own Hugging Face tokenizer with the
transformers backend's own methods, so both backends read exactly the same token ids.
The transformers backend stays the reference (and what training uses).

Where each number comes from:

- ``generate``: ``Generator.generate_batch`` with the whole prompt forwarded at once
  (``include_prompt_in_result=False``), greedy. CTranslate2 runs prompts of different
  lengths in one batch by forwarding the shortest length at once and forcing the rest
  token by token, so batches group prompts of similar length.
- ``next_token_logprobs``: the logits of the first generated step of
  ``generate_batch(max_length=1, return_logits_vocab=True,
  include_prompt_in_result=False)``, log-softmaxed (they are raw logits). Two traps
  there: with ``include_prompt_in_result=True`` (the default) the first step is the
  one that forces the prompt's *second* token, so its logits belong to position 0; and
  in a batch of unequal lengths the steps that force the longer prompts' remaining
  tokens come first. Only prompts of equal token length share a batch here, and the
  logits of the last step are read.
- A prefix shared by a call's prompts (the chat template's system turn and the task's
  instruction: 40-45 of qwen's ~70 closed-book tokens) is CTranslate2's ``static_prompt``
  in ``generate`` and ``next_token_logprobs``: forwarded once, its state cached and reused
  by later calls (prefill is compute-bound on a CPU, so it is the tokens not forwarded
  again that save time: 20-25% of a closed-book answer with qwen int8). Only prefixes
  shared by several prompts of one call are cached, at most ``prefix_cache`` of them
  (each cached state stays for the generator's life); ``prefix_cache=0`` turns it off.
- ``continuation_logprobs``: ``Generator.score_batch`` over context + continuation ids
  (every token's log-probability given the ones before), the continuation's tail read.
- ``path_logprobs`` (a reply read along a path of tokens, as Qwen's FIRST reads ``[A``
  after the prompt and ``O`` after ``[``): ``generate_batch`` with all but the prompt's
  last token as an uncached ``static_prompt`` (forwarded once, at once) and the last token
  plus the path as the start tokens, ``include_prompt_in_result=True``: the steps forcing
  the path give the logits after the prompt and after each path token, then one step is
  generated. One pass over the prompt instead of one per path token, and the first
  reading is exactly ``next_token_logprobs``' (the later ones agree to int8 noise: the
  path's tokens go through the cache one at a time, not in one matrix product).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rarx.errors import ConfigError, require
from rarx.llm.base import ChatPrompt, LLMError, LLMOutput, Prompt, as_chat
from rarx.llm.hf_tokens import HFTokens
from rarx.progress import progress

log = logging.getLogger(__name__)

_UNSET_MAX_LENGTH = 10**7  # a tokenizer's model_max_length above this is unset
_MIN_PREFIX = 16  # shorter shared prefixes are not worth a cache entry


def _cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def length_groups(lengths: Sequence[int], size: int, spread: int) -> list[list[int]]:
    """Indices grouped for batching: sorted by length, at most ``size`` per group, and
    the longest at most ``spread`` tokens longer than the shortest (CTranslate2 forces
    those extra tokens one decoding step at a time)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and len(groups[-1]) < size and lengths[i] - lengths[groups[-1][0]] <= spread:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    top = logits.max()
    return logits - (top + math.log(np.exp(logits - top).sum()))


class CTranslate2LLM(HFTokens):
    """A causal LM converted to CTranslate2. ``compute_type`` defaults to ``int8`` on
    the CPU and ``int8_float16`` on CUDA; ``dtype`` is taken as the compute type when
    ``compute_type`` is not given (``float32``, ``float16``, ``bfloat16``)."""

    backend = "ctranslate2"

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        device: str | None = None,
        compute_type: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        max_context: int | None = None,
        threads: int | None = None,
        prefix_cache: int = 16,
        quiet: bool = True,
    ):
        ct2 = require("ctranslate2", "ctranslate2")
        transformers = require("transformers", "ctranslate2")
        from rarx.models.ct2_cache import ct2_model_dir, read_manifest

        self.name = model
        self.batch_size = max(1, int(batch_size))
        self.prefix_cache = max(0, int(prefix_cache))
        self._prefixes: list[tuple[int, ...]] = []  # static prompts CTranslate2 has cached
        if device in (None, "auto"):
            device = "cuda" if ct2.get_cuda_device_count() > 0 else "cpu"
        if device.startswith("cuda:"):  # torch-style "cuda:1"
            device, index = "cuda", int(device.partition(":")[2] or 0)
        else:
            index = 0
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"ctranslate2 runs on 'cpu' or 'cuda', got device {device!r}")
        self.device = device
        compute_type = compute_type or dtype or ("int8_float16" if device == "cuda" else "int8")
        supported = sorted(ct2.get_supported_compute_types(device))
        if compute_type not in supported:
            raise ConfigError(
                f"compute type {compute_type!r} is not supported on this {device} by "
                f"CTranslate2 {ct2.__version__}; supported here: {', '.join(supported)}"
            )
        self.compute_type = compute_type
        self.path = ct2_model_dir(model, compute_type, quiet=quiet)
        manifest = read_manifest(self.path)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path / "hf_tokenizer")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.templated = bool(getattr(self.tokenizer, "chat_template", None))
        self.threads = int(threads) if threads else _cpu_threads()
        try:
            self.generator = ct2.Generator(
                str(self.path), device=device, device_index=index, compute_type=compute_type,
                intra_threads=self.threads if device == "cpu" else 0,
            )  # fmt: skip
        except (RuntimeError, ValueError) as exc:
            raise LLMError(f"{model}: CTranslate2 could not load {self.path}: {exc}") from exc
        limit = int(manifest.get("max_position_embeddings", 2048))
        tok_limit = int(getattr(self.tokenizer, "model_max_length", _UNSET_MAX_LENGTH))
        if tok_limit < _UNSET_MAX_LENGTH:
            limit = min(limit, tok_limit)
        self.context_length = min(limit, max_context) if max_context else limit
        eos = set(manifest.get("eos_token_ids", []))
        if self.tokenizer.eos_token_id is not None:
            eos.add(self.tokenizer.eos_token_id)
        self._eos_ids = eos
        self._control_ids = eos | {
            i for i in (getattr(self.tokenizer, f"{k}_token_id", None)
                        for k in ("bos", "pad", "unk", "sep", "cls", "mask")) if i is not None
        }  # fmt: skip

    def _tokens(self, ids: list[int]) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(ids)

    def _static_prefix(self, ids: Sequence[list[int]]) -> int:
        """How many leading tokens of every prompt go in as the cached static prompt: the
        longest cached prefix they all start with, else their common prefix (cached when
        several prompts share at least ``_MIN_PREFIX`` tokens and room is left); 0: none.
        Each prompt keeps at least one token of its own to forward."""
        if not self.prefix_cache or not ids:
            return 0
        room = min(len(x) for x in ids) - 1
        known = [p for p in self._prefixes
                 if len(p) <= room and all(tuple(x[: len(p)]) == p for x in ids)]  # fmt: skip
        if known:
            return max(len(p) for p in known)
        if len(ids) < 2 or len(self._prefixes) >= self.prefix_cache:
            return 0
        first, n = ids[0], 0
        while n < room and all(x[n] == first[n] for x in ids):
            n += 1
        if n < _MIN_PREFIX:
            return 0
        self._prefixes.append(tuple(first[:n]))
        return n

    def _generate_batch(self, batch: Sequence[list[int]], shared: int, **options: Any) -> Any:
        """``generate_batch`` over token ids whose first ``shared`` tokens (equal in every
        row) are the cached static prompt."""
        if shared:
            options["static_prompt"] = self._tokens(list(batch[0][:shared]))
        return self.generator.generate_batch([self._tokens(x[shared:]) for x in batch], **options)

    # -- generation -------------------------------------------------------------------

    def generate(
        self, prompts: Sequence[Prompt], max_new_tokens: int = 128, stop: Sequence[str] = ()
    ) -> list[LLMOutput]:
        ids = [self.prompt_ids(p) for p in prompts]
        shared = self._static_prefix(ids)
        outputs: list[LLMOutput | None] = [None] * len(ids)
        # Merging two prompts costs one forced step per token of length difference and
        # saves one decoding pass over the weights per new token: merge while cheaper.
        for group in length_groups([len(x) for x in ids], self.batch_size, max_new_tokens // 2):
            batch = [ids[i] for i in group]
            first: list[float] = []
            stopper = _StopStrings(self.tokenizer, stop, self._control_ids, len(batch))
            start = time.perf_counter()
            try:
                results = self._generate_batch(
                    batch, shared, max_length=max_new_tokens,
                    sampling_topk=1, beam_size=1, include_prompt_in_result=False,
                    end_token=sorted(self._eos_ids), return_end_token=True,
                    callback=stopper.callback(first, start),
                )  # fmt: skip
            except (RuntimeError, ValueError) as exc:
                raise LLMError(f"{self.name}: generation failed: {exc}") from exc
            seconds = time.perf_counter() - start
            prefill = first[0] - start if first else None
            for row, i in enumerate(group):
                new = list(results[row].sequences_ids[0])
                outputs[i] = self._output(new, len(batch[row]), seconds, prefill, stop)
        return [o for o in outputs if o is not None]

    # -- scoring ----------------------------------------------------------------------

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        cand = [self.token_id(c) for c in candidates]
        ids = [self.prompt_ids(p) for p in prompts]
        results: list[dict[str, float]] = [{} for _ in ids]
        shared = self._static_prefix(ids)
        for group in length_groups([len(x) for x in ids], self.batch_size, 0):
            last = self._last_logits([ids[i] for i in group], shared)
            for i, logits in zip(group, last, strict=True):
                lps = _log_softmax(logits)
                results[i] = {c: float(lps[t]) for c, t in zip(candidates, cand, strict=True)}
        return results

    def _last_logits(self, batch: list[list[int]], shared: int = 0) -> list[np.ndarray]:
        """The next-token logits after each prompt (all of one length)."""
        try:
            out = self._generate_batch(
                batch, shared, max_length=1, sampling_topk=1,
                include_prompt_in_result=False, return_logits_vocab=True,
            )  # fmt: skip
        except (RuntimeError, ValueError) as exc:
            raise LLMError(f"{self.name}: forward pass failed: {exc}") from exc
        # One step per row (equal lengths); its logits come as [1, vocab].
        return [np.asarray(r.logits[-1], dtype=np.float32).reshape(-1) for r in out]

    def path_logprobs(
        self, prompts: Sequence[Prompt], paths: Sequence[Sequence[str]], candidates: Sequence[str]
    ) -> list[list[dict[str, float]]]:
        """For each prompt and its path of tokens (appended after the prompt's prefix),
        the candidates' log-probabilities after the prompt and after each path token:
        ``len(path) + 1`` readings from one pass over the prompt (the transformers
        backend's ``path_logprobs``)."""
        if all(not path for path in paths):  # one reading after each prompt: the cached
            return [[row] for row in self.next_token_logprobs(prompts, candidates)]  # prefix
        cand = [self.token_id(c) for c in candidates]
        results: list[list[dict[str, float]]] = []
        for prompt, path in zip(prompts, paths, strict=True):
            chat = as_chat(prompt)
            head = self.prompt_ids(chat)
            ids = self.prompt_ids(ChatPrompt(chat.messages, chat.prefix + "".join(path)))
            if ids[: len(head)] != head or len(ids) != len(head) + len(path):
                raise LLMError(f"{self.name}: the path {list(path)} does not extend the "
                               f"prompt's tokens one token each")  # fmt: skip
            options: dict[str, Any] = {}
            if len(head) > 1:
                options.update(static_prompt=self._tokens(head[:-1]), cache_static_prompt=False)
            try:
                out = self.generator.generate_batch(
                    [self._tokens(ids[len(head) - 1 :])], max_length=len(path) + 1,
                    sampling_topk=1, include_prompt_in_result=True, return_logits_vocab=True,
                    **options,
                )  # fmt: skip
            except (RuntimeError, ValueError) as exc:
                raise LLMError(f"{self.name}: forward pass failed: {exc}") from exc
            # the forced steps may come as one [tokens, vocab] array: rows, in order
            arrays = [np.asarray(step, dtype=np.float32) for step in out[0].logits]
            steps = [row for a in arrays for row in a.reshape(-1, a.shape[-1])]
            if len(steps) < len(path) + 1:
                raise LLMError(f"{self.name}: {len(steps)} logit rows for a path of "
                               f"{len(path)} tokens (expected {len(path) + 1})")  # fmt: skip
            results.append([
                {c: float(lps[t]) for c, t in zip(candidates, cand, strict=True)}
                for lps in map(_log_softmax, steps[: len(path) + 1])
            ])  # fmt: skip
        return results

    def continuation_logprobs(
        self, pairs: Sequence[tuple[str, str]], batch_size: int | None = None, quiet: bool = True
    ) -> list[list[float]]:
        """Per-token log-probabilities of each continuation after its context, on raw text
        (:func:`rarx.llm.likelihood.continuation_logprobs` has the semantics: context and
        continuation tokenized apart, special tokens the tokenizer puts first open the
        context, a context too long loses tokens from its start)."""
        tok = self.tokenizer
        size = max(1, int(batch_size or self.batch_size))
        head = list(tok("", add_special_tokens=True)["input_ids"])
        conts = [tok.encode(c, add_special_tokens=False) for _, c in pairs]
        rows: list[list[int]] = []
        for (context, _), cont in zip(pairs, conts, strict=True):
            ctx = head + tok.encode(context, add_special_tokens=False)
            if not ctx:
                raise ConfigError(
                    "a continuation needs a context of at least one token to be scored after; "
                    "got an empty context and a tokenizer that adds no BOS"
                )
            if len(ctx) + len(cont) > self.context_length:
                ctx = ctx[len(ctx) - max(1, self.context_length - len(cont)) :]
            rows.append(ctx + cont)
        out: list[list[float]] = [[] for _ in pairs]
        todo = [i for i in range(len(pairs)) if conts[i]]
        groups = length_groups([len(rows[i]) for i in todo], size, 1 << 30)
        for group in progress(groups, "continuations", unit="batch",
                              quiet=quiet or len(groups) < 2):  # fmt: skip
            idx = [todo[g] for g in group]
            try:
                scored = self.generator.score_batch(
                    [self._tokens(rows[i]) for i in idx], max_input_length=0
                )
            except (RuntimeError, ValueError) as exc:
                raise LLMError(f"{self.name}: scoring failed: {exc}") from exc
            for i, res in zip(idx, scored, strict=True):
                out[i] = [float(x) for x in res.log_probs[len(res.log_probs) - len(conts[i]) :]]
        return out


class _StopStrings:
    """A generate_batch callback: notes when the first token is out (the end of
    prefill) and stops a row once its text holds a stop string (the text is cut at it
    afterwards, as the transformers backend cuts it, so the text is the same and only
    the tokens after the cut are saved)."""

    def __init__(self, tokenizer: Any, stop: Sequence[str], control: set[int], rows: int):
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.control = control
        self.longest = max((len(s) for s in self.stop), default=0)
        self.ids: list[list[int]] = [[] for _ in range(rows)]

    def callback(self, first: list[float], start: float) -> Callable[[Any], bool]:
        def on_step(step: Any) -> bool:
            if not first:
                first.append(time.perf_counter())
            if not self.stop:
                return False
            ids = self.ids[step.batch_id]
            if step.token_id not in self.control:
                ids.append(step.token_id)
            text = self.tokenizer.decode(ids)
            found = [text.find(s) for s in self.stop]
            at = min((f for f in found if f >= 0), default=-1)
            # Stop once text past the earliest stop string is long enough that no other
            # stop string could still complete before it: the cut is then final.
            return at >= 0 and len(text) - at >= 2 * self.longest

        return on_step


__all__ = ["CTranslate2LLM", "length_groups"]
