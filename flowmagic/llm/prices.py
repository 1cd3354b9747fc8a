"""What an answer cost, from a price table in US dollars per million tokens.

Example::

    set_price("llama3.2", input=0, output=0)            # a local model is free
    cost("gpt-4o-mini-2024-07-18", 1_000, 500)           # priced as gpt-4o-mini: 0.00045
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """US dollars per million input (prompt) and output (completion) tokens."""

    input: float
    output: float

    def __post_init__(self) -> None:
        for name, value in (("input", self.input), ("output", self.output)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} price must be a finite number >= 0, got {value!r}")


# OpenAI's list prices when this table was written (standard tier, no cached-input
# discount). Prices change: check them against your provider's price page and
# override or add models with set_price() (or by assigning PRICES[model] = Price(...)).
PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "o4-mini": Price(1.10, 4.40),
    "offline": Price(0.0, 0.0),
}


def set_price(model: str, input: float, output: float) -> None:
    """Price ``model`` (and its dated snapshots) at ``input`` and ``output`` dollars per million tokens."""
    PRICES[model] = Price(input, output)


def price_for(model: str) -> Price | None:
    """The price of ``model``: its own entry, else the longest key ``k`` with ``model.startswith(k + "-")``
    (so ``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``), else None."""
    if model in PRICES:
        return PRICES[model]
    keys = [key for key in PRICES if model.startswith(key + "-")]
    return PRICES[max(keys, key=len)] if keys else None


def cost(model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """Dollars for ``prompt_tokens`` in and ``completion_tokens`` out of ``model``.

    None when the model has no price (see :func:`price_for`) or neither token count
    is known; a count that alone is unknown counts as 0.
    """
    price = price_for(model)
    if price is None or (prompt_tokens is None and completion_tokens is None):
        return None
    return ((prompt_tokens or 0) * price.input + (completion_tokens or 0) * price.output) / 1_000_000
