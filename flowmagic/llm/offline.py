"""The embedded offline model: deterministic, no network, no weights, used when no API key or server is set.

Its answers come from rules and a vocabulary kept as package data (:mod:`flowmagic.llm.offline_data`),
filled with the prompt's own words by :mod:`flowmagic.llm.offline_rules`: a sum worked out, a yes/no question
answered, a label picked, a field extracted, a text shortened, a list, title, review or welcome written, and
JSON that validates for a ``schema=`` (built by :mod:`flowmagic.llm.schema_instance`). They read like answers
but are not intelligent, and each is flagged ``offline=True``. This module is the provider: the seed, the
simulated delay, streaming and token estimates.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
from typing import Any

from pydantic import BaseModel

from flowmagic.llm.offline_rules import Dice, Reading
from flowmagic.llm.protocol import LLMError, LLMRequest, LLMResponse, TextCallback, validated
from flowmagic.llm.schema_instance import instance

LATENCY_ENV = "FLOWMAGIC_OFFLINE_LATENCY"
DEFAULT_LATENCY = 0.5  # mean seconds; the actual delay is 0.4x..1.6x of it
FIRST_TEXT_SHARE = 0.3  # a streamed answer's first words arrive after this share of the delay


def request_seed(request: LLMRequest) -> bytes:
    """The hash every offline answer and delay is derived from."""
    schema: Any = None
    try:
        schema = None if request.schema is None else [request.schema.__name__, request.schema.model_json_schema()]
    except Exception:  # not a pydantic model: the name still keys the answer
        schema = getattr(request.schema, "__name__", repr(request.schema))
    key = [request.model, request.system, request.prompt, request.temperature, schema]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).digest()


def estimate_tokens(text: str | None) -> int:
    """A rough token count (about 4 tokens per 3 words), good enough for display; counted in chunks of a prompt."""
    return math.ceil(sum(len((text or "")[i : i + 2**16].split()) for i in range(0, len(text or ""), 2**16)) * 4 / 3)


def configured_latency() -> float:
    """Mean offline latency in seconds from ``FLOWMAGIC_OFFLINE_LATENCY`` (read on every call)."""
    try:
        value = float(os.environ.get(LATENCY_ENV, "").strip() or DEFAULT_LATENCY)
    except ValueError:
        return DEFAULT_LATENCY
    return value if math.isfinite(value) and value > 0 else 0.0


class OfflineProvider:
    """The embedded offline model, used when no API key or server is configured.

    The same request always gets the same answer, in any process, after a short seeded delay (mean
    ``FLOWMAGIC_OFFLINE_LATENCY`` seconds, default 0.5; ``0`` disables it). :meth:`stream` hands out
    the same answer a word at a time over the same delay. Example::

        response = asyncio.run(OfflineProvider().complete(LLMRequest(prompt="What is 17*3?", model="offline")))
        response.text, response.offline  # ('17 * 3 = 51', True)
    """

    model_name = "offline"

    def delay_for(self, request: LLMRequest) -> float:
        """Seconds :meth:`complete` waits before answering ``request`` (:meth:`stream` spreads its words over them)."""
        mean = configured_latency()
        return mean * (0.4 + 1.2 * Dice(request_seed(request) + b"latency").random()) if mean else 0.0

    def respond(self, request: LLMRequest) -> LLMResponse:
        """The answer to ``request``, without the simulated delay."""
        reading = Reading(request.prompt, request.system, request_seed(request))
        if request.schema is None:
            keep = None if request.max_tokens is None else max(1, request.max_tokens * 3 // 4)
            text = " ".join(reading.answer().split(" ")[:keep])
            value: Any = text
        elif not (isinstance(request.schema, type) and issubclass(request.schema, BaseModel)):
            raise LLMError(f"offline model: schema must be a pydantic BaseModel class, got {request.schema!r}")
        else:
            value = validated(request, json.dumps(instance(request.schema, reading), ensure_ascii=False))
            text = value.model_dump_json(by_alias=True)
        return LLMResponse(
            text=text,
            value=value,
            model=self.model_name,
            offline=True,
            prompt_tokens=estimate_tokens(f"{request.system or ''} {request.prompt}"),
            completion_tokens=estimate_tokens(text),
            extra={"estimated_usage": True},
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The answer to ``request`` after its seeded delay (see :meth:`delay_for`)."""
        if (delay := self.delay_for(request)) > 0:
            await asyncio.sleep(delay)
        return self.respond(request)

    async def stream(self, request: LLMRequest, on_text: TextCallback) -> LLMResponse:
        """The answer :meth:`complete` gives, handed to ``on_text(text_so_far)`` a word at a time: the first after
        ``FIRST_TEXT_SHARE`` of the seeded delay, the rest spread over what remains of it. An answer that cannot
        be built raises at once."""
        response, delay = self.respond(request), self.delay_for(request)
        ends = [m.end() for m in re.finditer(r"\S+\s*", response.text)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i, end in enumerate(ends):
            share = FIRST_TEXT_SHARE + (1 - FIRST_TEXT_SHARE) * i / max(1, len(ends) - 1)
            if (wait := started + delay * share - loop.time()) > 0:
                await asyncio.sleep(wait)
            on_text(response.text[:end])
        if (rest := started + delay - loop.time()) > 0:  # an answer of one word, or none, still takes the delay
            await asyncio.sleep(rest)
        return response

    async def aclose(self) -> None:
        """Nothing to release; present to satisfy :class:`Provider`."""

    def __repr__(self) -> str:
        return "OfflineProvider()"
