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
from rarx.llm.factory import BACKENDS, LLMChoice, LLMRef, LLMSpec, llm_name, load_llm
from rarx.llm.preference import choose_llm

__all__ = [
    "BACKENDS",
    "LLM",
    "ChatPrompt",
    "LLMCall",
    "LLMChoice",
    "LLMError",
    "LLMOutput",
    "LLMRef",
    "LLMSpec",
    "Prompt",
    "TokenizationError",
    "choose_llm",
    "llm_name",
    "load_llm",
]
