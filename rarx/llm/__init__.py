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
from rarx.llm.factory import BACKENDS, LLMRef, LLMSpec, llm_name, load_llm

__all__ = [
    "BACKENDS",
    "LLM",
    "ChatPrompt",
    "LLMCall",
    "LLMError",
    "LLMOutput",
    "LLMRef",
    "LLMSpec",
    "Prompt",
    "TokenizationError",
    "llm_name",
    "load_llm",
]
