"""The listwise prompt as data, and the regex that reads a permutation back.

Listwise generation and FIRST share one template, so the two read the same text;
the assistant reply is opened with ``[`` for both: FIRST scores the identifier after it,
listwise generation continues from it (both end the prompt before ``[`` where the
tokenizer merges it with the identifiers: :mod:`rarx.llm.reply`). A task instruction,
when given, opens the user turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rarx.errors import ConfigError
from rarx.llm.base import ChatPrompt

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class ListwiseTemplate:
    """Fields are ``str.format`` templates over ``n`` (passages in the window),
    ``query`` and, for ``passage``, ``id`` and ``text``."""

    system: str
    header: str
    passage: str
    footer: str
    prefix: str  # opens the assistant reply
    identifiers: str = ALPHABET  # one character each; A..T covers a window of 20
    pattern: str = r"\[([A-Z])\]"  # one identifier in the reply
    ranking: str = "[{id}]"  # how the reply writes one identifier ...
    separator: str = " > "  # ... and what goes between two
    instruction: str = "{instruction}\n\n"  # opens the user turn when a task instruction is given

    def ids(self, n: int) -> list[str]:
        if n > len(self.identifiers):
            raise ConfigError(
                f"a window of {n} passages needs {n} identifiers, this template has "
                f"{len(self.identifiers)}; use a window of at most {len(self.identifiers)}"
            )
        return list(self.identifiers[:n])

    @property
    def after_id(self) -> str:
        """What the reply writes right after an identifier (``]``)."""
        return self.ranking.partition("{id}")[2]

    def build(self, query: str, passages: Sequence[str], instruction: str = "") -> ChatPrompt:
        """The prompt for one window; ``instruction`` (the task, e.g. RAR-b's "Retrieve
        the answer to the question.") opens the user turn when given."""
        n = len(passages)
        body = "\n".join(
            self.passage.format(id=i, text=t) for i, t in zip(self.ids(n), passages, strict=True)
        )
        head = self.instruction.format(instruction=instruction.strip()) if instruction else ""
        user = (head + self.header.format(n=n, query=query) + body
                + self.footer.format(n=n, query=query))  # fmt: skip
        return ChatPrompt(((("system", self.system),) if self.system else ()) + (("user", user),),
                          self.prefix)  # fmt: skip

    def reply_parts(self, ids: Sequence[str]) -> list[str]:
        """The reply naming ``ids`` best first, as written after ``prefix``, in pieces:
        identifiers at even positions, the text after each at odd ones
        (``["C", "] > [", "A", "]"]``). Joined, it is what listwise generation should
        write and what FIRST training teaches; the first identifier comes first, since
        FIRST reads it as the reply's first token."""
        head, _, tail = self.ranking.partition("{id}")
        if head != self.prefix:
            raise ConfigError(
                f"the reply prefix {self.prefix!r} must open an identifier as written in "
                f"ranking {self.ranking!r}, so the first token after it is an identifier"
            )
        parts: list[str] = []
        for j, i in enumerate(ids):
            parts += [i, tail + (self.separator + head if j < len(ids) - 1 else "")]
        return parts

    def parse(self, reply: str, n: int) -> list[int]:
        """Window positions in the order the reply names them (``prefix`` + reply is
        read, so a reply that continues ``[`` parses). Unknown identifiers are kept as
        out-of-range positions (-1) for :func:`repair_permutation` to report."""
        lookup = {c: i for i, c in enumerate(self.ids(n))}
        return [lookup.get(m, -1) for m in re.findall(self.pattern, self.prefix + reply)]


LISTWISE = ListwiseTemplate(
    system="You are a search assistant that orders passages by how well they answer a query.",
    header=(
        "Below are {n} passages, each marked with a letter in brackets. "
        "Order them by relevance to this search query: {query}\n\n"
    ),
    passage="[{id}] {text}",
    footer=(
        "\n\nSearch query: {query}\n"
        "Order the {n} passages above from most to least relevant to the query. "
        "Name every passage exactly once by its letter, in the form [A] > [B] > [C], "
        "and write nothing else."
    ),
    prefix="[",
)
