"""LLM providers: the protocol, the offline model and an OpenAI-compatible client.

Importing this package is cheap: the ``openai`` SDK is imported only when an
:class:`~flowmagic.llm.openai_provider.OpenAIProvider` is first built.
"""

from flowmagic.llm.protocol import LLMError, LLMRequest, LLMResponse, Provider
from flowmagic.llm.registry import aclose_providers, provider_for, register_provider, resolve_model

__all__ = [
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "Provider",
    "aclose_providers",
    "provider_for",
    "register_provider",
    "resolve_model",
]
