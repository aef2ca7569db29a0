"""rarx's exceptions. The CLI prints a RarxError as one line and exits non-zero."""

from __future__ import annotations

from pathlib import Path


class RarxError(Exception):
    """Base class: the message says what is wrong, what was expected and the fix."""


class InputError(RarxError):
    """Bad user input: a malformed file, a missing field, a duplicate id."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class IndexFormatError(RarxError):
    """A path that is not a rarx index, or one written by an incompatible version."""


class IndexExistsError(RarxError):
    """Refusing to replace an existing index without ``overwrite``."""


class IndexCorruptError(IndexFormatError):
    """An index file that is missing, of the wrong size or checksum, or unreadable; the
    message names the index, the file and the fix (rebuild with ``--overwrite``)."""

    def __init__(self, message: str, index: str | Path | None = None, file: str | None = None):
        self.index = str(index) if index is not None else None
        self.file = file  # the (first) damaged file, relative to the index
        self.problems: list = []  # rarx.index.integrity.Problem, each damaged file
        super().__init__(message)


class LockedError(RarxError):
    """Another process is writing the same path (it holds the build lock)."""


class MissingDependencyError(RarxError):
    """An optional backend is not installed; the message names the extra."""

    def __init__(self, module: str, extra: str):
        super().__init__(f"{module} is not installed; install it with: pip install 'rarx[{extra}]'")


class ModelNotFoundError(RarxError):
    """A named model whose weights are not on this machine."""


class ChecksumError(RarxError):
    """Downloaded or assembled weights whose hash is not the expected one."""


class ConfigError(RarxError):
    """An invalid option, parameter or pipeline setting."""


class ServerError(RarxError):
    """A ``rarx serve`` server refused a request or could not be reached: ``status`` is
    the HTTP status (None when no answer came), ``detail`` the server's message."""

    def __init__(self, message: str, status: int | None = None, detail: object = None,
                 retry_after: float | None = None):  # fmt: skip
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def require(module: str, extra: str):  # noqa: ANN201 - returns the module
    """Import an optional dependency or raise a MissingDependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module, extra) from exc
