"""Deterministic train / dev / test splits of a QA source by question id.

Training data builders (``rarx train data gate``) and evaluators (``rarx eval
adaptive``) both split with :func:`split_of`, so an evaluated question is never a
training question: the split of a question depends on nothing but its source and id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TypeVar

from rarx.errors import ConfigError

SPLITS = ("train", "dev", "test")
# Shares of each source: test 30 %, dev 10 %, train the rest.
TEST_SHARE = 30
DEV_SHARE = 10

T = TypeVar("T")


def split_key(source: str, qid: str) -> str:
    """A stable hash of a question's identity (also the order questions are taken in)."""
    return hashlib.sha256(f"{source}/{qid}".encode()).hexdigest()


def split_of(source: str, qid: str) -> str:
    bucket = int(split_key(source, qid)[:8], 16) % 100
    if bucket < TEST_SHARE:
        return "test"
    return "dev" if bucket < TEST_SHARE + DEV_SHARE else "train"


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def select(
    items: Iterable[T], source: str, split: str, qid_of=lambda x: x.qid, limit: int | None = None
) -> list[T]:
    """The items of ``split`` in hash order (a fixed pseudo-random order), at most ``limit``."""
    check_split(split)
    chosen = [x for x in items if split_of(source, qid_of(x)) == split]
    chosen.sort(key=lambda x: split_key(source, qid_of(x)))
    return chosen[:limit] if limit is not None else chosen


def assert_disjoint(train: Sequence[tuple[str, str]], held_out: Sequence[tuple[str, str]]) -> None:
    """Raise unless no (source, qid) of ``train`` is among ``held_out``."""
    shared = set(train) & set(held_out)
    if shared:
        some = ", ".join(f"{s}/{q}" for s, q in sorted(shared)[:5])
        raise AssertionError(f"{len(shared)} training questions are held out ({some})")
