"""``Pipeline``: an ordered tuple of stages, itself a stage.

```python
from rarx import Pipeline
p = Pipeline.from_yaml("pipelines/bm25.yaml")
states = p.run(["What do plants need for photosynthesis?"])
states[0].ranking, states[0].context.get("answer"), states[0].trace
```

Once built, ``run`` may be called from several threads: states are immutable, and the
shared models and indexes serialise their own calls (see :mod:`rarx.pipeline.resources`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from rarx.errors import ConfigError
from rarx.pipeline.flow import FlowStep, check_flow
from rarx.pipeline.resources import Resources
from rarx.pipeline.spec import PipelineSpec, check_indexes, load_spec, parse_spec
from rarx.stages.base import Stage
from rarx.stages.common import ERROR
from rarx.types import Query, QueryState

QueryInput = str | Query | QueryState


def as_states(inputs: Sequence[QueryInput]) -> list[QueryState]:
    """Strings get ids ``q1``, ``q2``, ... by position; Queries and states pass through."""
    if isinstance(inputs, str | Query | QueryState):
        raise ConfigError("Pipeline.run takes a list of queries; wrap a single one in [...]")
    states = []
    for i, x in enumerate(inputs, 1):
        if isinstance(x, QueryState):
            states.append(x)
        elif isinstance(x, Query):
            states.append(QueryState(x))
        elif isinstance(x, str):
            states.append(QueryState(Query(f"q{i}", x)))
        else:
            raise ConfigError(
                f"Pipeline.run: item {i} is {type(x).__name__}; expected str, Query or QueryState"
            )
    return states


class Pipeline:
    name: ClassVar[str] = "pipeline"

    def __init__(self, stages: Sequence[Stage], spec: PipelineSpec | None = None,
                 strict: bool = False, resources: Resources | None = None,
                 given: Iterable[str] = ()):  # fmt: skip
        """``given``: what the input states already carry (e.g. ``{RANKING}`` for a
        pipeline that starts with ``rerank``); every other need must be provided by an
        earlier stage, checked here as for a pipeline file."""
        self.stages = tuple(stages)
        self.spec = spec
        self.strict = strict
        self.resources = resources
        self.label = spec.name if spec else "pipeline"
        self.needs = frozenset(given)
        steps = [
            FlowStep(f"stage {i} ({s.name})", frozenset(s.needs), frozenset(s.provides),
                     getattr(getattr(s, "kind", None), "needs_hint", ""))
            for i, s in enumerate(self.stages, 1)
        ]  # fmt: skip
        check_flow(steps, spec.source if spec else self.label, self.needs)
        self.provides = frozenset().union(*(step.provides for step in steps))

    # -- building -------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: PipelineSpec, resources: Resources | None = None,
                  strict: bool = False) -> Pipeline:  # fmt: skip
        """Load what the stages name (each model and index once) and build them."""
        check_indexes(spec)  # fail on a missing index before loading any model
        resources = resources if resources is not None else Resources()
        stages = [s.stage_kind.build(s.params, resources) for s in spec.stages]
        return cls(stages, spec, strict, resources)

    @classmethod
    def from_yaml(cls, path: str | Path, resources: Resources | None = None,
                  strict: bool = False) -> Pipeline:  # fmt: skip
        return cls.from_spec(load_spec(path), resources, strict)

    @classmethod
    def from_dict(cls, data: Any, resources: Resources | None = None,
                  strict: bool = False) -> Pipeline:  # fmt: skip
        return cls.from_spec(parse_spec(data), resources, strict)

    # -- running --------------------------------------------------------------------

    def run(self, batch: Sequence[QueryInput]) -> list[QueryState]:
        """One output state per input, in order; ``run([]) == []``. A stage that fails
        for a query records the error on it and the others go on, unless ``strict``."""
        states = as_states(batch)
        for stage in self.stages:
            if not states:
                break
            states = self._run_stage(stage, states)
        return states

    def run_batches(self, batches: Iterable[Sequence[QueryInput]]) -> Iterator[list[QueryState]]:
        """``run`` of each batch, in order (rarx.distributed's RayPipeline runs the
        batches on several workers behind the same call)."""
        return (self.run(batch) for batch in batches)

    def _run_stage(self, stage: Stage, states: list[QueryState]) -> list[QueryState]:
        if self.strict:
            return list(stage.run(states))
        try:
            return list(stage.run(states))
        except Exception:  # noqa: BLE001 - isolated below, query by query
            if len(states) == 1:
                return [self._failed(stage, states[0])]
        # Some query broke the batch: run each alone so only the culprits fail.
        return [self._run_one(stage, s) for s in states]

    def _run_one(self, stage: Stage, state: QueryState) -> QueryState:
        try:
            (out,) = stage.run([state])
            return out
        except Exception:  # noqa: BLE001 - recorded on the query
            return self._failed(stage, state)

    def _failed(self, stage: Stage, state: QueryState) -> QueryState:
        import sys

        exc = sys.exc_info()[1]
        message = f"{stage.name}: {type(exc).__name__}: {exc}"
        return state.with_context(**{ERROR: message}).traced(
            stage.name, "error", error=message, at=time.time()
        )

    def __repr__(self) -> str:
        return f"Pipeline({self.label!r}, stages={[s.name for s in self.stages]})"
