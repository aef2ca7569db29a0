"""rarx: retrieval and reranking for reasoning-as-retrieval and adaptive RAG."""

from rarx.errors import RarxError
from rarx.types import Document, Hit, Query, QueryState, Ranking

__version__ = "0.1.0"

__all__ = [
    "Document",
    "Hit",
    "Pipeline",
    "Query",
    "QueryState",
    "Ranking",
    "RarxError",
    "__version__",
]


def __getattr__(name: str) -> object:
    # Pipeline is imported on first use, so `import rarx` stays light.
    if name == "Pipeline":
        from rarx.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'rarx' has no attribute {name!r}")
