"""Candidate replies scored as the model would write them, whatever its tokenizer.

FIRST, listwise's first token, ``llm-choice``, the multiple-choice reader and the gate's
P(<RET>) all ask one question: how likely is it that the assistant's reply, after a
prefix (``[``, ``Answer:``, nothing), goes on with this candidate (an identifier, a
label, a marker)? Reading the candidate's next-token log-probability after a prompt
that ends with the prefix is right only where the tokenizer splits prefix and candidate
there. Qwen2.5's tokenizer writes ``[A`` .. ``[T`` as single tokens (all but ``[O`` and
``[Q``): after a prompt ending in the token ``[``, ``A`` is a token the model never
writes, so its log-probability is noise and a ranking built on it is silently wrong.

So a candidate is scored as the tokens the model would write. prompt + prefix +
candidate (+ ``follow``, the text after it in a reply, e.g. FIRST's ``]``) is tokenised;
the prompt's own tokens must come back unchanged and the candidate must end at a token
boundary, else no boundary works and it is a :class:`TokenizationError`. Reply tokens
that every candidate shares and that lie inside the prefix are *given* (the prompt
ends after them); each candidate's score is the sum of its remaining tokens'
log-probabilities, each read after the ones before it. Scores are log P(candidate |
prompt, given start of the prefix) under the model's own tokenisation, so they compare
across candidates: SmolLM2 reads ``A`` after ``[`` (one context); Qwen reads ``[A``
.. ``[T`` after the prompt and ``[`` + ``O`` for ``O`` (two contexts).

Only the LLM protocol is used (``render``, ``tokenize``, ``next_token_logprobs``: one
forward pass per context), so every backend gets this. A backend with the optional
``path_logprobs(prompts, paths, candidates)`` (the transformers and ctranslate2 backends)
reads all the contexts along one token path from a single pass over the prompt + path,
so Qwen's ``[`` + ``O`` costs no second pass over the prompt.

A plan (which tokens each candidate is read as) depends only on how the rendered prompt
ends; it is computed with the full prompt once and reused for prompts whose last
:data:`TAIL_CHARS` characters match (a chat template's closing text, a fixed footer),
since no token of a BPE vocabulary spans that far.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from rarx.llm.base import ChatPrompt, Prompt, TokenizationError, as_chat

TAIL_CHARS = 128


@dataclass(frozen=True)
class ReplyPlan:
    """How candidates are read after one prompt: the prompt is ended ``given`` into the
    reply prefix; ``tokens[c]`` are the tokens scored for candidate ``c`` after it."""

    given: str
    tokens: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", MappingProxyType(dict(self.tokens)))

    @property
    def contexts(self) -> dict[tuple[str, ...], list[str]]:
        """Each token prefix some candidate continues (``()``: right after ``given``),
        with the next tokens read there: one forward pass each."""
        out: dict[tuple[str, ...], list[str]] = {}
        for toks in self.tokens.values():
            for j, tok in enumerate(toks):
                nxt = out.setdefault(toks[:j], [])
                if tok not in nxt:
                    nxt.append(tok)
        return out

    @property
    def paths(self) -> list[tuple[str, ...]]:
        """The contexts no other one extends: reading along each covers all the contexts."""
        ctx = list(self.contexts)
        return [c for c in ctx if not any(len(o) > len(c) and o[: len(c)] == c for o in ctx)]

    @property
    def passes(self) -> int:
        return len(self.contexts)

    def as_dict(self) -> dict[str, Any]:
        return {"given": self.given, "tokens": {c: list(t) for c, t in self.tokens.items()}}


@dataclass(frozen=True)
class ReplyScores:
    """Per candidate, its log-probability (``-inf`` where a backend could not score one
    of its tokens) and each of its tokens with its own; ``passes``: forward passes spent
    on this prompt."""

    scores: Mapping[str, float]
    tokens: Mapping[str, tuple[tuple[str, float], ...]]
    passes: int


def _plan_error(llm: Any, what: str, fix: str) -> TokenizationError:
    return TokenizationError(
        f"no token boundary works for {getattr(llm, 'name', 'this LLM')}'s tokenizer: "
        f"{what}; scoring it anyway would read log-probabilities of tokens the model never "
        f"writes there (a silently wrong ranking). {fix}"
    )


def _tokenize(llm: Any, text: str) -> list[str]:
    tokenize = getattr(llm, "tokenize", None)
    if tokenize is None:
        raise TokenizationError(
            f"{getattr(llm, 'name', llm)!r} cannot split text into its tokens (no tokenize()); "
            f"candidate replies can only be scored with a backend that knows its tokenizer"
        )
    return list(tokenize(text))


def _render(llm: Any, prompt: ChatPrompt) -> str:
    render = getattr(llm, "render", None)
    if render is None:
        raise TokenizationError(
            f"{getattr(llm, 'name', llm)!r} cannot say what text the model reads (no "
            f"render()); candidate replies can only be scored where it can"
        )
    return str(render(prompt))


def plan_reply(llm: Any, prompt: Prompt, candidates: Sequence[str], follow: str = "") -> ReplyPlan:
    """The tokens each candidate is read as after ``prompt`` (its prefix included), checked
    against the LLM's tokenizer on the full rendered prompt."""
    cands = list(dict.fromkeys(candidates))
    if not cands or any(not c for c in cands):
        raise ValueError(f"candidates must be non-empty strings, got {list(candidates)}")
    chat = as_chat(prompt)
    prefix = chat.prefix
    base = _render(llm, ChatPrompt(chat.messages))
    head = _tokenize(llm, base)
    per: dict[str, list[str]] = {}
    for c in cands:
        reply = prefix + c
        pieces = _tokenize(llm, base + reply + follow)
        if pieces[: len(head)] != head:
            k = next((i for i, (a, b) in enumerate(zip(head, pieces, strict=False)) if a != b),
                     len(head) - 1)  # fmt: skip
            raise _plan_error(
                llm, f"the prompt's own tokens change when the reply {reply!r} follows it "
                f"(token {head[k]!r} becomes {pieces[k]!r})",
                "End the prompt or the reply prefix where the tokenizer always splits "
                "(e.g. a newline or a special token before the reply).",
            )  # fmt: skip
        toks: list[str] = []
        at = 0
        for piece in pieces[len(head) :]:
            if at >= len(reply):
                break
            toks.append(piece)
            at += len(piece)
        if at != len(reply):
            raise _plan_error(
                llm, f"the candidate {c!r} merges with the text after it ({follow!r}) into "
                f"the token {toks[-1]!r}",
                "Use identifiers or labels that end at a token boundary in the reply (for "
                "FIRST, a template whose identifiers are followed by punctuation or space).",
            )  # fmt: skip
        per[c] = toks
    # The prompt may end after reply tokens that every candidate shares and that lie
    # wholly inside the prefix (SmolLM2's "["); never inside a token.
    given: list[str] = []
    first = per[cands[0]]
    for j, tok in enumerate(first):
        if len("".join(first[: j + 1])) > len(prefix):
            break
        if any(len(t) <= j + 1 or t[j] != tok for t in per.values()):
            break
        given.append(tok)
    plan = ReplyPlan("".join(given), {c: tuple(t[len(given) :]) for c, t in per.items()})
    # Each piece read must be one token on its own too (a character split into several
    # byte tokens comes back as one piece): the backend scores pieces by their text.
    llm.check_single_tokens(list(dict.fromkeys(t for ts in plan.tokens.values() for t in ts)))
    for partial in plan.contexts:  # each context must read as those very tokens
        ctx = [*given, *partial]
        if _tokenize(llm, base + "".join(ctx)) != head + ctx:
            raise _plan_error(
                llm, f"the prompt ending in {''.join(ctx)!r} does not tokenise as "
                f"{ctx}, the tokens a candidate's reply starts with",
                "Choose another reply prefix.",
            )  # fmt: skip
    return plan


