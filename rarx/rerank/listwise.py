"""LLM rerankers over sliding windows: ``listwise`` generates a permutation,
``first`` reads the identifiers' next-token log-probabilities (FIRST, one forward
pass per window).

Windows at the same step of different queries are independent, so they go to the
LLM as one batch; the steps of one query run in order (a window sees the order the
previous one left). A window whose prompt does not fit the context is split into
smaller sliding windows, never cut. A failed window keeps its prior order and is
recorded; ``strict`` turns that into a :class:`RerankError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rarx.errors import ConfigError, RarxError
from rarx.llm.base import LLM, ChatPrompt, LLMCall, TokenizationError
from rarx.rerank.base import (
    DocLookup,
    RerankError,
    RerankResult,
    check_pairs,
    passage_text,
    reordered,
)
from rarx.rerank.permutation import Repaired, order_by_scores, repair_permutation
from rarx.rerank.prompts import LISTWISE, ListwiseTemplate
from rarx.rerank.windows import sliding_windows
from rarx.types import Query, Ranking


@dataclass
class _QueryWork:
    """Mutable working state of one query while its windows run (never escapes)."""

    query: Query
    ranking: Ranking
    passages: list[str]  # capped texts, by original position
    order: list[int]  # current order of original positions (top-k only)
    events: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    work: _QueryWork
    start: int
    end: int


@dataclass(frozen=True)
class _Outcome:
    """What the LLM said about one window: a repaired order, or an error."""

    repaired: Repaired | None
    call: LLMCall


class WindowedReranker:
    """Shared sliding-window machinery; subclasses say how one batch of windows is ranked."""

    method: ClassVar[str] = ""

    def __init__(
        self,
        llm: LLM,
        k: int = 100,
        window: int = 20,
        stride: int = 10,
        *,
        passage_tokens: int = 300,
        template: ListwiseTemplate = LISTWISE,
        strict: bool = False,
        docs: DocLookup | None = None,
    ):
        if k < 0:
            raise ConfigError(f"k must be non-negative, got {k}")
        if passage_tokens < 1:
            raise ConfigError(f"passage_tokens must be at least 1, got {passage_tokens}")
        sliding_windows(window, window, stride, window)  # validates window and stride
        template.ids(window)  # enough identifiers for a full window
        self.llm = llm
        self.k = int(k)
        self.window = int(window)
        self.stride = int(stride)
        self.passage_tokens = int(passage_tokens)
        self.template = template
        self.strict = strict
        self.docs = docs

    # -- what subclasses provide -----------------------------------------------------

    def _reserve(self, n: int) -> int:
        """Context tokens to keep free after a window of ``n`` passages."""
        raise NotImplementedError

    def _rank(
        self, prompts: list[ChatPrompt], sizes: list[int], tokens: list[int]
    ) -> list[_Outcome]:
        raise NotImplementedError

    # -- the loop ------------------------------------------------------------------------

    def rerank(self, queries: Sequence[Query], rankings: Sequence[Ranking]) -> list[Ranking]:
        return [r.ranking for r in self.rerank_detailed(queries, rankings)]

    def rerank_detailed(
        self, queries: Sequence[Query], rankings: Sequence[Ranking]
    ) -> list[RerankResult]:
        check_pairs(queries, rankings)
        works = [self._start(q, r) for q, r in zip(queries, rankings, strict=True)]
        plans = [sliding_windows(len(w.order), self.window, self.stride, self.k) for w in works]
        for step in range(max((len(p) for p in plans), default=0)):
            jobs = [_Job(w, *p[step]) for w, p in zip(works, plans, strict=True) if step < len(p)]
            self._run(jobs)
        return [
            RerankResult(reordered(w.ranking, w.order), tuple(w.events)) if len(w.order) > 1
            else RerankResult(w.ranking, tuple(w.events))
            for w in works
        ]  # fmt: skip

    def _start(self, query: Query, ranking: Ranking) -> _QueryWork:
        top = ranking.hits[: self.k]
        # One candidate (or none) needs no LLM and no text.
        if len(top) < 2:
            return _QueryWork(query, ranking, [], list(range(len(top))))
        passages = [self.llm.truncate(passage_text(h, self.docs), self.passage_tokens) for h in top]
        return _QueryWork(query, ranking, passages, list(range(len(top))))

    def _prompt(self, job: _Job) -> ChatPrompt:
        texts = [job.work.passages[i] for i in job.work.order[job.start : job.end]]
        return self.template.build(job.work.query.text, texts)

    def _run(self, jobs: list[_Job]) -> None:
        fitting: list[tuple[_Job, ChatPrompt, int]] = []
        for job in jobs:
            prompt = self._prompt(job)
            n_tokens = self.llm.count_tokens(prompt)
            if n_tokens + self._reserve(job.end - job.start) <= self.llm.context_length:
                fitting.append((job, prompt, n_tokens))
            else:
                self._split(job, n_tokens)
        if not fitting:
            return
        sizes = [j.end - j.start for j, _, _ in fitting]
        prompts = [p for _, p, _ in fitting]
        tokens = [t for _, _, t in fitting]
        try:
            outcomes = self._rank(prompts, sizes, tokens)
        except TokenizationError:
            raise
        except RarxError as exc:
            if len(fitting) == 1:
                outcomes = [self._failed(prompts[0], tokens[0], exc)]
            else:  # retry one by one, so one bad window does not sink the batch
                outcomes = [
                    self._rank_or_fail(*a) for a in zip(prompts, sizes, tokens, strict=True)
                ]
        for (job, _, _), outcome in zip(fitting, outcomes, strict=True):
            self._apply(job, outcome)

    def _rank_or_fail(self, prompt: ChatPrompt, size: int, tokens: int) -> _Outcome:
        try:
            return self._rank([prompt], [size], [tokens])[0]
        except TokenizationError:
            raise
        except RarxError as exc:
            return self._failed(prompt, tokens, exc)

    def _failed(self, prompt: ChatPrompt, tokens: int, exc: Exception) -> _Outcome:
        call = LLMCall(self._kind, self.llm.name, self._render(prompt), "", tokens, 0, 0.0,
                       error=f"{type(exc).__name__}: {exc}")  # fmt: skip
        return _Outcome(None, call)

    def _split(self, job: _Job, tokens: int) -> None:
        n = job.end - job.start
        info = {"start": job.start, "end": job.end, "prompt_tokens": tokens,
                "context_length": self.llm.context_length}  # fmt: skip
        if n <= 2:
            error = (
                f"even {n} passages of at most {self.passage_tokens} tokens do not fit the "
                f"context of {self.llm.context_length} tokens; lower passage_tokens"
            )
            self._fail(job.work, "window_failed", {**info, "error": error})
            return
        half = math.ceil(n / 2)
        subs = sliding_windows(n, half, max(1, half // 2), n)
        job.work.events.append(("window_split", {**info, "into": [
            (job.start + s, job.start + e) for s, e in subs]}))  # fmt: skip
        for s, e in subs:
            self._run([_Job(job.work, job.start + s, job.start + e)])

    def _apply(self, job: _Job, outcome: _Outcome) -> None:
        where = {"start": job.start, "end": job.end}
        job.work.events.append(("llm_call", {**where, **outcome.call.as_dict()}))
        if outcome.repaired is None:
            self._fail(job.work, "window_failed", {**where, "error": outcome.call.error})
            return
        rep = outcome.repaired
        if not rep.complete:
            job.work.events.append(("permutation_repaired", {
                **where, "missing": rep.missing, "duplicates": rep.duplicates,
                "out_of_range": rep.out_of_range}))  # fmt: skip
        current = job.work.order[job.start : job.end]
        job.work.order[job.start : job.end] = [current[i] for i in rep.order]

    def _fail(self, work: _QueryWork, event: str, data: dict[str, Any]) -> None:
        if self.strict:
            raise RerankError(
                f"{self.method} rerank of query {work.query.qid!r} failed for window "
                f"{data.get('start')}..{data.get('end')}: {data.get('error')} "
                f"(without strict, the window keeps its prior order and the run continues)"
            )
        work.events.append((event, data))

    # -- helpers ---------------------------------------------------------------------------

    _kind: ClassVar[str] = ""

    def _render(self, prompt: ChatPrompt) -> str:
        render = getattr(self.llm, "render", None)
        return render(prompt) if render else prompt.as_text()


class ListwiseReranker(WindowedReranker):
    """RankGPT-style: generate ``[C] > [A] > ...`` and parse it."""

    method: ClassVar[str] = "listwise"
    _kind: ClassVar[str] = "generate"
    # "A] > [B" is about 4 tokens per identifier with BPE vocabularies; a little slack.
    tokens_per_id: ClassVar[int] = 4

    def _reserve(self, n: int) -> int:
        return self.tokens_per_id * n + 4

    def _rank(
        self, prompts: list[ChatPrompt], sizes: list[int], tokens: list[int]
    ) -> list[_Outcome]:
        outs = self.llm.generate(prompts, max_new_tokens=self._reserve(max(sizes)))
        outcomes = []
        for prompt, n, out in zip(prompts, sizes, outs, strict=True):
            parsed = self.template.parse(out.text, n)
            call = LLMCall(
                "generate", self.llm.name, self._render(prompt), out.text, out.prompt_tokens,
                out.completion_tokens, out.seconds,
                error=None if any(0 <= i < n for i in parsed) else "no passage identifier in reply",
                meta={"prefill_seconds": out.prefill_seconds, "finish_reason": out.finish_reason},
            )  # fmt: skip
            ok = call.error is None
            outcomes.append(_Outcome(repair_permutation(parsed, n) if ok else None, call))
        return outcomes


class FirstReranker(WindowedReranker):
    """FIRST: one forward pass per window; passages ordered by the log-probability of
    their identifier as the first token of the reply. Ties keep the prior order."""

    method: ClassVar[str] = "first"
    _kind: ClassVar[str] = "next_token_logprobs"

    def __init__(self, llm: LLM, *args: Any, **kwargs: Any):
        super().__init__(llm, *args, **kwargs)
        # Fail at load time, not mid-run, when identifiers are not single tokens.
        llm.check_single_tokens(self.template.ids(self.window))

    def _reserve(self, n: int) -> int:
        return 1

    def _rank(
        self, prompts: list[ChatPrompt], sizes: list[int], tokens: list[int]
    ) -> list[_Outcome]:
        ids = self.template.ids(max(sizes))
        start = time.perf_counter()
        rows = self.llm.next_token_logprobs(prompts, ids)
        seconds = (time.perf_counter() - start) / max(1, len(prompts))  # batch share
        outcomes = []
        for prompt, n, toks, row in zip(prompts, sizes, tokens, rows, strict=True):
            scores = [row.get(i, -math.inf) for i in ids[:n]]
            order = order_by_scores(scores)
            usable = any(math.isfinite(s) for s in scores)
            call = LLMCall(
                "next_token_logprobs", self.llm.name, self._render(prompt),
                " > ".join(f"[{ids[i]}]" for i in order), toks, 0, seconds,
                error=None if usable else "no identifier has a finite log-probability",
                logprobs={i: row.get(i, -math.inf) for i in ids[:n]},
            )  # fmt: skip
            outcomes.append(_Outcome(Repaired(tuple(order)) if usable else None, call))
        return outcomes
