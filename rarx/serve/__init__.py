"""``rarx serve``: named indexes and pipelines over HTTP (FastAPI + uvicorn), with
admission control, dynamic batching and Prometheus metrics. ``create_app`` needs the
``serve`` extra; it is imported on first use, so the configuration imports without it."""

from rarx.serve.config import Limits, ServeConfig

__all__ = ["Limits", "ServeConfig", "create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from rarx.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'rarx.serve' has no attribute {name!r}")
