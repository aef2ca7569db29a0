"""LLM rerankers over sliding windows: ``listwise`` generates a permutation,
``first`` reads the identifiers' log-probabilities as the reply's first token (FIRST,
one forward pass per window where the tokenizer splits ``[`` from the identifier, two
where it merges some, as Qwen's does: :mod:`rarx.llm.reply`).

FIRST's ``orders`` option scores each window in several candidate orders and averages
each passage's normalised identifier log-probability (permutation self-consistency),
at ``orders`` times the forward passes; the trace records them. Its ``calibrate`` option
subtracts the model's prior over the identifiers, read from a content-free window
(contextual calibration, Zhao et al. 2021), at one extra forward pass per window size
(``query-free``) or per query and window size (``query``).

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
from rarx.llm.reply import ReplyReader
from rarx.rerank.base import (
    DocLookup,
    RerankError,
    RerankResult,
    check_pairs,
    passage_text,
    reordered,
)
from rarx.rerank.permutation import (
    Repaired,
    combine_orders,
    log_softmax,
    order_by_scores,
    repair_permutation,
    window_orders,
)
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
class _Window:
    """One window as sent: its prompt, size, prompt tokens, and what it was built from."""

    prompt: ChatPrompt
    size: int
    tokens: int
    query: str
    texts: tuple[str, ...]


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
        instruction: str = "",
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
        self.instruction = instruction.strip()

    # -- what subclasses provide -----------------------------------------------------

    def _reserve(self, n: int) -> int:
        """Context tokens to keep free after a window of ``n`` passages."""
        raise NotImplementedError

    def _rank(self, windows: list[_Window]) -> list[_Outcome]:
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

    def build(self, query: str, texts: Sequence[str]) -> ChatPrompt:
        """The prompt for one window (the template, with this reranker's instruction)."""
        return self.template.build(query, texts, instruction=self.instruction)

    def _run(self, jobs: list[_Job]) -> None:
        fitting: list[tuple[_Job, _Window]] = []
        for job in jobs:
            texts = tuple(job.work.passages[i] for i in job.work.order[job.start : job.end])
            prompt = self.build(job.work.query.text, texts)
            n_tokens = self.llm.count_tokens(prompt)
            if n_tokens + self._reserve(job.end - job.start) <= self.llm.context_length:
                window = _Window(prompt, len(texts), n_tokens, job.work.query.text, texts)
                fitting.append((job, window))
            else:
                self._split(job, n_tokens)
        if not fitting:
            return
        windows = [w for _, w in fitting]
        try:
            outcomes = self._rank(windows)
        except TokenizationError:
            raise
        except RarxError as exc:
            if len(fitting) == 1:
                outcomes = [self._failed(windows[0], exc)]
            else:  # retry one by one, so one bad window does not sink the batch
                outcomes = [self._rank_or_fail(w) for w in windows]
        for (job, _), outcome in zip(fitting, outcomes, strict=True):
            self._apply(job, outcome)

    def _rank_or_fail(self, window: _Window) -> _Outcome:
        try:
            return self._rank([window])[0]
        except TokenizationError:
            raise
        except RarxError as exc:
            return self._failed(window, exc)

    def _failed(self, window: _Window, exc: Exception) -> _Outcome:
        call = LLMCall(self._kind, self.llm.name, self._render(window.prompt), "", window.tokens,
                       0, 0.0, error=f"{type(exc).__name__}: {exc}")  # fmt: skip
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

    def __init__(self, llm: LLM, *args: Any, **kwargs: Any):
        super().__init__(llm, *args, **kwargs)
        self._reader = ReplyReader(llm, self.template.ids(self.window), self.template.after_id)

    def _opening(self, prompt: ChatPrompt) -> str:
        """How much of the reply prefix the prompt ends with: all of it where the
        tokenizer splits it from the identifiers, less where it merges them (Qwen's
        ``[A``), so the model writes the reply's first token itself. A backend that
        cannot tokenise keeps the whole prefix."""
        try:
            return self._reader.plan(prompt).given
        except TokenizationError:
            return prompt.prefix

    def _rank(self, windows: list[_Window]) -> list[_Outcome]:
        openings = [self._opening(w.prompt) for w in windows]
        prompts = [ChatPrompt(w.prompt.messages, o) for w, o in zip(windows, openings, strict=True)]
        most = max(w.size for w in windows)
        outs = self.llm.generate(prompts, max_new_tokens=self._reserve(most))
        outcomes = []
        prefix = self.template.prefix
        for w, prompt, opening, out in zip(windows, prompts, openings, outs, strict=True):
            n = w.size
            reply = opening + out.text  # the reply from the template's prefix on
            parsed = self.template.parse(reply[len(prefix):] if reply.startswith(prefix)
                                         else reply, n)  # fmt: skip
            call = LLMCall(
                "generate", self.llm.name, self._render(prompt), out.text, out.prompt_tokens,
                out.completion_tokens, out.seconds,
                error=None if any(0 <= i < n for i in parsed) else "no passage identifier in reply",
                meta={"prefill_seconds": out.prefill_seconds, "finish_reason": out.finish_reason},
            )  # fmt: skip
            ok = call.error is None
            outcomes.append(_Outcome(repair_permutation(parsed, n) if ok else None, call))
        return outcomes


CALIBRATIONS = ("none", "query-free", "query")
# The content-free input: no passage, no topic, same format. Not Zhao et al.'s "N/A": its
# letters are identifiers (qwen's prior over twenty "[X] N/A" lines put N far first).
CONTENT_FREE = "..."
_QUERY_PRIORS = 4096  # per-query priors kept (query mode), oldest dropped first


@dataclass(frozen=True)
class _Prior:
    """An identifier log-prior of one window size: log-softmax over its identifiers."""

    logprobs: tuple[float, ...]
    passes: int  # forward passes it cost (charged to the first window that used it)


class FirstReranker(WindowedReranker):
    """FIRST: passages ordered by the log-probability of their identifier as the start
    of the reply, read at the tokenizer's real boundary (:mod:`rarx.llm.reply`); one
    forward pass per window and distinct reply token prefix. Ties keep the prior order.

    ``orders`` > 1 scores each window in that many candidate orders
    (:func:`~rarx.rerank.permutation.window_orders`: rotations, then reversed ones) and
    ranks by each passage's mean log-softmax-normalised identifier log-probability, a
    remedy for position bias at ``orders`` times the cost.

    ``calibrate`` removes the model's prior over the identifiers themselves (a model that
    writes ``[A`` whatever the passages): the window's prompt is scored once with every
    passage replaced by :data:`CONTENT_FREE`, and each identifier's log-probability in
    that prompt (log-softmax over the window's identifiers) is subtracted from its
    log-probability in every real window of that size before ranking (in each order,
    before they are combined). ``query-free`` puts :data:`CONTENT_FREE` in the query's
    place too: what is removed is the prior of the template, instruction and window size
    alone, read once per window size for the reranker's life (one extra forward pass per
    window size, however many queries); it is the default remedy because the bias seen
    (qwen's top pick piling on A, B and M whatever the passages) does not follow the
    query. ``query`` keeps the query, so a query that itself favours a letter ("option
    B") is calibrated too, at one extra forward pass per query and window size."""

    method: ClassVar[str] = "first"
    _kind: ClassVar[str] = "next_token_logprobs"

    def __init__(
        self, llm: LLM, *args: Any, orders: int = 1, calibrate: str = "none", **kwargs: Any
    ):
        super().__init__(llm, *args, **kwargs)
        if orders < 1:
            raise ConfigError(f"orders must be at least 1 (1: each window as it is), got {orders}")
        if calibrate not in CALIBRATIONS:
            raise ConfigError(
                f"calibrate must be one of {', '.join(CALIBRATIONS)}, got {calibrate!r} "
                f"('query-free': one content-free window per window size; 'query': one per "
                f"query and window size)"
            )
        self.orders = int(orders)
        self.calibrate = calibrate
        # (window size, query or None) -> prior; query-free entries live as long as the
        # reranker, per-query ones are capped (a server sees unbounded queries).
        self._priors: dict[tuple[int, str | None], _Prior] = {}
        self._readers: dict[int, ReplyReader] = {}
        # Fail at load time, not mid-run, where no token boundary works for this tokenizer.
        self._reader(self.window).plan(self.build("query", ["passage"] * self.window))

    def _reader(self, n: int) -> ReplyReader:
        """The reader of a window of ``n`` passages' identifiers (a short window may need
        fewer forward passes: Qwen's split "[O" only from 15 passages on)."""
        if n not in self._readers:
            self._readers[n] = ReplyReader(self.llm, self.template.ids(n), self.template.after_id)
        return self._readers[n]

    def _reserve(self, n: int) -> int:
        return 1

    def _prior_key(self, n: int, query: str) -> tuple[int, str | None]:
        return (n, query if self.calibrate == "query" else None)

    def _content_free(self, key: tuple[int, str | None]) -> ChatPrompt:
        n, query = key
        return self.build(CONTENT_FREE if query is None else query, [CONTENT_FREE] * n)

    def _read_priors(self, windows: list[_Window]) -> set[tuple[int, str | None]]:
        """Read the priors these windows need and hold none yet (one batch per window
        size); returns their keys, so the passes are charged once."""
        need = list(dict.fromkeys(self._prior_key(w.size, w.query) for w in windows))
        need = [key for key in need if key not in self._priors]
        ids = self.template.ids(self.window)
        for n in sorted({key[0] for key in need}):
            keys = [key for key in need if key[0] == n]
            read = self._reader(n).score([self._content_free(key) for key in keys])
            for key, r in zip(keys, read, strict=True):
                row = [r.scores.get(c, -math.inf) for c in ids[:n]]
                if not all(math.isfinite(x) for x in row):
                    raise RerankError(
                        f"calibration needs every identifier's log-probability in the "
                        f"content-free window of {n} passages; {self.llm.name} gave none for "
                        f"{[c for c, x in zip(ids, row, strict=False) if not math.isfinite(x)]}"
                        f" (a backend that returns only its top tokens): rerank without "
                        f"calibrate"
                    )
                self._priors[key] = _Prior(tuple(log_softmax(row)), r.passes)
        if self.calibrate == "query":  # oldest first, never one these windows use
            wanted = {self._prior_key(w.size, w.query) for w in windows}
            old = [key for key in self._priors if key not in wanted]
            for key in old[: max(0, len(self._priors) - _QUERY_PRIORS)]:
                del self._priors[key]
        return set(need)

    def prior(self, n: int, query: str = "") -> list[float] | None:
        """The identifier log-prior subtracted from a window of ``n`` passages for
        ``query`` (``None`` where it is not read yet, or calibration is off)."""
        got = self._priors.get(self._prior_key(n, query))
        return list(got.logprobs) if got is not None else None

    def _rank(self, windows: list[_Window]) -> list[_Outcome]:
        ids = self.template.ids(self.window)
        variants: list[tuple[int, tuple[int, ...], ChatPrompt]] = []
        for w_i, w in enumerate(windows):
            for k, order in enumerate(window_orders(w.size, self.orders)):
                prompt = w.prompt if k == 0 else self.build(w.query, [w.texts[i] for i in order])
                variants.append((w_i, order, prompt))
        start = time.perf_counter()
        fresh = self._read_priors(windows) if self.calibrate != "none" else set()
        read: list[Any] = [None] * len(variants)
        for n in sorted({w.size for w in windows}):  # one batch per window size (mostly one)
            at = [j for j, (w_i, _, _) in enumerate(variants) if windows[w_i].size == n]
            for j, r in zip(at, self._reader(n).score([variants[j][2] for j in at]), strict=True):
                read[j] = r
        seconds = (time.perf_counter() - start) / max(1, len(windows))  # batch share
        outcomes = []
        for w_i, w in enumerate(windows):
            mine = [(order, r) for (i, order, _), r in zip(variants, read, strict=True) if i == w_i]
            n = w.size
            raw = [[r.scores.get(c, -math.inf) for c in ids[:n]] for _, r in mine]
            meta: dict[str, Any] = {"forward_passes": sum(r.passes for _, r in mine)}
            rows = raw
            if self.calibrate != "none":
                key = self._prior_key(n, w.query)
                prior = self._priors[key]
                # the identifier at position j carries the prior of position j in every order
                rows = [[x - p for x, p in zip(row, prior.logprobs, strict=True)] for row in raw]
                meta["calibration"] = {"mode": self.calibrate,
                                       "prior": dict(zip(ids[:n], prior.logprobs, strict=True)),
                                       "raw_logprobs": raw if len(raw) > 1 else raw[0]}  # fmt: skip
                if key in fresh:  # the content-free window's passes, charged once
                    fresh.discard(key)
                    meta["calibration"]["forward_passes"] = prior.passes
                    meta["forward_passes"] += prior.passes
            if len(mine) == 1:
                scores = rows[0]
            else:
                scores = combine_orders([o for o, _ in mine], rows)
            ranked = order_by_scores(scores)
            usable = any(math.isfinite(s) for s in scores)
            plan = self._reader(n).plan(w.prompt)
            if any(plan.tokens[c] != (c,) for c in ids[:n]):
                meta["reply"] = plan.as_dict()  # the boundary moved: what was read instead
            if len(mine) > 1:
                meta["orders"] = [list(o) for o, _ in mine]
                meta["order_logprobs"] = rows
            call = LLMCall(
                "next_token_logprobs", self.llm.name, self._render(w.prompt),
                " > ".join(f"[{ids[i]}]" for i in ranked), w.tokens, 0, seconds,
                error=None if usable else "no identifier has a finite log-probability",
                logprobs=dict(zip(ids[:n], scores, strict=True)), meta=meta,
            )  # fmt: skip
            outcomes.append(_Outcome(Repaired(tuple(ranked)) if usable else None, call))
        return outcomes
