"""Progress bars for long work, silenced by ``quiet`` (the CLI's ``--quiet``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


def progress(
    items: Iterable[T], desc: str, unit: str = "it", total: int | None = None, quiet: bool = False
) -> Iterable[T]:
    if quiet:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit, total=total, dynamic_ncols=True, mininterval=0.5)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


@contextmanager
def progress_bar(
    desc: str, unit: str = "it", total: int | None = None, quiet: bool = False
) -> Iterator[Any]:
    """A bar advanced by hand (``bar.update(n)``) when work finishes in chunks."""
    if quiet:
        yield _Silent()
        return
    from tqdm.auto import tqdm

    with tqdm(desc=desc, unit=unit, total=total, dynamic_ncols=True, mininterval=0.5) as bar:
        yield bar
