"""What stages share: the context keys they agree on, the skip rules, LLM call records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rarx.llm.base import ChatPrompt, LLMOutput, Prompt
from rarx.types import Document, Hit, QueryState

# What stages read and write, named once (see each kind's needs/provides in its module).
RANKING = "ranking"  # not a context key: QueryState.ranking, as needs/provides name it
FINAL = "final"  # True: the answer stands (memory hit, gate answered); later stages skip
RETRIEVE = "retrieve"  # False: the gate decided no retrieval; retrieval stages skip
GATE = "gate"  # the gate's decision record: mode, scores, retrieve
ANSWER = "answer"  # the current answer (str)
ERROR = "error"  # set by the pipeline when a stage failed for this query
MEMORY = "memory"  # tuple of {question, answer, score} pairs from qa_memory
DEMOS = "demonstrations"  # tuple of {question, answer, score} examples from demos
DRAFT = "draft"  # the draft answer of arr


def skip_reason(state: QueryState, retrieval: bool) -> str | None:
    """Why a stage should leave this state alone, or None when it should run."""
    c = state.context
    if c.get(ERROR):
        return "an earlier stage failed"
    if c.get(FINAL):
        return "answer already final"
    if retrieval and c.get(RETRIEVE) is False:
        return "gate decided no retrieval"
    return None


def run_active(
    stage: str,
    batch: Sequence[QueryState],
    fn: Callable[[list[QueryState]], list[QueryState]],
    retrieval: bool = False,
) -> list[QueryState]:
    """Run ``fn`` on the states that are not to be skipped; the others pass through
    with a ``skipped`` trace event. Order is kept; ``fn`` returns one state per input."""
    out = list(batch)
    todo = []
    for i, state in enumerate(batch):
        reason = skip_reason(state, retrieval)
        if reason is None:
            todo.append(i)
        else:
            out[i] = state.traced(stage, "skipped", reason=reason)
    if todo:
        done = fn([batch[i] for i in todo])
        if len(done) != len(todo):
            raise RuntimeError(f"{stage}: returned {len(done)} states for {len(todo)}")
        for i, state in zip(todo, done, strict=True):
            out[i] = state
    return out


def prompt_text(prompt: Prompt) -> str:
    return prompt.as_text() if isinstance(prompt, ChatPrompt) else prompt


def llm_call(model: str, prompt: Prompt, out: LLMOutput, role: str = "") -> dict[str, Any]:
    """A ``generate`` call as trace data (what ``--explain`` shows)."""
    return {
        "kind": "generate",
        "role": role,
        "model": model,
        "prompt": prompt_text(prompt),
        "output": out.text,
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "seconds": round(out.seconds, 4),
    }


def passages(state: QueryState, n: int) -> list[Document]:
    """The documents of the first ``n`` hits that carry their text."""
    if state.ranking is None or n <= 0:
        return []
    return [h.doc for h in state.ranking.hits[:n] if h.doc is not None]


def hit_summary(hits: Sequence[Hit], n: int = 5) -> list[dict[str, Any]]:
    return [{"docid": h.docid, "score": round(h.score, 4)} for h in hits[:n]]
