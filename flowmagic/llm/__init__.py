"""LLM providers: the protocol, the offline model, an OpenAI-compatible client and prices.

Importing this package is cheap: the ``openai`` SDK is imported only when an
:class:`~flowmagic.llm.openai_provider.OpenAIProvider` is first built.
"""

from flowmagic.llm.prices import PRICES, Price, cost, set_price
from flowmagic.llm.protocol import LLMError, LLMRequest, LLMResponse, Provider, StreamingProvider, answer
from flowmagic.llm.registry import (
    aclose_providers,
    ask,
    provider_for,
    register_provider,
    resolve_model,
    unregister_provider,
)

__all__ = [
    "PRICES",
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "Price",
    "Provider",
    "StreamingProvider",
    "aclose_providers",
    "answer",
    "ask",
    "cost",
    "provider_for",
    "register_provider",
    "resolve_model",
    "set_price",
    "unregister_provider",
]
