"""Language models behind one protocol: local transformers, or an OpenAI-compatible
server. Backends load lazily; importing this package imports neither torch nor openai."""

from rarx.llm.base import (
    LLM,
    ChatPrompt,
    LLMCall,
    LLMError,
    LLMOutput,
    Prompt,
    TokenizationError,
)
from rarx.llm.factory import BACKENDS, LLMSpec, load_llm

__all__ = [
    "BACKENDS",
    "LLM",
    "ChatPrompt",
    "LLMCall",
    "LLMError",
    "LLMOutput",
    "LLMSpec",
    "Prompt",
    "TokenizationError",
    "load_llm",
]