class ReplyReader:
    """Scores a fixed candidate set after many prompts; plans are reused by prompt tail."""

    def __init__(self, llm: Any, candidates: Sequence[str], follow: str = ""):
        self.llm = llm
        self.candidates = list(dict.fromkeys(candidates))
        self.follow = follow
        self._plans: dict[tuple[str, str], ReplyPlan] = {}

    def plan(self, prompt: Prompt) -> ReplyPlan:
        chat = as_chat(prompt)
        tail = _render(self.llm, ChatPrompt(chat.messages))[-TAIL_CHARS:]
        key = (tail, chat.prefix)
        if key not in self._plans:
            self._plans[key] = plan_reply(self.llm, chat, self.candidates, self.follow)
        return self._plans[key]

    def score(self, prompts: Sequence[Prompt]) -> list[ReplyScores]:
        """Every candidate's log-probability after each prompt: one batched
        ``next_token_logprobs`` call over all the prompts' contexts."""
        chats = [as_chat(p) for p in prompts]
        plans = [self.plan(c) for c in chats]
        along = getattr(self.llm, "path_logprobs", None)
        if along is not None:
            try:
                return self._score_paths(along, chats, plans)
            except NotImplementedError:
                pass
        requests: list[tuple[int, tuple[str, ...]]] = []
        asked: dict[str, None] = {}
        for i, plan in enumerate(plans):
            for partial, nxt in plan.contexts.items():
                requests.append((i, partial))
                asked.update(dict.fromkeys(nxt))
        if not requests:
            return []
        context_prompts = [
            ChatPrompt(chats[i].messages, plans[i].given + "".join(partial))
            for i, partial in requests
        ]
        rows = self.llm.next_token_logprobs(context_prompts, list(asked))
        at: dict[tuple[int, tuple[str, ...]], Mapping[str, float]] = dict(
            zip(requests, rows, strict=True)
        )
        return _finish(plans, at, [p.passes for p in plans])

    def _score_paths(
        self, along: Any, chats: Sequence[ChatPrompt], plans: Sequence[ReplyPlan]
    ) -> list[ReplyScores]:
        """One forward pass per path (Qwen's FIRST: one per window, not two)."""
        requests = [(i, path) for i, plan in enumerate(plans) for path in plan.paths]
        asked = list(dict.fromkeys(t for p in plans for nxt in p.contexts.values() for t in nxt))
        if not requests:
            return []
        rows = along([ChatPrompt(chats[i].messages, plans[i].given) for i, _ in requests],
                     [path for _, path in requests], asked)  # fmt: skip
        at: dict[tuple[int, tuple[str, ...]], Mapping[str, float]] = {}
        for (i, path), steps in zip(requests, rows, strict=True):
            for j, step in enumerate(steps):
                at.setdefault((i, path[:j]), step)
        return _finish(plans, at, [len(p.paths) for p in plans])


