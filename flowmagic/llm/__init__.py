"""LLM providers: the protocol, the offline model, an OpenAI-compatible client and prices.

Importing this package is cheap: each name is loaded on first use, the offline model
only when an offline answer is needed, and the ``openai`` SDK only when an
:class:`~flowmagic.llm.openai_provider.OpenAIProvider` is first built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    **dict.fromkeys(("PRICES", "Price", "cost", "set_price"), "prices"),
    **dict.fromkeys(("LLMError", "LLMRequest", "LLMResponse", "Provider", "StreamingProvider", "answer"), "protocol"),
    **dict.fromkeys(
        ("aclose_providers", "ask", "provider_for", "register_provider", "resolve_model", "unregister_provider"),
        "registry",
    ),
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'flowmagic.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"flowmagic.llm.{module}"), name)
    globals()[name] = value
    return value
