"""The ``generate`` stage: a reader LLM answers from the query and whatever earlier
stages left in the context (passages, demonstrations, memory pairs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rarx.errors import ConfigError
from rarx.llm import LLM, LLMRef, Prompt
from rarx.stages.base import Resources
from rarx.stages.common import ANSWER, DEMOS, MEMORY, RANKING, llm_call, passages
from rarx.stages.registry import KindStage, stage_kind
from rarx.stages.templates import ReaderTemplate, template
from rarx.types import Document, QueryState


@dataclass(frozen=True)
class GenerateParams:
    llm: LLMRef = "smollm2-135m"
    top_docs: int = 3  # passages from the ranking put in the prompt (0: closed book)
    passage_tokens: int = 150  # each passage is cut to this many tokens
    max_new_tokens: int = 24
    template: str = "short-answer"  # a reader template of rarx.stages.templates
    use_demonstrations: bool = True
    use_memory: bool = True

    def __post_init__(self) -> None:
        if self.top_docs < 0 or self.passage_tokens < 1 or self.max_new_tokens < 1:
            raise ConfigError("'top_docs' must be >= 0, 'passage_tokens' and 'max_new_tokens' >= 1")
        template(self.template)  # an unknown name: a ConfigError that lists the known ones


def cut(llm: LLM, docs: Sequence[Document], tokens: int) -> list[Document]:
    return [Document(d.docid, llm.truncate(d.text, tokens), d.title) for d in docs]


@stage_kind(
    "generate",
    GenerateParams,
    "a reader LLM writes the answer",
    needs=lambda p: {RANKING} if p.top_docs > 0 else (),
    provides={ANSWER},
    needs_hint="or set 'top_docs: 0' for closed-book answers",
)
class GenerateStage(KindStage[GenerateParams]):
    params: GenerateParams

    def __init__(self, llm: LLM, params: GenerateParams | None = None):
        self.llm = llm
        self.params = params or GenerateParams()
        self.template: ReaderTemplate = template(self.params.template)

    @classmethod
    def from_params(cls, p: GenerateParams, resources: Resources) -> GenerateStage:
        return cls(resources.llm(p.llm), p)

    def prompt(self, state: QueryState) -> Prompt:
        p = self.params
        docs = cut(self.llm, passages(state, p.top_docs), p.passage_tokens)
        demos = state.context.get(DEMOS, ()) if p.use_demonstrations else ()
        memory = state.context.get(MEMORY, ()) if p.use_memory else ()
        return self.template.render(state.query.text, docs, demos, memory)

    def _run(self, batch: list[QueryState]) -> list[QueryState]:
        prompts = [self.prompt(s) for s in batch]
        outputs = self.llm.generate(prompts, max_new_tokens=self.params.max_new_tokens)
        out = []
        for state, prompt, o in zip(batch, prompts, outputs, strict=True):
            answer = self.template.parse(o.text)
            call = llm_call(self.llm.name, prompt, o, role="reader")
            state = state.with_context(**{ANSWER: answer})
            out.append(state.traced(self.name, "answered", answer=answer, call=call))
        return out