def _finish(
    plans: Sequence[ReplyPlan],
    at: Mapping[tuple[int, tuple[str, ...]], Mapping[str, float]],
    passes: Sequence[int],
) -> list[ReplyScores]:
    out = []
    for i, plan in enumerate(plans):
        scores: dict[str, float] = {}
        detail: dict[str, tuple[tuple[str, float], ...]] = {}
        for c, toks in plan.tokens.items():
            lps = tuple((t, float(at[i, toks[:j]].get(t, -math.inf)))
                        for j, t in enumerate(toks))  # fmt: skip
            detail[c] = lps
            scores[c] = math.fsum(lp for _, lp in lps)
        out.append(ReplyScores(MappingProxyType(scores), MappingProxyType(detail), passes[i]))
    return out


def reply_logprobs(
    llm: Any, prompts: Sequence[Prompt], candidates: Sequence[str], follow: str = ""
) -> list[dict[str, float]]:
    """Per prompt, each candidate's log-probability as the continuation of the reply
    (see the module's text): what ``next_token_logprobs`` gives where the candidate is
    one token after the prefix, and the right value where it is not."""
    return [dict(s.scores) for s in ReplyReader(llm, candidates, follow).score(prompts)]


__all__ = ["TAIL_CHARS", "ReplyPlan", "ReplyReader", "ReplyScores", "plan_reply", "reply_logprobs"]
