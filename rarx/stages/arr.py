"""The ``arr`` stage: adapt-retrieve-revise (Zhang et al., 2023).

A draft model answers the question closed-book; the draft (by default with the
question) becomes the retrieval query, so retrieval looks for evidence about the
answer rather than only the question's words; a revise model then reads the draft and
the evidence and writes the final answer. Draft and revise models are separate
settings: the paper pairs a small domain-adapted model with a stronger one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rarx.errors import ConfigError
from rarx.index.base import Index
from rarx.llm import LLM, LLMRef
from rarx.stages.base import Resources
from rarx.stages.common import ANSWER, DRAFT, RANKING, hit_summary, llm_call, run_active
from rarx.stages.generate import cut
from rarx.stages.registry import IndexUse, KindStage, stage_kind
from rarx.stages.retrieve import RetrieveParams, search
from rarx.stages.templates import template
from rarx.types import Query, QueryState


@dataclass(frozen=True)
class ArrParams:
    index: str
    draft_llm: LLMRef = "smollm2-135m"
    revise_llm: LLMRef = "smollm2-135m"
    k: int = 3  # passages retrieved and shown to the revise model
    query: Literal["draft", "query+draft"] = "query+draft"
    passage_tokens: int = 150
    max_new_tokens: int = 24

    def __post_init__(self) -> None:
        if self.k < 1 or self.passage_tokens < 1 or self.max_new_tokens < 1:
            raise ConfigError("'k', 'passage_tokens' and 'max_new_tokens' must be >= 1")


@stage_kind("arr", ArrParams, "adapt-retrieve-revise: draft, retrieve with it, revise",
            provides={RANKING, DRAFT, ANSWER},
            indexes=lambda p: [IndexUse(p.index, "ranked_search")])  # fmt: skip
class ArrStage(KindStage[ArrParams]):
    params: ArrParams

    def __init__(self, index: Index, draft_llm: LLM, revise_llm: LLM, params: ArrParams):
        self.index = index
        self.draft_llm = draft_llm
        self.revise_llm = revise_llm
        self.params = params
        self._draft = template("short-answer")
        self._revise = template("revise")

    @classmethod
    def from_params(cls, p: ArrParams, resources: Resources) -> ArrStage:
        return cls(resources.index(p.index), resources.llm(p.draft_llm),
                   resources.llm(p.revise_llm), p)  # fmt: skip

    def run(self, batch: Sequence[QueryState]) -> list[QueryState]:
        return run_active(self.name, batch, self._run)

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        p = self.params
        draft_prompts = [self._draft.render(s.query.text) for s in batch]
        drafts = self.draft_llm.generate(draft_prompts, max_new_tokens=p.max_new_tokens)
        draft_answers = [self._draft.parse(o.text) for o in drafts]
        queries = [
            Query(s.query.qid, d if p.query == "draft" else f"{s.query.text} {d}", s.query.meta)
            for s, d in zip(batch, draft_answers, strict=True)
        ]
        rankings = search(self.index, queries, RetrieveParams(p.index, p.k))
        revise_prompts = [
            self._revise.render(
                s.query.text,
                cut(
                    self.revise_llm, [h.doc for h in r.hits if h.doc is not None], p.passage_tokens
                ),
                draft=d,
            )
            for s, r, d in zip(batch, rankings, draft_answers, strict=True)
        ]
        revised = self.revise_llm.generate(revise_prompts, max_new_tokens=p.max_new_tokens)
        out = []
        for i, s in enumerate(batch):
            answer = self._revise.parse(revised[i].text)
            state = s.with_ranking(rankings[i]).with_context(
                **{DRAFT: draft_answers[i], ANSWER: answer}
            )
            state = state.traced(self.name, "drafted", draft=draft_answers[i],
                                 call=llm_call(self.draft_llm.name, draft_prompts[i], drafts[i],
                                               role="draft"))  # fmt: skip
            state = state.traced(self.name, "retrieved", query=queries[i].text,
                                 top=hit_summary(rankings[i].hits, 3))  # fmt: skip
            state = state.traced(self.name, "revised", answer=answer,
                                 call=llm_call(self.revise_llm.name, revise_prompts[i], revised[i],
                                               role="revise"))  # fmt: skip
            out.append(state)
        return out
