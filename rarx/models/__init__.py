"""Named models and where their weights live: packaged, local path, or a hub name."""

from rarx.models.registry import MODELS, ModelSpec, ResolvedModel, available_models, resolve_model

__all__ = ["MODELS", "ModelSpec", "ResolvedModel", "available_models", "resolve_model"]
