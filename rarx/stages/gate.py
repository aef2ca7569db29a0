"""The ``gate`` stage: decide per query whether to retrieve (Adapt-LLM and baselines).

Adapt-LLM (Labruna et al., 2024) prompts the model with "Answer the question Q. If you
need help answer <RET> to get the context."; a model whose reply *begins* with ``<RET>``
goes on to retrieval (the decision is the first generated tokens, so a ``<RET>`` written
after some answer text is not a request), otherwise it answers closed-book. The paper's
fine-tuned model writes its short answer in that same reply; an untuned model asked that
way writes long text, so the closed-book answer comes from the reader's short-answer
prompt (one more call, only for queries that do not retrieve). The paper fine-tunes the
model to emit ``<RET>``; the packaged SmolLM2 is not fine-tuned, so its decisions here
are a baseline.

A model trained by ``rarx train gate`` has ``<RET>`` as one special token, so its
decision is the first generated token alone (one decoding step); the transformers
backend keeps such tokens in the decoded text (it drops only the tokenizer's control
tokens), so the reply reads ``<RET>``. A server must do the same (vLLM drops special
tokens unless asked with ``skip_special_tokens: false``).

``<RET>`` is not one token for BPE vocabularies (SmolLM2: ``<`` ``RET`` ``>``), so the
``threshold`` mode scores the whole marker: P(<RET>) is the product of each of its
tokens' next-token probabilities, each read with the tokens before it already in the
assistant's reply (one forward pass per marker token). The tokens are those the model
would write at the start of its reply, checked against the tokenizer on the rendered
prompt (:mod:`rarx.llm.reply`), not the marker split on its own. The first token's
probability is recorded too: ``<`` alone also starts HTML and other text, so it
overstates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rarx.errors import ConfigError
from rarx.llm import LLM, LLMRef
from rarx.llm.base import ChatPrompt, TokenizationError
from rarx.llm.reply import ReplyReader
from rarx.stages.base import Resources
from rarx.stages.common import ANSWER, FINAL, GATE, RETRIEVE, llm_call
from rarx.stages.registry import KindStage, stage_kind
from rarx.stages.templates import template
from rarx.types import QueryState

log = logging.getLogger(__name__)

RET = "<RET>"
ADAPT_PROMPT = "Answer the question Q. If you need help answer <RET> to get the context. Q: {q}"
MODES = ("adapt-llm", "threshold", "always", "never", "popularity")


@dataclass(frozen=True)
class GateParams:
    mode: Literal["adapt-llm", "threshold", "always", "never", "popularity"] = "adapt-llm"
    llm: LLMRef = "smollm2-135m"  # adapt-llm and threshold
    threshold: float | None = None  # threshold: P(<RET>); popularity: the field's value
    field: str = "popularity"  # popularity: the numeric field of Query.meta
    max_new_tokens: int = 24  # adapt-llm: the closed-book (short) answer it may write
    decision_tokens: int = 8  # adapt-llm: the start of the reply that must be <RET>
    prompt: str = ADAPT_PROMPT  # must contain {q}

    def __post_init__(self) -> None:
        if self.mode in ("threshold", "popularity") and self.threshold is None:
            raise ConfigError(f"mode {self.mode!r} needs parameter 'threshold' (a number)")
        if self.mode == "threshold" and not 0.0 <= float(self.threshold or 0) <= 1.0:
            raise ConfigError(f"'threshold' is a probability in [0, 1], got {self.threshold}")
        if "{q}" not in self.prompt:
            raise ConfigError("parameter 'prompt' must contain {q} where the question goes")
        if self.max_new_tokens < 1 or self.decision_tokens < 1:
            raise ConfigError("'max_new_tokens' and 'decision_tokens' must be >= 1")

    @property
    def uses_llm(self) -> bool:
        return self.mode in ("adapt-llm", "threshold")


def marker_tokens(llm: Any, marker: str = RET) -> list[str]:
    """``marker`` split as the LLM's tokenizer splits it. A backend that does not know its
    tokenizer (the openai backend without ``tokenizer``) raises TokenizationError: pieces
    guessed from characters are not tokens a server reports, so P(<RET>) would read 0."""
    return list(llm.tokenize(marker))


def single_token_marker(llm: Any, marker: str = RET) -> bool:
    """True when ``marker`` is one token of the LLM's vocabulary (a model trained with
    ``rarx train gate``); False when it is several, or the backend cannot tell."""
    if not callable(getattr(llm, "tokenize", None)):
        return False
    try:
        return len(marker_tokens(llm, marker)) == 1
    except TokenizationError:
        return False


def _gate_provides(p: GateParams) -> set[str]:
    # adapt-llm: a model that answers instead of asking for retrieval ends the query there
    return {RETRIEVE, GATE, ANSWER, FINAL} if p.mode == "adapt-llm" else {RETRIEVE, GATE}


@stage_kind(
    "gate",
    GateParams,
    "decide per query whether to retrieve (Adapt-LLM, baselines)",
    provides=_gate_provides,
)
class GateStage(KindStage[GateParams]):
    params: GateParams

    def __init__(self, params: GateParams, llm: LLM | None = None):
        if params.uses_llm and llm is None:
            raise ConfigError(f"gate mode {params.mode!r} needs an LLM")
        self.params = params
        self.llm = llm
        self._reader = template("short-answer")
        # Plan now, so a backend that cannot score the marker fails before any query.
        self._marker = ReplyReader(llm, [RET]) if params.mode == "threshold" else None
        if self._marker is not None:
            self._marker.plan(self.prompt_for("probe"))
        # adapt-llm: with a one-token <RET> the first generated token is the decision
        self._single = params.mode == "adapt-llm" and single_token_marker(llm)
        if params.mode == "adapt-llm" and not self._single:
            log.warning(
                "gate: %s has no <RET> token (not trained by rarx train gate, or a backend "
                "that cannot tokenize); an untrained model seldom begins its reply with <RET> "
                "(qwen2.5-coder-1.5b: on none of 12 SciQ questions), so nearly every question "
                "will be answered closed-book",
                getattr(llm, "name", llm),
            )

    @classmethod
    def from_params(cls, p: GateParams, resources: Resources) -> GateStage:
        return cls(p, resources.llm(p.llm) if p.uses_llm else None)

    @property
    def _model(self) -> LLM:
        assert self.llm is not None, "checked in __init__ for the modes that call it"
        return self.llm

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        mode = self.params.mode
        if mode == "adapt-llm":
            return self._adapt(batch)
        if mode == "threshold":
            return self._threshold(batch)
        out = []
        for s in batch:
            data: dict[str, Any] = {"mode": mode}
            if mode == "popularity":
                value = s.query.meta.get(self.params.field)
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise ConfigError(
                        f"gate mode 'popularity': query {s.query.qid!r} has no numeric "
                        f"{self.params.field!r} in its metadata (found {value!r})"
                    )
                retrieve = float(value) < float(self.params.threshold or 0.0)
                data.update(value=value, threshold=self.params.threshold)
            else:
                retrieve = mode == "always"
            out.append(self._decided(s, retrieve, data))
        return out

    def _decided(self, s: QueryState, retrieve: bool, data: dict[str, Any]) -> QueryState:
        decision = {**data, "retrieve": retrieve}
        return s.with_context(**{RETRIEVE: retrieve, GATE: decision}).traced(
            self.name, "decided", **decision
        )

    def _prompt(self, s: QueryState) -> ChatPrompt:
        return self.prompt_for(s.query.text)

    def prompt_for(self, question: str) -> ChatPrompt:
        """The Adapt-LLM prompt (decision and P(<RET>)) for one question."""
        return ChatPrompt.user(self.params.prompt.format(q=question))

    def decide(self, prompts: list[ChatPrompt]) -> list[tuple[bool, dict[str, Any]]]:
        """adapt-llm: per prompt, does the greedy reply begin with <RET>, and the record."""
        tokens = 1 if self._single else self.params.decision_tokens
        outputs = self._model.generate(prompts, max_new_tokens=tokens)
        return [(o.text.lstrip().startswith(RET),  # the reply begins with <RET>
                 {"mode": "adapt-llm", "output": o.text,
                  "call": llm_call(self._model.name, p, o, role="gate")})
                for p, o in zip(prompts, outputs, strict=True)]  # fmt: skip

    def _adapt(self, batch: list[QueryState]) -> list[QueryState]:
        prompts = [self._prompt(s) for s in batch]
        out, answering = [], []
        for i, (s, (retrieve, data)) in enumerate(zip(batch, self.decide(prompts),
                                                      strict=True)):  # fmt: skip
            out.append(self._decided(s, retrieve, data))
            if not retrieve:
                answering.append(i)
        if answering:  # closed-book short answers; they stand and later stages skip
            asked = [self._reader.render(batch[i].query.text) for i in answering]
            answers = self._model.generate(asked, max_new_tokens=self.params.max_new_tokens)
            for i, p, o in zip(answering, asked, answers, strict=True):
                answer = self._reader.parse(o.text)
                call = llm_call(self._model.name, p, o, role="closed-book")
                state = out[i].with_context(**{ANSWER: answer, FINAL: True})
                out[i] = state.traced(self.name, "answered", answer=answer, call=call)
        return out

    def ret_probability(self, prompts: Sequence[ChatPrompt]) -> list[tuple[float, float]]:
        """(P(<RET>), P(first token of <RET>)) as the start of the reply, per prompt."""
        return [(p, p1) for p, p1, _ in self._ret_read(prompts)]

    def _ret_read(self, prompts: Sequence[ChatPrompt]) -> list[tuple[float, float, list[str]]]:
        if self._marker is None:
            self._marker = ReplyReader(self._model, [RET])
        out = []
        for row in self._marker.score(prompts):
            toks = row.tokens[RET]
            out.append((math.exp(row.scores[RET]), math.exp(toks[0][1]), [t for t, _ in toks]))
        return out

    def _threshold(self, batch: list[QueryState]) -> list[QueryState]:
        threshold = float(self.params.threshold or 0.0)
        read = self._ret_read([self._prompt(s) for s in batch])
        return [
            self._decided(s, p >= threshold, {
                "mode": "threshold", "p_ret": round(p, 6), "p_first_token": round(p1, 6),
                "tokens": tokens, "threshold": threshold,
            })
            for s, (p, p1, tokens) in zip(batch, read, strict=True)
        ]  # fmt: skip
