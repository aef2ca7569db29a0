"""A pipeline file read and checked, before anything loads.

```yaml
name: adaptive-rag
stages:
  - gate:     {mode: adapt-llm, llm: smollm2-135m}
  - retrieve: {index: indexes/sciq-bm25, k: 10}
  - generate: {llm: smollm2-135m, top_docs: 3}
```

Read with ``yaml.safe_load`` only: a pipeline file can never construct Python
objects. Index paths are relative to the working directory (run from the repository
root for the examples in ``pipelines/``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarx.errors import ConfigError
from rarx.pipeline.flow import FlowStep, check_flow
from rarx.pipeline.params import parse_params
from rarx.stages.registry import StageKind, get_stage_kind, stage_kinds

TOP_KEYS = ("name", "description", "stages")


@dataclass(frozen=True)
class StageSpec:
    position: int  # 1-based, as error messages count
    kind: str
    params: Any  # the kind's frozen params dataclass

    @property
    def stage_kind(self) -> StageKind:
        return stage_kinds()[self.kind]

    @property
    def where(self) -> str:
        return f"stage {self.position} ({self.kind})"

    @property
    def flow_step(self) -> FlowStep:
        kind = self.stage_kind
        return FlowStep(self.where, kind.needs_of(self.params), kind.provides_of(self.params),
                        kind.needs_hint)  # fmt: skip


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    stages: tuple[StageSpec, ...]
    source: str = "<pipeline>"
    description: str = ""


def _stage(item: Any, position: int, source: str) -> StageSpec:
    where = f"{source}: stage {position}"
    if isinstance(item, str):  # "- generate" with all defaults
        item = {item: None}
    if not isinstance(item, Mapping) or len(item) != 1:
        raise ConfigError(
            f"{where}: each stage is a mapping with one key, the stage kind, e.g. "
            f"'- retrieve: {{index: indexes/sciq-bm25, k: 10}}'; accepted stages: "
            f"{', '.join(stage_kinds())}"
        )
    ((name, raw),) = item.items()
    kind = get_stage_kind(str(name), where)
    where = f"{source}: stage {position} ({name})"
    return StageSpec(position, str(name), parse_params(kind.params, raw, where))


def parse_spec(data: Any, source: str = "<pipeline>") -> PipelineSpec:
    """A checked :class:`PipelineSpec` from the value a YAML file holds."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: a pipeline file is a mapping with keys {', '.join(TOP_KEYS)}, "
            f"found {type(data).__name__}"
        )
    unknown = sorted(str(k) for k in data if k not in TOP_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; accepted: {', '.join(TOP_KEYS)}")
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{source}: 'stages' must be a non-empty list of stages")
    specs = tuple(_stage(item, i, source) for i, item in enumerate(stages, 1))
    check_flow([s.flow_step for s in specs], source)
    name = data.get("name", Path(source).stem)
    description = data.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise ConfigError(f"{source}: 'name' and 'description' must be text")
    return PipelineSpec(name, specs, source, description)


def read_yaml(path: str | Path) -> Any:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such pipeline file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None


def load_spec(path: str | Path) -> PipelineSpec:
    return parse_spec(read_yaml(path), str(path))


def check_indexes(spec: PipelineSpec) -> None:
    """Each index a stage names exists and is of a kind that stage accepts (reads only
    the manifests)."""
    from rarx.index.base import MANIFEST_NAME
    from rarx.index.registry import kinds_with

    for s in spec.stages:
        for use in s.stage_kind.indexes(s.params):
            path, kinds = use.path, kinds_with(use.capability)
            manifest = Path(path) / MANIFEST_NAME
            where = f"{spec.source}: {s.where}: parameter 'index' {path!r}"
            if not manifest.is_file():
                raise ConfigError(
                    f"{where}: no index there (no {MANIFEST_NAME}); build it with 'rarx index "
                    f"--index {path} --kind {kinds[0]} ...' (see pipelines/README.md)"
                )
            found = json.loads(manifest.read_text(encoding="utf-8")).get("kind")
            if found not in kinds:
                raise ConfigError(
                    f"{where}: a {found!r} index; this stage takes {' or '.join(kinds)}"
                )
