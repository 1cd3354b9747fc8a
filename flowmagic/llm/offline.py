"""The embedded offline model: deterministic, no network, no weights, used when no API key or server is set.

Its answers come from rules and a vocabulary kept as package data, filled with the prompt's own words by
:mod:`flowmagic.llm.offline_rules`: a sum worked out, a yes/no question answered, a label picked, a field
extracted, a text shortened, a list, title, review or welcome written, and JSON that validates for a
``schema=``. They read like answers but are not intelligent, and each is flagged ``offline=True``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import enum
import hashlib
import json
import math
import os
import re
import types
import typing
import uuid
from collections.abc import Sequence
from typing import Any, TypeGuard

from pydantic import BaseModel, ValidationError

from flowmagic.llm.offline_rules import Reading
from flowmagic.llm.offline_text import Dice, calculate, choose, vocab
from flowmagic.llm.protocol import LLMError, LLMRequest, LLMResponse, TextCallback, invalid_answer

LATENCY_ENV = "FLOWMAGIC_OFFLINE_LATENCY"
DEFAULT_LATENCY = 0.5  # mean seconds; the actual delay is 0.4x..1.6x of it
FIRST_TEXT_SHARE = 0.3  # a streamed answer's first words arrive after this share of the delay
_SCHEMA_DEPTH = 4  # nested models deeper than this get no optional children and empty lists
_TIMES = {dt.datetime: "2024-05-17T10:30:00", dt.date: "2024-05-17", dt.time: "10:30:00"}


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


def _is_model(tp: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _number(name: str, r: Reading, bounds: dict[str, Any], integer: bool) -> float | int:
    """A number for field ``name``: a sum the prompt asks for, a year it names, a score, a share..."""
    found, year, roll = calculate(r.ask), re.search(r"\b(?:1[5-9]|20)\d\d\b", r.text[:2000]), r.dice.random()
    value: float = round(roll * 100, 2) if not integer else 1 + int(roll * 99)
    if re.search(r"answer|result|total|sum|value|product", name, re.I) and found and found[1] is not None:
        value = float(found[1])
    elif "year" in name.lower():
        value = int(year[0]) if year else 1980 + int(roll * 45)
    elif re.search(r"score|rating|stars|grade", name, re.I):
        value = 1 + int(roll * 10) if integer else round(1 + roll * 9, 1)
    elif re.search(r"prob|confidence|ratio|share|percent", name, re.I) and not integer:
        value = round(roll, 2)
    step = 1 if integer else 0.01
    if (low := bounds.get("ge", bounds.get("gt"))) is not None:
        value = max(value, low + step * ("gt" in bounds))
    if (high := bounds.get("le", bounds.get("lt"))) is not None:
        value = min(value, high - step * ("lt" in bounds))
    return int(value) if integer else float(value)


def _value(tp: Any, name: str, r: Reading, depth: int, meta: Sequence[Any] = ()) -> Any:
    """A JSON-ready value for annotation ``tp`` of field ``name`` (the name picks the content, see ``fields``)."""
    origin, args, v = typing.get_origin(tp), typing.get_args(tp), vocab()
    bounds = {
        k: getattr(m, k)
        for m in meta
        for k in ("ge", "gt", "le", "lt", "min_length", "max_length")
        if getattr(m, k, None) is not None
    }
    if origin is typing.Annotated:
        return _value(args[0], name, r, depth, [*meta, *args[1:]])
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        return _value(options[0], name, r, depth, meta) if options and depth < _SCHEMA_DEPTH else None
    if origin is typing.Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        picked = choose(list(args) if origin is typing.Literal else list(tp), r.text)
        return picked.value if isinstance(picked, enum.Enum) else picked
    if _is_model(tp):
        return {
            f.alias or n: _value(f.annotation, n, r, depth + 1, f.metadata)
            for n, f in tp.model_fields.items()
            if f.is_required()
        }
    if origin is tuple and args and args[-1] is not Ellipsis:
        return [_value(a, name, r, depth) for a in args]
    if origin in (list, set, frozenset, tuple, Sequence) or tp in (list, set, frozenset, tuple):
        m = v["counts"][0].search(r.text[:2000])
        count = (int(m[1]) if m[1].isdigit() else v["number_words"][m[1].lower()]) if m else 2
        count = (
            0 if depth >= _SCHEMA_DEPTH else max(bounds.get("min_length", 0), min(count, bounds.get("max_length", 20)))
        )
        items: list[Any] = []
        for r.index in range(count * 5):  # re-roll repeats: lists of identical items look broken, and sets refuse them
            item = _value(args[0] if args else str, re.sub(r"s$", "", name), r, depth)
            items += [item] if item not in items and len(items) < count else []
        return items
    if origin is dict or tp is dict:
        return {w: _value(args[1] if args else str, name, r, depth) for w in r.words[:2]}
    if tp is bool:
        return (
            r.yes()[0]
            if re.search(r"^(?:is_|has_|ok$|valid|good|approved|correct|pass|polite)", name)
            else r.dice.random() < 0.5
        )
    if tp in (int, float, decimal.Decimal):
        return _number(name, r, bounds, integer=tp is int)
    if tp in _TIMES or tp is uuid.UUID:
        return _TIMES.get(tp) or str(uuid.UUID(bytes=hashlib.sha256(name.encode()).digest()[:16]))
    say = next(say for pattern, say in v["fields"] if re.search(pattern, name, re.I))
    return r.render(r.dice.pick(say))[: bounds.get("max_length")].ljust(bounds.get("min_length", 0), ".")


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
            words = reading.answer().split(" ")
            keep = None if request.max_tokens is None else max(1, request.max_tokens * 3 // 4)
            text = " ".join(words[:keep])
            value: Any = text
        elif not _is_model(request.schema):
            raise LLMError(f"offline model: schema must be a pydantic BaseModel class, got {request.schema!r}")
        else:
            raw = json.dumps(_value(request.schema, "", reading, 0), ensure_ascii=False)
            try:
                model = request.schema.model_validate_json(raw)
            except ValidationError as exc:
                raise invalid_answer(request.model, request.schema, raw, exc) from exc
            text, value = model.model_dump_json(by_alias=True), model
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
