"""The dtype the frozen lower layers run in during the caching pass
(:mod:`rarx.train.frozen_states`).

The caching pass is one forward pass of the layers below the split per training
example, without gradients: on a CPU it dominates top-layer training of a 1.5B model.
Where the hardware computes bfloat16 natively (a CPU with AVX-512 BF16 or AMX, a GPU
with bfloat16) it runs in bfloat16, about twice as fast; the states it stores, the
layers that learn and the head stay float32. Elsewhere torch emulates bfloat16 matrix
products, slower than float32, so ``auto`` keeps float32 there and says why.

Only the copies the pass computes with are bfloat16: :func:`running_in` swaps each
parameter's data for a bfloat16 copy and puts the original float32 tensor back after,
so the model that trains and is saved keeps its exact weights.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from rarx.errors import ConfigError

log = logging.getLogger(__name__)

CACHE_DTYPES = ("auto", "float32", "bfloat16")  # auto: bfloat16 where the hardware has it


@dataclass(frozen=True)
class CacheDtype:
    """The dtype the caching pass ran in (``name``), what was asked, and why."""

    name: str  # float32 | bfloat16
    asked: str
    why: str

    def report(self) -> dict[str, str]:
        """What the card records (under ``state_cache``)."""
        return {"dtype": self.name, "dtype_asked": self.asked, "dtype_why": self.why}


FLOAT32 = CacheDtype("float32", "float32", "asked for")


def cache_dtype_setting() -> Any:
    """The ``cache_dtype`` field of every objective that trains top layers (one help)."""
    from rarx.train.common import setting

    return setting(
        "auto", "With a state cache: the dtype the frozen layers run in during the caching "
        "pass (auto: bfloat16 on a CPU with AVX-512 BF16 or AMX or a GPU with bfloat16, "
        "float32 elsewhere); the states and the layers that learn stay float32.",
        choices=CACHE_DTYPES,
    )  # fmt: skip


def bf16_is_fast(device: str, cpuinfo: str | None = None) -> tuple[bool, str]:
    """Whether ``device`` computes bfloat16 natively, and the reason either way.

    A CPU counts when its flags (``cpuinfo``, else ``/proc/cpuinfo``) list ``avx512_bf16``
    or ``amx_bf16`` (torch's own check where that file cannot be read) and torch has
    oneDNN, which runs bfloat16 matrix products on those units."""
    import torch

    if device.startswith("cuda"):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return True, "the GPU computes bfloat16"
        return False, "the GPU has no bfloat16 support"
    from rarx.llm.transformers_backend import cpu_has_bf16

    has = cpu_has_bf16(cpuinfo)
    if has is None:  # no /proc/cpuinfo (not Linux): torch's cpuinfo-based checks
        checks = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported",
                                                         "_is_amx_tile_supported")]  # fmt: skip
        known = [bool(c()) for c in checks if c is not None]
        if not known:
            return False, "the CPU's instruction sets could not be read"
        has = any(known)
    if not has:
        return False, ("the CPU has no bfloat16 units (no avx512_bf16 or amx_bf16): "
                       "torch would emulate them, slower than float32")  # fmt: skip
    if not torch.backends.mkldnn.is_available():
        return False, "this torch build has no oneDNN to use the CPU's bfloat16 units"
    return True, "the CPU has bfloat16 units (avx512_bf16 or amx_bf16)"


def choose_cache_dtype(asked: str, device: str, cpuinfo: str | None = None) -> CacheDtype:
    """``auto``: bfloat16 where :func:`bf16_is_fast`, else float32; ``float32`` and
    ``bfloat16`` as asked (bfloat16 without the units with a warning: it is slower)."""
    if asked not in CACHE_DTYPES:
        raise ConfigError(f"--cache-dtype must be one of {', '.join(CACHE_DTYPES)}, got {asked!r}")
    if asked == "float32":
        return FLOAT32
    fast, why = bf16_is_fast(device, cpuinfo)
    if asked == "bfloat16":
        if not fast:
            log.warning("--cache-dtype bfloat16: %s; --cache-dtype auto would use float32", why)
        return CacheDtype("bfloat16", asked, "asked for" if fast else f"asked for, though {why}")
    return CacheDtype("bfloat16" if fast else "float32", asked, why)


def torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


@contextlib.contextmanager
def running_in(modules: Iterable[Any], dtype: Any) -> Iterator[None]:
    """Inside: the floating-point parameters of ``modules`` hold ``dtype`` copies of their
    data; after (also on an error): their original tensors again, untouched. A parameter
    shared by two modules (a tied embedding) is swapped once."""
    kept: dict[int, tuple[Any, Any]] = {}
    for m in modules:
        for p in m.parameters():
            if id(p) not in kept and p.is_floating_point() and p.dtype != dtype:
                kept[id(p)] = (p, p.data)
    try:
        for p, data in kept.values():
            p.data = data.to(dtype)
        yield
    finally:
        for p, data in kept.values():
            p.data = data
