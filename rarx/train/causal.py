"""What every causal-LM objective shares: loading the base, choosing which parameters
learn, and saving the result as a plain model directory.

- :func:`load_causal_lm`: tokenizer and float32 model of a rarx model name, a local
  directory or a hub name (objectives whose prompts must be the inference prompts load
  through :class:`rarx.llm.transformers_backend.TransformersLLM` instead, which wraps the
  same model).
- :func:`trainable`: all weights, the top N decoder layers (and the final norm), LoRA
  adapters (on every linear layer, or on the top N layers only), and new token rows
  (peft's trainable tokens with LoRA; the row's gradient with full training).
- :func:`save_model`: LoRA merged, the KV cache switched back on, model and tokenizer
  written to the output directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError


@dataclass(frozen=True)
class LoraSpec:
    """peft's LoRA settings rarx varies per objective."""

    r: int = 16
    alpha: int | None = None  # None: 2 r
    dropout: float = 0.05

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"--lora-r must be at least 1, got {self.r}")


def load_causal_lm(base: str) -> tuple[Any, Any]:
    """Tokenizer and float32 model (the tokenizer must have an end token to end targets)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarx.models.cache import causal_lm_dir
    from rarx.models.registry import hub_error, resolve_model

    source = causal_lm_dir(resolve_model(base, kind="llm"), quiet=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except OSError as exc:
        raise hub_error(base, exc) from exc
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"{base}: the tokenizer has no end-of-sequence token to end targets")
    return tokenizer, model


def pad_id(tokenizer: Any) -> int:
    """The id batches are padded with: the pad token, else the end token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def top_layers(model: Any, train_layers: int) -> list[int] | None:
    """The indices of the top ``train_layers`` decoder layers (None for 0: all learn)."""
    if not train_layers:
        return None
    from rarx.train.frozen_states import split_layer

    split = split_layer(model, train_layers)
    return list(range(split, split + train_layers))


def trainable(
    model: Any, *, train_layers: int = 0, lora: LoraSpec | None = None,
    token_rows: Sequence[int] = (),
) -> Any:  # fmt: skip
    """The model as it trains: all weights; LoRA adapters (peft) on every linear layer;
    either restricted to the top ``train_layers`` decoder layers (with the final norm when
    the weights themselves learn). ``token_rows``: embedding rows that learn as well under
    LoRA (peft's trainable tokens; a tied head follows, an untied head learns whole)."""
    top = top_layers(model, train_layers)
    if lora is not None:
        return _with_lora(model, lora, top, token_rows)
    if top is not None:
        model.requires_grad_(False)
        decoder = model.model
        for i in top:
            decoder.layers[i].requires_grad_(True)
        if getattr(decoder, "norm", None) is not None:
            decoder.norm.requires_grad_(True)
    return model


def _with_lora(model: Any, spec: LoraSpec, top: list[int] | None, token_rows: Sequence[int]):  # noqa: ANN202
    from rarx.errors import require

    require("peft", "train")
    from peft import LoraConfig, get_peft_model

    targets: Any = "all-linear"
    if top is not None:  # peft wants module names when it is given layers
        import torch

        linear = model.model.layers.named_modules()
        targets = sorted({n.rsplit(".", 1)[-1] for n, m in linear
                          if isinstance(m, torch.nn.Linear)})  # fmt: skip
    extra: dict[str, Any] = {}
    if token_rows:
        emb, out = model.get_input_embeddings(), model.get_output_embeddings()
        names = {m: n for n, m in model.named_modules()}
        tied = out is not None and out.weight is emb.weight
        extra["trainable_token_indices"] = {names[emb].split(".")[-1]: list(token_rows)}
        if not tied and out is not None:
            extra["modules_to_save"] = [names[out].split(".")[-1]]
    config = LoraConfig(
        r=spec.r, lora_alpha=spec.alpha if spec.alpha is not None else 2 * spec.r,
        lora_dropout=spec.dropout, target_modules=targets, task_type="CAUSAL_LM",
        layers_to_transform=top, layers_pattern="layers" if top else None, **extra,
    )  # fmt: skip
    return get_peft_model(model, config)


def save_model(model: Any, tokenizer: Any, out: Path) -> Any:
    """Merge LoRA adapters (if any), write model and tokenizer to ``out``; returns the
    plain model."""
    out.mkdir(parents=True, exist_ok=True)
    final = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    final.config.use_cache = True
    final.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return final
