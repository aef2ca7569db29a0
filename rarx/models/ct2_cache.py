"""CTranslate2 copies of causal LMs, converted once into rarx's cache.

The first use of a model through the ``ctranslate2`` backend converts its Hugging Face
weights (a named model's safetensors cache, a local path, or a directory ``rarx train``
wrote) with ``ctranslate2.converters.TransformersConverter`` into
``<cache>/ct2/<name>-<source hash>-<weights type>``. The key holds a fingerprint of the
source directory (the contents of its small files, config and tokenizer, and the size and
modification time of its weight files), so retraining into the same directory makes a new
copy (which, once complete, removes the previous one of its weight type:
:func:`remove_superseded`), and the stored weight type (compute types ``int8``,
``int8_float32``, ... all read one ``int8`` copy). A tokenizer without a start token
(Qwen's, or a Llama folder trained with one) gets its padding token named as the start
token CTranslate2 requires.

The conversion writes to a temporary directory beside the target, adds the model's own
tokenizer (``hf_tokenizer/``) and a ``rarx_ct2.json`` manifest last, and renames the whole
into place: an interrupted conversion leaves nothing at the target. A directory at the
target without a valid manifest, or whose manifest names another source, is an error
saying what to delete; it is never loaded or overwritten silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError, RarxError, require
from rarx.models.cache import cache_dir, causal_lm_dir, causal_lm_path, remove_tree
from rarx.models.registry import ResolvedModel, resolve_model

log = logging.getLogger(__name__)

MANIFEST = "rarx_ct2.json"
FORMAT = 1
TOKENIZER_DIR = "hf_tokenizer"
# Compute types CTranslate2 accepts, and the weight type each one reads from disk.
COMPUTE_TYPES = {
    "int8": "int8",
    "int8_float32": "int8",
    "int8_float16": "int8_float16",
    "int8_bfloat16": "int8_bfloat16",
    "int16": "int16",
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
}
_SMALL_FILE = 64 << 20  # files above this are fingerprinted by size and mtime, not content


class Ct2CacheError(RarxError):
    """A directory in the CTranslate2 cache that is not a complete conversion of its source."""


def weights_type(compute_type: str) -> str:
    """The weight type stored on disk for ``compute_type``."""
    if compute_type not in COMPUTE_TYPES:
        raise ConfigError(
            f"unknown CTranslate2 compute type {compute_type!r}; expected one of "
            f"{', '.join(COMPUTE_TYPES)}"
        )
    return COMPUTE_TYPES[compute_type]


def source_fingerprint(source: str | Path) -> str:
    """SHA-256 over the files the converter reads: each top-level file's name, the bytes
    of files up to 64 MB (configs, tokenizer, a small model's weights) and the size and
    modification time of larger ones (hashing gigabytes of weights on every load would
    cost seconds). Subdirectories are not part of a Hugging Face model (``rarx train``
    keeps its resumable ``checkpoints/`` there), so removing them keeps the conversion."""
    root = Path(source)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.iterdir() if p.is_file()):
        rel = path.name
        if rel.startswith("."):  # hidden files: locks, editor state
            continue
        st = path.stat()
        digest.update(rel.encode() + b"\0")
        if st.st_size <= _SMALL_FILE:
            digest.update(path.read_bytes())
        else:
            digest.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _slug(model: ResolvedModel) -> str:
    name = model.name if not model.local or model.gguf_file else Path(model.source).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "model"


def ct2_dir_for(model: ResolvedModel, source: str, compute_type: str, root: Path) -> Path:
    fingerprint = source_fingerprint(source)[:16]
    return root / f"{_slug(model)}-{fingerprint}-{weights_type(compute_type)}"


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a converted directory; :class:`Ct2CacheError` when it is missing,
    unreadable or incomplete."""
    fix = f"delete {path} and load the model again to reconvert it"
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise Ct2CacheError(
            f"{path} is in rarx's CTranslate2 cache but has no {MANIFEST}: it was not written "
            f"by rarx (or by an older version); {fix}"
        )
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Ct2CacheError(f"{manifest} is unreadable ({exc}); {fix}") from exc
    missing = [f for f in ("model.bin", "config.json", TOKENIZER_DIR) if not (path / f).exists()]
    if not isinstance(data, dict) or data.get("format") != FORMAT or missing:
        raise Ct2CacheError(
            f"{path} is not a complete rarx CTranslate2 conversion (format "
            f"{data.get('format') if isinstance(data, dict) else '?'}, expected {FORMAT}; "
            f"missing {missing or 'nothing'}); {fix}"
        )
    return data


def _hf_settings(source: str) -> dict[str, Any]:
    """What the backend needs from the source besides the weights: its context length
    and end-of-sequence ids, read as the transformers backend reads them."""
    transformers = require("transformers", "ctranslate2")
    config = transformers.AutoConfig.from_pretrained(source)
    try:
        gen = transformers.GenerationConfig.from_pretrained(source)
    except OSError:  # no generation_config.json: the model config's ids
        gen = transformers.GenerationConfig.from_model_config(config)
    eos = gen.eos_token_id
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    return {
        "max_position_embeddings": int(getattr(config, "max_position_embeddings", 2048)),
        "eos_token_ids": [int(i) for i in eos],
    }


def _check_vocabulary(out: Path, tokenizer: Any) -> None:
    """The converted vocabulary must give every tokenizer id its own token, so the ids
    rarx feeds (as token strings) are the ids the transformers backend reads."""
    vocab_file = out / "vocabulary.json"
    if not vocab_file.is_file():
        return  # newer converters may store it elsewhere; generation still checks ids
    vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    n = len(tokenizer)
    mine = tokenizer.convert_ids_to_tokens(list(range(n)))
    bad = [i for i in range(n) if i >= len(vocab) or vocab[i] != mine[i]]
    if bad:
        raise Ct2CacheError(
            f"the converted vocabulary differs from the tokenizer at {len(bad)} ids (first "
            f"{bad[:5]}); this model cannot run through the ctranslate2 backend with the "
            f"same token ids: use backend 'transformers'"
        )


def _name_special_tokens(out: Path, tokenizer: Any, source: str) -> None:
    """CTranslate2 loads a model only when its config names a start and an end token. Its
    Llama converter copies the tokenizer's BOS, ``null`` for a tokenizer without one
    (Qwen2's falls back to the padding token): name the padding (else the end) token
    there, as Qwen2's does. rarx feeds the tokenizer's own ids, so the name is never fed
    to the model. A tokenizer with neither is a clear error."""
    path = out / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    fallback = tokenizer.pad_token if tokenizer.pad_token is not None else tokenizer.eos_token
    missing = [k for k in ("bos_token", "eos_token") if config.get(k) is None]
    if "eos_token" in missing or (missing and fallback is None):
        raise Ct2CacheError(
            f"{source}: CTranslate2 needs the tokenizer to name an end-of-sequence token "
            f"(and a start or padding token), found bos={tokenizer.bos_token!r}, "
            f"eos={tokenizer.eos_token!r}, pad={tokenizer.pad_token!r}; set eos_token (the "
            f"token that ends the model's replies) in {source}/tokenizer_config.json, or use "
            f"backend 'transformers'"
        )
    if missing:
        config["bos_token"] = fallback
        path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def convert(source: str, target: Path, compute_type: str, quiet: bool = True) -> Path:
    """Convert the Hugging Face model at ``source`` into ``target`` (atomically)."""
    ct2 = require("ctranslate2", "ctranslate2")
    transformers = require("transformers", "ctranslate2")
    require("torch", "ctranslate2")  # the converter loads the weights with torch
    quantization = weights_type(compute_type)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    if not quiet:
        log.info("converting %s to CTranslate2 %s in %s (once)...", source, quantization, target)
    start = time.perf_counter()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        converter = ct2.converters.TransformersConverter(source, low_cpu_mem_usage=True)
        converter.convert(str(tmp), quantization=quantization, force=True)
        _name_special_tokens(tmp, tokenizer, source)
        tokenizer.save_pretrained(tmp / TOKENIZER_DIR)
        _check_vocabulary(tmp, tokenizer)
        manifest = {
            "format": FORMAT,
            "source": str(source),
            "source_sha256": source_fingerprint(source),
            "weights_type": quantization,
            "ctranslate2": ct2.__version__,
            "seconds": round(time.perf_counter() - start, 1),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **_hf_settings(source),
        }
        # The manifest is written last: its presence marks a complete conversion.
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same conversion first
            if not (target / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ct2_model_dir(
    model: str | ResolvedModel,
    compute_type: str = "int8",
    *,
    root: Path | None = None,
    convert_missing: bool = True,
    quiet: bool = True,
) -> Path:
    """The CTranslate2 directory for ``model`` (a name, path or resolved model) at
    ``compute_type``'s weight type, converted now if it is not cached yet."""
    resolved = resolve_model(model, kind="llm") if isinstance(model, str) else model
    if not resolved.local:
        raise ConfigError(
            f"model {resolved.name!r} is not on this machine; the ctranslate2 backend converts "
            f"local weights only: pass a local path or a packaged model name"
        )
    source = causal_lm_dir(resolved, quiet=quiet)
    root = root if root is not None else cache_dir() / "ct2"
    target = ct2_dir_for(resolved, source, compute_type, root)
    if target.exists():
        manifest = read_manifest(target)
        expected = source_fingerprint(source)
        if manifest.get("source_sha256") != expected:
            raise Ct2CacheError(
                f"{target} holds a conversion of another source (hash "
                f"{str(manifest.get('source_sha256'))[:16]}, expected {expected[:16]}); "
                f"delete {target} and load the model again to reconvert it"
            )
        return target
    if not convert_missing:
        raise Ct2CacheError(f"{resolved.name!r} has no CTranslate2 {compute_type} copy yet")
    convert(source, target, compute_type, quiet=quiet)
    remove_superseded(target)
    return target


def remove_superseded(target: Path) -> list[Path]:
    """Remove the conversions beside ``target`` (a complete one) of the same source
    directory and weight type but other weights: the source changed since (a model
    retrained into the same ``--out``), so nothing loads them again. Only complete
    conversions (with a manifest) are touched; a conversion still being written has a
    hidden temporary name. Returns the directories removed."""
    new = read_manifest(target)
    superseded: list[Path] = []
    for path in sorted(target.parent.iterdir()):
        if path == target or path.name.startswith(".") or not path.is_dir():
            continue
        try:
            old = read_manifest(path)
        except Ct2CacheError:
            continue  # incomplete or not rarx's: `rarx models cache` lists it, never removed here
        same = (old.get("source"), old.get("weights_type")) == (new["source"], new["weights_type"])
        if same and old.get("source_sha256") != new["source_sha256"]:
            superseded.append(path)
    freed, removed = 0, []
    for path in superseded:
        try:
            freed += remove_tree(path)
            removed.append(path)
        except FileNotFoundError:  # another process converting the same source removed it
            continue
        except OSError as exc:  # the new conversion is complete: a failed clean-up is no error
            log.warning("could not remove the superseded CTranslate2 copy %s: %s", path, exc)
    if removed:
        log.info(
            "removed %d stale CTranslate2 %s conversion(s) of %s, made before its weights "
            "changed (%s): %.2f GB freed",
            len(removed), new["weights_type"], new["source"],
            ", ".join(p.name for p in removed), freed / 1e9,
        )  # fmt: skip
    return removed


def ready_engines(model: ResolvedModel, root: Path | None = None) -> list[str]:
    """The CTranslate2 weight types converted from ``model``'s current weights (nothing
    converted or loaded): e.g. ``["int8"]``, or ``[]``."""
    root = root if root is not None else cache_dir() / "ct2"
    source = causal_lm_path(model)
    if not root.is_dir() or not (source / "config.json").is_file():
        return []
    stem = ct2_dir_for(model, str(source), "int8", root).name.rsplit("-", 1)[0]
    return sorted({p.name.rsplit("-", 1)[-1] for p in root.glob(stem + "-*")
                   if (p / MANIFEST).is_file()})  # fmt: skip


__all__ = [
    "COMPUTE_TYPES",
    "Ct2CacheError",
    "ct2_model_dir",
    "convert",
    "read_manifest",
    "ready_engines",
    "remove_superseded",
    "source_fingerprint",
    "weights_type",
]
