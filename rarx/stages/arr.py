"""The ``arr`` stage: adapt-retrieve-revise (Wan et al., 2023).

A draft model answers the question closed-book in a few sentences (a long-form draft,
as in the paper); the question and the draft become the retrieval query (``query:
query+draft``, the default; ``draft``, the paper's, retrieves with the draft alone, which
loses the passage where the draft is wrong: R@2 0.867 against 0.940 on 300 SciQ questions,
0.823 against 0.893 on 300 SQuAD ones, with qwen2.5-coder-1.5b), so retrieval looks for
evidence about the answer as well as the question's words; a revise model then reads the
evidence and writes the final short answer. The paper shows it the draft too (``revise_template:
revise``); by default it does not, because a reviser no stronger than the drafter keeps
a wrong draft (see ``revise-passages`` in rarx.stages.templates). Draft and revise models
are separate settings: the paper pairs a small domain-adapted model with a stronger one.

When an earlier ``gate`` decided not to retrieve (``retrieve`` is False), nothing is
retrieved: the revise model writes the short answer from the question and the draft
alone (the reader's short-answer prompt), so the answer has the same form either way.

A state that already carries a draft (``draft`` in its context, e.g. from an earlier arr
run over the same questions with the same draft model) is not drafted again: comparing
query forms costs one long-form draft per question, not one per form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rarx.errors import ConfigError
from rarx.index.base import Index
from rarx.llm import LLM, LLMRef
from rarx.llm.base import LLMOutput
from rarx.stages.base import Resources
from rarx.stages.common import ANSWER, DRAFT, RANKING, RETRIEVE, hit_summary, llm_call
from rarx.stages.generate import cut
from rarx.stages.registry import KindStage, index_param, stage_kind
from rarx.stages.retrieve import RetrieveParams, search
from rarx.stages.templates import template
from rarx.types import Query, QueryState


@dataclass(frozen=True)
class ArrParams:
    index: str
    draft_llm: LLMRef = "smollm2-135m"
    revise_llm: LLMRef = "smollm2-135m"
    k: int = 3  # passages retrieved and shown to the revise model
    query: Literal["draft", "query+draft"] = "query+draft"  # the retrieval query
    passage_tokens: int = 150
    draft_tokens: int = 128  # the long-form draft (retrieval query, shown to revise)
    max_new_tokens: int = 24  # the final short answer
    # reader templates (rarx.stages.templates) for the draft and for the revision
    draft_template: str = "long-answer"
    revise_template: str = "revise-passages"

    def __post_init__(self) -> None:
        for name in (self.draft_template, self.revise_template):
            template(name)  # an unknown name raises ConfigError, naming the known ones
        if min(self.k, self.passage_tokens, self.draft_tokens, self.max_new_tokens) < 1:
            raise ConfigError(
                "'k', 'passage_tokens', 'draft_tokens' and 'max_new_tokens' must be >= 1"
            )


@stage_kind("arr", ArrParams, "adapt-retrieve-revise: draft, retrieve with it, revise",
            provides={RANKING, DRAFT, ANSWER},
            indexes=index_param("ranked_search"))  # fmt: skip
class ArrStage(KindStage[ArrParams]):
    params: ArrParams

    def __init__(self, index: Index, draft_llm: LLM, revise_llm: LLM, params: ArrParams):
        self.index = index
        self.draft_llm = draft_llm
        self.revise_llm = revise_llm
        self.params = params
        self._draft = template(params.draft_template)
        self._revise = template(params.revise_template)
        self._closed = template("short-answer")  # no retrieval: the draft alone

    @classmethod
    def from_params(cls, p: ArrParams, resources: Resources) -> ArrStage:
        return cls(resources.index(p.index), resources.llm(p.draft_llm),
                   resources.llm(p.revise_llm), p)  # fmt: skip

    def _query(self, state: QueryState, draft: str) -> Query:
        q = state.query
        if self.params.query == "query+draft":
            return Query(q.qid, f"{q.text} {draft}".strip(), q.meta)
        return Query(q.qid, draft or q.text, q.meta)  # an empty draft: the question

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        p = self.params
        draft_prompts = [self._draft.render(s.query.text) for s in batch]
        todo = [i for i, s in enumerate(batch) if not isinstance(s.context.get(DRAFT), str)]
        made = self.draft_llm.generate([draft_prompts[i] for i in todo],
                                       max_new_tokens=p.draft_tokens) if todo else []  # fmt: skip
        drafts: list[LLMOutput | None] = [None] * len(batch)
        for i, o in zip(todo, made, strict=True):
            drafts[i] = o
        # long-form: every line kept; without the ":" a reply to "The answer is" may open with
        texts = [" ".join(o.text.split()).lstrip(":").strip() if o is not None
                 else str(s.context[DRAFT])
                 for s, o in zip(batch, drafts, strict=True)]  # fmt: skip
        wanted = [i for i, s in enumerate(batch) if s.context.get(RETRIEVE) is not False]
        queries = {i: self._query(batch[i], texts[i]) for i in wanted}
        found = (
            search(self.index, list(queries.values()), RetrieveParams(p.index, p.k))
            if queries
            else []
        )
        rankings = dict(zip(wanted, found, strict=True))
        readers, prompts = [], []
        for i, s in enumerate(batch):
            r = rankings.get(i)
            if r is None:
                readers.append(self._closed)
                prompts.append(self._closed.render(s.query.text, draft=texts[i]))
            else:
                docs = cut(self.revise_llm, [h.doc for h in r.hits if h.doc is not None],
                           p.passage_tokens)  # fmt: skip
                readers.append(self._revise)
                prompts.append(self._revise.render(s.query.text, docs, draft=texts[i]))
        revised = self.revise_llm.generate(prompts, max_new_tokens=p.max_new_tokens)
        out = []
        for i, s in enumerate(batch):
            answer = readers[i].parse(revised[i].text)
            state = s.with_context(**{DRAFT: texts[i], ANSWER: answer})
            made_i = drafts[i]
            if made_i is None:
                state = state.traced(self.name, "draft_given", draft=texts[i])
            else:
                state = state.traced(self.name, "drafted", draft=texts[i],
                                     call=llm_call(self.draft_llm.name, draft_prompts[i], made_i,
                                                   role="draft"))  # fmt: skip
            if i in rankings:
                state = state.with_ranking(rankings[i]).traced(
                    self.name, "retrieved", query=queries[i].text,
                    top=hit_summary(rankings[i].hits, 3),
                )  # fmt: skip
            else:
                state = state.traced(self.name, "retrieval_skipped",
                                     reason="gate decided no retrieval")  # fmt: skip
            state = state.traced(self.name, "revised", answer=answer,
                                 call=llm_call(self.revise_llm.name, prompts[i], revised[i],
                                               role="revise"))  # fmt: skip
            out.append(state)
        return out
