"""Reader prompt templates, as data: what the reader is told, how passages, memory
pairs and demonstrations are laid out, and the pattern its answer is read with."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rarx.errors import ConfigError
from rarx.llm.base import ChatPrompt
from rarx.types import Document

_LABEL = re.compile(r"^(?:(?:draft|final|short)\s+)?answer\s*:\s*", re.I)


@dataclass(frozen=True)
class ReaderTemplate:
    name: str
    instruction: str  # the first line of the user turn
    question: str = "Question: {question}"
    passage: str = "[{i}] {text}"
    memory: str = "Q: {question}\nA: {answer}"
    draft: str = "Draft answer: {draft}"
    # The start of the reader's reply, written for it: a 135M model that is made to
    # begin "The answer is" answers; asked openly, it mostly repeats the question.
    prefix: str = "The answer is"
    # A regex whose first matching group is the answer (alternatives may each have one);
    # when it does not match, the first line is.
    answer_pattern: str = ""

    def __post_init__(self) -> None:
        if self.answer_pattern:
            re.compile(self.answer_pattern)

    def render(
        self,
        question: str,
        docs: Sequence[Document] = (),
        demos: Sequence[Mapping[str, Any]] = (),
        memory: Sequence[Mapping[str, Any]] = (),
        draft: str | None = None,
    ) -> ChatPrompt:
        """Demonstrations become earlier chat turns (user question, assistant answer):
        small chat models follow turns far better than examples pasted into one message."""
        messages: list[tuple[str, str]] = []
        for d in demos:
            messages.append(("user", f"{self.instruction}\n\n{self.question.format(**d)}"))
            messages.append(("assistant", f"{self.prefix} {d['answer']}".strip()))
        parts = [self.instruction]
        if docs:
            body = "\n".join(
                self.passage.format(i=i, text=d.contents) for i, d in enumerate(docs, 1)
            )
            parts.append("Passages:\n" + body)
        if memory:
            parts.append(
                "Related questions:\n" + "\n".join(self.memory.format(**m) for m in memory)
            )
        if draft is not None and self.draft:  # an empty draft slot: the draft is not shown
            parts.append(self.draft.format(draft=draft))
        parts.append(self.question.format(question=question))
        messages.append(("user", "\n\n".join(parts)))
        return ChatPrompt(tuple(messages), prefix=self.prefix)

    def parse(self, text: str) -> str:
        if self.answer_pattern:
            m = re.search(self.answer_pattern, text)
            if m:
                return next((g for g in m.groups() if g is not None), m.group(0)).strip()
        for line in text.strip().splitlines():
            line = line.strip().lstrip(":").strip()
            line = _LABEL.sub("", line)  # an echoed "Answer:" / "Draft answer:" label
            line = re.sub(r"^\[\d+\]\s*", "", line)  # a copied passage marker
            line = line.strip("\"'*` ").rstrip(".").strip("\"' ")
            if line:
                return line
        return ""


# An option letter, not the article "A": "(B)" anywhere, "answer is C" / "Answer: C" /
# "option C", or a letter that starts a line: B-E alone or before a word, A only alone or
# before "." ")" ":" "," (so "A plant needs light" is not read as option A).
_OPTION_LETTER = (
    r"(?m)\(([A-E])\)"
    r"|\b(?i:answer|option|choice)(?:\s+(?i:is))?\s*[:=]?\s*\(?([A-E])\b"
    r"|^[\s*\"'`]*([B-E])\b"
    r"|^[\s*\"'`]*(A)(?=[.):,]|[\s*\"'`]*$)"
)

_SHORT_ANSWER = "Answer the question with a short phrase of a few words. Give only the answer."

TEMPLATES: dict[str, ReaderTemplate] = {
    t.name: t
    for t in (
        ReaderTemplate("short-answer", _SHORT_ANSWER),
        ReaderTemplate(
            "multiple-choice",
            "Answer the multiple-choice question with the letter of the correct option only.",
            prefix="Answer:",
            answer_pattern=_OPTION_LETTER,
        ),
        ReaderTemplate(  # arr's draft: long-form, so that it can serve as a query
            "long-answer",
            "Answer the question in two or three sentences, with the facts that support "
            "the answer.",
        ),
        # arr's revision as the paper has it: the reader's own instruction, the draft shown
        # as written, and the reply opened with "Final answer:". Asked to "correct the
        # draft" and opened with "The answer is", qwen2.5-coder-1.5b copied the draft's
        # opening ("that the ...") into its answer: F1 0.33 against 0.58 this way, on 60
        # SciQ questions outside those evaluated (benchmarks/pipeline_arr.py --dev).
        ReaderTemplate("revise", _SHORT_ANSWER, prefix="Final answer:"),
        # arr's default revision: the same, the draft not shown. A 1.5B reviser shown a
        # wrong draft keeps it: F1 0.69 against 0.58 on those SciQ questions, 0.35 against
        # 0.15 on 60 SQuAD ones (the same drafts and passages; pipeline_arr.py --dev).
        ReaderTemplate("revise-passages", _SHORT_ANSWER, draft="", prefix="Final answer:"),
    )
}


def template(name: str) -> ReaderTemplate:
    if name not in TEMPLATES:
        raise ConfigError(f"unknown template {name!r}; expected one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]
