"""rarx: retrieval and reranking for reasoning-as-retrieval and adaptive RAG."""

from rarx.errors import RarxError
from rarx.types import Document, Hit, Query, QueryState, Ranking

__version__ = "0.1.0"

__all__ = ["Document", "Hit", "Query", "QueryState", "Ranking", "RarxError", "__version__"]
