"""Loading the LLM an MCR scorer reads, through rarx's LLM layer."""

from __future__ import annotations

from typing import Any

DEFAULT_LLM = "smollm2-135m"


def scorer_llm(
    model: Any, device: str | None, batch_size: int | None, dtype: str | None = None
) -> tuple[str, Any]:
    """``(name, llm)``: ``model`` loaded with :func:`rarx.llm.load_llm` (``BACKEND:MODEL``
    names work; CUDA is used when present unless ``device`` says otherwise; ``dtype``,
    e.g. ``bfloat16``, for a local model's weights), or an already loaded LLM used as it
    is."""
    if model is None:
        model = DEFAULT_LLM
    if not isinstance(model, str):
        return str(getattr(model, "name", type(model).__name__)), model
    from rarx.llm import load_llm

    given = {"device": device, "batch_size": batch_size, "dtype": dtype}
    options = {k: v for k, v in given.items() if v}
    return model, load_llm(model, **options)


def llm_dtype(llm: Any) -> str | None:
    """The weights' dtype of a local model (``"bfloat16"``; a CTranslate2 model's compute
    type, ``"int8"``), None for a server backend."""
    inner = getattr(llm, "inner", llm)
    if getattr(inner, "compute_type", None):
        return str(inner.compute_type)
    model = getattr(inner, "model", None)
    dtype = getattr(model, "dtype", None)
    return None if dtype is None else str(dtype).removeprefix("torch.")
