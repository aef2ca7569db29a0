"""A per-user cache of converted weights.

transformers dequantises a GGUF checkpoint on every load (25-40 s for SmolLM2 on a
laptop CPU). rarx converts it once to safetensors under the cache directory and loads
that afterwards (a few seconds).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # registry imports cache_dir from here
    from rarx.models.registry import ResolvedModel

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``RARX_CACHE`` if set, else ``$XDG_CACHE_HOME/rarx`` (``~/.cache/rarx``)."""
    if os.environ.get("RARX_CACHE"):
        return Path(os.environ["RARX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rarx"


_SAMPLE = 4 << 20  # bytes hashed at each of a GGUF file's start, middle and end


def _gguf_digest(path: Path) -> str:
    """A content fingerprint of a GGUF file: SHA-256 over its size and three 4 MB samples
    (the header with the model's metadata and tensor table, the middle, the end).

    Content, not modification time: a GGUF shipped in a pip package gets a new mtime on
    every install, and keying on it wrote a fresh copy of the weights for each virtual
    environment until the disk filled. GGUF files are written once, never edited in place."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        for start in sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)}):
            fh.seek(start)
            digest.update(fh.read(_SAMPLE))
    return digest.hexdigest()[:12]


def _gguf_key(model: ResolvedModel) -> str:
    assert model.gguf_file is not None
    gguf = Path(model.source) / model.gguf_file
    key = f"{gguf.stem}-{gguf.stat().st_size}-{_gguf_digest(gguf)}"
    return key if model.cache_dtype == "float32" else f"{key}-{model.cache_dtype}"


def tree_size(path: Path) -> int:
    """Bytes in the files under ``path`` (0 when it is gone)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


def remove_tree(path: Path) -> int:
    """Remove a cached directory and return the bytes freed. It is first renamed to a
    hidden temporary name, so no process ever finds a half-deleted copy at its name; an
    interrupted removal leaves a hidden leftover that ``rarx models cache --prune`` clears."""
    size = tree_size(path)
    doomed = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    os.replace(path, doomed)
    shutil.rmtree(doomed)
    return size


def causal_lm_path(model: ResolvedModel) -> Path:
    """Where ``from_pretrained`` loads ``model`` from: its own directory, or (for GGUF
    weights) its safetensors cache, whether or not that has been written yet."""
    if model.gguf_file is None:
        return Path(model.source)
    return cache_dir() / "models" / _gguf_key(model)


def causal_lm_dir(model: ResolvedModel, quiet: bool = False) -> str:
    """A directory ``from_pretrained`` loads quickly: the model's own, or a converted cache."""
    if model.gguf_file is None:
        return model.source
    target = causal_lm_path(model)
    if (target / "config.json").is_file():
        return str(target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not quiet:
        log.info(
            "converting %s to %s safetensors in %s (once)...",
            model.gguf_file, model.cache_dtype, target,
        )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(model.source, gguf_file=model.gguf_file)
    # transformers casts each tensor to ``dtype`` as it dequantises it and builds the model
    # on the meta device first (what low_cpu_mem_usage did before v5), so the peak stays
    # near two copies of the weights in that dtype.
    lm = AutoModelForCausalLM.from_pretrained(
        model.source, gguf_file=model.gguf_file, dtype=getattr(torch, model.cache_dtype)
    )
    # The weights are dequantised now; drop the GGUF quantiser so the copy saves plainly.
    lm.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}"
    try:
        lm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(target)
