"""Stage kinds: one declaration per kind, kept by the stages; the flow check for
pipelines built in Python; the skip rules for every retrieval stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from rarx.errors import ConfigError
from rarx.pipeline import Pipeline, parse_spec
from rarx.rerank.listwise import FirstReranker
from rarx.stages import registry
from rarx.stages.common import ANSWER, FINAL, RANKING, RETRIEVE, run_active
from rarx.stages.gate import GateParams, GateStage
from rarx.stages.registry import KindStage, stage_kind, stage_kinds
from rarx.stages.rerank import RerankStage
from rarx.types import Document, Hit, Query, QueryState, Ranking
from tests.fakes import ScriptedLLM, by_keyword


def _ranking(qid: str) -> Ranking:
    texts = ["plants and sunlight", "volcanoes and lava", "gravity pulls"]
    return Ranking(qid, tuple(Hit(f"d{i}", 3.0 - i, Document(f"d{i}", t))
                              for i, t in enumerate(texts)))  # fmt: skip


def _first_stage() -> RerankStage:
    return RerankStage(FirstReranker(ScriptedLLM(scores=by_keyword("gravity")), k=3, window=3,
                                     stride=1))  # fmt: skip


def test_every_kind_is_discovered_with_its_params() -> None:
    kinds = stage_kinds()
    expected = {"arr", "demos", "fuse", "gate", "generate", "qa_memory", "rerank", "retrieve"}
    assert expected <= set(kinds)
    for name, kind in kinds.items():
        assert kind.name == name and kind.build.__name__ == "from_params"
        assert kind.summary


def test_rerank_stage_from_python_honours_final_and_gate_decisions() -> None:
    states = [
        QueryState(Query("done", "gravity?"), _ranking("done"), {FINAL: True, ANSWER: "g"}),
        QueryState(Query("no", "gravity?"), _ranking("no"), {RETRIEVE: False}),
        QueryState(Query("go", "gravity?"), _ranking("go")),
    ]
    done, no, go = _first_stage().run(states)
    assert done.ranking.docids == no.ranking.docids == ["d0", "d1", "d2"]
    assert done.trace[-1].event == "skipped" and "final" in done.trace[-1].data["reason"]
    assert no.trace[-1].event == "skipped" and "no retrieval" in no.trace[-1].data["reason"]
    assert go.ranking.docids[0] == "d2"  # the scripted scores put "gravity" first


def test_a_pipeline_built_in_python_runs_the_flow_check() -> None:
    with pytest.raises(ConfigError, match=r"stage 1 \(rerank\) needs 'ranking'.*retrieve"):
        Pipeline([_first_stage()])
    # A caller whose states already carry rankings says so.
    pipe = Pipeline([_first_stage()], given={RANKING})
    (out,) = pipe.run([QueryState(Query("q", "gravity?"), _ranking("q"))])
    assert out.ranking.docids[0] == "d2" and pipe.needs == {RANKING}


def test_the_gate_provides_what_it_writes() -> None:
    gate = GateStage(GateParams(mode="adapt-llm"), ScriptedLLM(reply="Paris"))
    (state,) = gate.run([QueryState(Query("q", "Capital of France?"))])
    assert set(state.context) <= gate.provides
    assert state.context[ANSWER] == "Paris" and state.context[FINAL] is True
    never = GateStage(GateParams(mode="never"))
    (state,) = never.run([QueryState(Query("q", "Capital of France?"))])
    assert set(state.context) <= never.provides and ANSWER not in never.provides


@dataclass(frozen=True)
class _ShoutParams:
    suffix: str = "!"


def test_a_new_kind_is_one_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    stage_kinds()  # the built-in kinds registered before the registry is copied
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))

    @stage_kind("shout", _ShoutParams, "upper-case the query into the answer",
                provides={ANSWER})  # fmt: skip
    class ShoutStage(KindStage[_ShoutParams]):
        def __init__(self, params: _ShoutParams):
            self.params = params

        @classmethod
        def from_params(cls, p: _ShoutParams, resources: Any) -> ShoutStage:
            return cls(p)

        def run(self, batch: Sequence[QueryState]) -> list[QueryState]:
            return run_active(self.name, batch, lambda b: [
                s.with_context(**{ANSWER: s.query.text.upper() + self.params.suffix}) for s in b
            ])  # fmt: skip

    spec = parse_spec({"stages": [{"shout": {"suffix": "?!"}}]}, "p.yaml")
    assert spec.stages[0].params == _ShoutParams("?!") and "shout" in stage_kinds()
    with pytest.raises(ConfigError, match="unknown parameter 'loud'"):
        parse_spec({"stages": [{"shout": {"loud": True}}]})
    (out,) = Pipeline.from_dict({"stages": [{"shout": {}}]}).run(["hi"])
    assert out.context[ANSWER] == "HI!"


def test_the_rerank_stage_search_and_serve_take_the_same_reranker_names() -> None:
    """One registry of reranker names: the stage's parameter, `rarx search --rerank` and
    `rarx serve --rerank` all accept exactly the names make_reranker builds."""
    import typing

    import click

    from rarx.cli.search import search
    from rarx.cli.serve import serve
    from rarx.rerank import METHODS
    from rarx.stages.rerank import RerankParams

    hints = typing.get_type_hints(RerankParams, include_extras=True)
    assert typing.get_args(hints["method"]) == METHODS == ("first", "listwise", "cross-encoder")
    for command in (search, serve):
        (option,) = [p for p in command.params if p.name == "rerank"]
        assert isinstance(option.type, click.Choice)
        assert tuple(option.type.choices) == METHODS, command.name
