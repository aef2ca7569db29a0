"""Pipelines: stages from YAML, checked before anything loads, run as one stage."""

from rarx.pipeline.pipeline import Pipeline
from rarx.pipeline.resources import ConcurrencyPolicy, Resources, Serial, Shared
from rarx.pipeline.spec import PipelineSpec, StageSpec, check_indexes, load_spec, parse_spec

__all__ = [
    "ConcurrencyPolicy",
    "Pipeline",
    "PipelineSpec",
    "Resources",
    "Serial",
    "Shared",
    "StageSpec",
    "check_indexes",
    "load_spec",
    "parse_spec",
]
