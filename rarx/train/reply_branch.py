"""A reply branch: tokens after a training sequence's reply that continue its prompt.

FIRST reads each identifier as the tokens the model writes after the prompt
(:mod:`rarx.llm.reply`): with Qwen's tokenizer ``[A`` .. ``[T`` right after the prompt,
and ``O``, ``Q`` after a ``[`` that follows the prompt. A training sequence
(prompt + the teacher's reply) passes through that second context only when the reply
opens with ``[O`` or ``[Q``, so the ``[`` is appended as a *branch*: its tokens sit at
the positions right after the prompt and attend to the prompt and to each other only,
never to the reply. One forward pass then gives the logits of both contexts, exactly as
the model reads them at inference, and the causal reply is untouched.

:func:`tree_layout` gives a batch's position ids and which keys each query sees;
:func:`attention_mask` turns that into the 4-D mask the model's attention takes. Both the
training step and the frozen-state caching pass (:mod:`rarx.train.frozen_states`) use
them, so cached states and trained layers see the same tree.
"""

from __future__ import annotations

from typing import Any

from rarx.errors import ConfigError


def tree_layout(mask: Any, prompt_len: Any, branch: Any) -> tuple[Any, Any]:
    """``(position_ids [B, W], allowed [B, W, W])`` for a batch whose real tokens
    (``mask`` [B, W], 1 = real) are contiguous, padded on either side. Row ``b`` is a prompt
    of ``prompt_len[b]`` tokens, its reply, then ``branch[b]`` branch tokens; ``allowed[b,
    q, k]``: query ``q`` attends to key ``k``. Branch tokens take the positions after the
    prompt and see the prompt and earlier branch tokens; every other real token is causal
    over the real tokens before it; a padding query sees itself only (no row of -inf)."""
    import torch

    real = mask.bool()
    width = real.shape[1]
    first = real.float().argmax(1, keepdim=True)  # each row's first real token
    t = torch.arange(width, device=real.device)[None, :] - first  # index within the row
    n = real.sum(1, keepdim=True)
    main = n - branch[:, None]  # prompt + reply
    in_branch = real & (t >= main)
    positions = torch.where(in_branch, prompt_len[:, None] + t - main, t).clamp(min=0)
    causal = torch.ones(width, width, dtype=torch.bool, device=real.device).tril()
    allowed = causal[None] & real[:, None, :]
    # A branch query sees no key past the prompt except the branch's own earlier tokens.
    after_prompt = real & (t >= prompt_len[:, None]) & ~in_branch
    allowed = allowed & ~(in_branch[:, :, None] & after_prompt[:, None, :])
    allowed = allowed | torch.eye(width, dtype=torch.bool, device=real.device)[None]
    return positions, allowed


def attention_mask(model: Any, allowed: Any) -> Any:
    """``allowed`` [B, W, W] as the 4-D mask ``model``'s attention reads as given: boolean
    for sdpa, additive for eager attention. Other attention kernels and sliding-window
    layers cannot take an arbitrary mask: a :class:`ConfigError`."""
    import torch

    config = getattr(model, "config", None)
    kind = getattr(config, "_attn_implementation", None) or "sdpa"
    if "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        raise ConfigError(
            f"{type(model).__name__} has sliding-window attention layers; a reply branch (the "
            f"'[' FIRST reads O and Q after, with Qwen-like tokenizers) needs one mask for "
            f"every layer; train a model without sliding windows, or with a tokenizer that "
            f"keeps '[' apart from the identifiers"
        )
    if kind == "sdpa":
        return allowed[:, None]
    if kind == "eager":
        dtype = next(model.parameters()).dtype
        zero = torch.zeros((), dtype=dtype, device=allowed.device)
        return torch.where(allowed, zero, torch.finfo(dtype).min)[:, None]
    raise ConfigError(
        f"attention implementation {kind!r} takes no arbitrary 4-D mask, which a reply branch "
        f"needs; load the model with attn_implementation='sdpa' or 'eager'"
    )


__all__ = ["attention_mask", "tree_layout"]
