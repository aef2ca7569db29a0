"""Pipelines: stages from YAML, checked before anything loads, run as one stage."""

from rarx.pipeline.pipeline import Pipeline
from rarx.pipeline.resources import Resources
from rarx.pipeline.spec import PipelineSpec, StageSpec, check_indexes, load_spec, parse_spec

__all__ = [
    "Pipeline",
    "PipelineSpec",
    "Resources",
    "StageSpec",
    "check_indexes",
    "load_spec",
    "parse_spec",
]
