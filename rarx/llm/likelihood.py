"""Log-probabilities of continuations under a local causal LM (raw text, no chat template).

``continuation_logprobs(llm, pairs)`` gives, for each ``(context, continuation)``, the
log-probability of every continuation token given the context and the tokens before
it: what multiple-choice likelihood scoring needs. Context and continuation are
tokenized apart and joined (the continuation keeps its own leading space), so every
option of a question is scored after the same context tokens.

Each distinct context is run once: contexts go through the model left-padded in a
batch (positions counted over real tokens, as
:meth:`TransformersLLM.next_token_logprobs` does), their key/value cache is then
repeated for each continuation, and continuations run right-padded on top of it. A
question's options thus cost their own tokens only, which matters for long contexts
with many options (RAR-b's TempReason, QuAIL, SpartQA).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from rarx.errors import ConfigError, require
from rarx.llm.base import LLMError
from rarx.progress import progress


def raw_model(llm: Any) -> Any:
    """The local LLM behind ``llm`` (a resources wrapper keeps it as ``inner``): a
    transformers model, or a backend with its own ``continuation_logprobs``."""
    inner = getattr(llm, "inner", llm)
    if not callable(getattr(inner, "continuation_logprobs", None)) and not all(
        hasattr(inner, a) for a in ("model", "tokenizer", "device")
    ):
        raise ConfigError(
            f"{getattr(llm, 'name', llm)!r} gives no raw logits: continuation log-probabilities "
            "need a local model (backend 'transformers' or 'ctranslate2'), not a server backend"
        )
    return inner


def _cache_api(model: Any) -> str:
    # transformers 5.x renames the forward argument `past_key_values` to `cache`.
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _select(cache: Any, rows: Any) -> Any:
    """A new cache holding ``rows`` (batch indices, repeats allowed) of ``cache``."""
    from transformers import DynamicCache

    layers = [(entry[0][rows], entry[1][rows]) for entry in cache]
    try:
        return DynamicCache(layers)
    except TypeError:  # transformers 4.x; 5.x (typed here) has no from_legacy_cache
        return DynamicCache.from_legacy_cache(tuple(layers))  # type: ignore[attr-defined]


def continuation_logprobs(
    llm: Any,
    pairs: Sequence[tuple[str, str]],
    batch_size: int | None = None,
    quiet: bool = True,
) -> list[list[float]]:
    """Per-token log-probabilities of each continuation after its context.

    ``batch_size`` bounds the rows of every forward pass (contexts, then continuations).
    A context that would push a row past the model's context length loses tokens from
    its start. A continuation of no tokens gives an empty list (its sum is 0)."""
    inner = raw_model(llm)
    own = getattr(inner, "continuation_logprobs", None)
    if callable(own):  # a backend that scores continuations itself (ctranslate2)
        return own(pairs, batch_size, quiet)
    torch = require("torch", "llm")
    tok, model, device = inner.tokenizer, inner.model, inner.device
    size = max(1, batch_size or int(getattr(inner, "batch_size", 8)))
    limit = int(getattr(inner, "context_length", 0) or 0)
    # Special tokens the tokenizer puts before a text (a BOS for some models, none for
    # SmolLM2) open every context.
    head = list(tok("", add_special_tokens=True)["input_ids"])
    conts = [tok.encode(c, add_special_tokens=False) for _, c in pairs]
    groups: dict[str, list[int]] = {}
    for i, (context, _) in enumerate(pairs):
        groups.setdefault(context, []).append(i)
    contexts: dict[str, list[int]] = {}
    for context, members in groups.items():
        ids = head + tok.encode(context, add_special_tokens=False)
        if not ids:
            raise ConfigError(
                "a continuation needs a context of at least one token to be scored after; "
                "got an empty context and a tokenizer that adds no BOS"
            )
        longest = max(len(conts[i]) for i in members)
        if limit and len(ids) + longest > limit:
            ids = ids[len(ids) - max(1, limit - longest) :]
        contexts[context] = ids
    kw = _cache_api(model)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    out: list[list[float]] = [[] for _ in pairs]
    order = sorted(contexts, key=lambda c: len(contexts[c]))

    def forward(**inputs: Any) -> Any:
        try:
            with torch.inference_mode():
                return model(**inputs)
        except (RuntimeError, ValueError) as exc:
            raise LLMError(f"{getattr(inner, 'name', '?')}: forward pass failed: {exc}") from exc

    starts = range(0, len(order), size)
    for start in progress(starts, "contexts", unit="batch", quiet=quiet or len(starts) < 2):
        batch = order[start : start + size]
        width = max(len(contexts[c]) for c in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, c in enumerate(batch):
            seq = contexts[c]
            ids[r, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[r, width - len(seq) :] = 1
        lengths = mask.sum(-1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ids, mask, positions, lengths = (t.to(device) for t in (ids, mask, positions, lengths))
        res = forward(input_ids=ids, attention_mask=mask, position_ids=positions,
                      use_cache=True, logits_to_keep=1)  # fmt: skip
        cache = getattr(res, "cache", None) or res.past_key_values
        first = torch.log_softmax(res.logits[:, -1, :].float(), dim=-1)  # next-token lps
        rows = [(r, i) for r, c in enumerate(batch) for i in groups[c] if conts[i]]
        rows.sort(key=lambda x: len(conts[x[1]]))
        for at in range(0, len(rows), size):
            chunk = rows[at : at + size]
            sel = torch.tensor([r for r, _ in chunk], dtype=torch.long, device=device)
            n = max(len(conts[i]) for _, i in chunk)
            cids = torch.full((len(chunk), n), pad, dtype=torch.long)
            cmask = torch.zeros((len(chunk), n), dtype=torch.long)
            for k, (_, i) in enumerate(chunk):
                cids[k, : len(conts[i])] = torch.tensor(conts[i], dtype=torch.long)
                cmask[k, : len(conts[i])] = 1
            cids, cmask = cids.to(device), cmask.to(device)
            lps = [first[sel].gather(-1, cids[:, :1])]  # the first token, from the context
            if n > 1:
                res = forward(
                    input_ids=cids[:, :-1], attention_mask=torch.cat([mask[sel], cmask[:, :-1]], 1),
                    position_ids=lengths[sel, None] + torch.arange(n - 1, device=device),
                    **{kw: _select(cache, sel)}, use_cache=True,
                )  # fmt: skip
                step = torch.log_softmax(res.logits.float(), dim=-1)
                lps.append(step.gather(-1, cids[:, 1:, None]).squeeze(-1))
            picked = torch.cat(lps, 1).cpu()
            for k, (_, i) in enumerate(chunk):
                out[i] = picked[k, : len(conts[i])].tolist()
    return out


__all__ = ["continuation_logprobs", "raw_model"]
