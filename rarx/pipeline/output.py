"""Pipeline results as JSON lines and as the per-query explanation of ``--explain``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rarx.stages.common import ANSWER, ERROR, GATE
from rarx.types import QueryState


def jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def state_to_dict(state: QueryState, hits: int | None = None) -> dict[str, Any]:
    """One result line: the query, answer, ranking (rank from 1), context and trace."""
    ranking = None
    if state.ranking is not None:
        ranking = [
            {"rank": i, "docid": h.docid, "score": h.score}
            for i, h in enumerate(state.ranking.hits[:hits], 1)
        ]
    return {
        "qid": state.query.qid,
        "query": state.query.text,
        "answer": state.context.get(ANSWER),
        "error": state.context.get(ERROR),
        "ranking": ranking,
        "context": jsonable(state.context),
        "trace": [{"stage": e.stage, "event": e.event, **jsonable(e.data)} for e in state.trace],
    }


def to_jsonl(state: QueryState, hits: int | None = None) -> str:
    return json.dumps(state_to_dict(state, hits), ensure_ascii=False)


def _short(value: Any, width: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def answered_from(state: QueryState) -> str | None:
    """Where the answer came from, read off the trace: the last stage that wrote one
    (a QA-memory hit, a closed-book answer, or a reader after retrieval)."""
    for e in reversed(state.trace):
        if "answer" not in e.data:
            continue
        if e.event == "hit":
            score, threshold = e.data.get("best_score"), e.data.get("threshold")
            return f"the QA memory ({e.stage}: a stored question at {score} >= {threshold})"
        gate = state.context.get(GATE)
        if state.ranking is None:
            if isinstance(gate, Mapping) and gate.get("retrieve") is False:
                return f"the model's own memory ({e.stage}; the gate decided not to retrieve)"
            return f"the model's own memory ({e.stage}, closed book)"
        n = len(state.ranking.hits)
        return f"retrieval ({e.stage} read the top of {n} retrieved hit{'s' * (n != 1)})"
    return None


def explain(state: QueryState) -> str:
    """A readable account of what each stage did for one query."""
    lines = [f"# {state.query.qid}: {state.query.text}"]
    for e in state.trace:
        data = dict(e.data)
        call = data.pop("call", None)
        fields = ", ".join(f"{k}={_short(v, 80)}" for k, v in data.items())
        lines.append(f"  {e.stage:<10} {e.event:<9} {fields}")
        if isinstance(call, Mapping):
            lines.append(
                f"  {'':<10} {'llm':<9} {call.get('model')} ({call.get('role')}): "
                f"{call.get('prompt_tokens')} prompt + {call.get('completion_tokens')} new "
                f"tokens, {call.get('seconds')}s; output: {_short(call.get('output', ''), 100)}"
            )
    if state.ranking is not None:
        lines.append(f"  ranking: {', '.join(state.ranking.docids[:10]) or '(no hits)'}")
    if state.context.get(ERROR):
        lines.append(f"  error: {state.context[ERROR]}")
    lines.append(f"  answer: {state.context.get(ANSWER)!r}")
    source = answered_from(state)
    if source is not None:
        lines.append(f"  answered from: {source}")
    return "\n".join(lines)
