"""Progress bars for long work, silenced by ``quiet`` (the CLI's ``--quiet``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress(
    items: Iterable[T], desc: str, unit: str = "it", total: int | None = None, quiet: bool = False
) -> Iterable[T]:
    if quiet:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit, total=total, dynamic_ncols=True, mininterval=0.5)
