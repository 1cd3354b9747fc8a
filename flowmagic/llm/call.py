"""An ``llm(...)`` call in a step: its arguments are evaluated first, the prompt is sent later.

Inside a step, ``llm`` is :func:`deferred_llm`: evaluating the step's expression gives an
:class:`LLMCall` with the arguments ready and nothing sent. The engine then awaits
:func:`call` on its event loop, so a prompt step never holds a thread while it waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..dsl.names import PLACEHOLDERS_ARG, TEMPLATES_ARG
from .prices import cost
from .protocol import LLMError, LLMRequest
from .recording import recorded, replayed
from .registry import ask, resolve_model
from .template import render

#: Called with the step's llm info (prompt, model, the answer so far) while an answer streams in.
OnText = Callable[[dict[str, Any]], None]


@dataclass
class LLMCall:
    """An ``llm(...)`` call with its arguments evaluated, waiting to be sent."""

    template: Any
    placeholders: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    templates: tuple[str, ...] = ()  # literal templates to render: "prompt", "system"


def deferred_llm(template: Any, **kwargs: Any) -> LLMCall:
    """``llm`` as a step sees it: records the call instead of making it."""
    placeholders = kwargs.pop(PLACEHOLDERS_ARG, {})
    templates = kwargs.pop(TEMPLATES_ARG, ())
    return LLMCall(template=template, placeholders=placeholders, settings=kwargs, templates=templates)


def request_for(call: LLMCall, model: str | None, temperature: float | None) -> LLMRequest:
    """The request to send: literal templates rendered (a prompt built in Python is sent as it is),
    the call's own model and temperature, else the run's."""
    settings = dict(call.settings)
    prompt = call.template
    system = settings.pop("system", None)
    if "prompt" in call.templates:
        prompt = render(prompt, call.placeholders)
    if "system" in call.templates:
        system = render(system, call.placeholders)
    if settings.get("temperature") is None and temperature is not None:
        settings["temperature"] = temperature
    chosen = resolve_model(settings.pop("model", None) or model)
    return LLMRequest(prompt=str(prompt), model=chosen, system=system, **settings)


async def call(
    call: LLMCall,
    info: dict[str, Any],
    *,
    model: str | None = None,
    temperature: float | None = None,
    on_text: OnText | None = None,
    record: str | None = None,
    replay: str | None = None,
    replay_fallback: bool = False,
) -> Any:
    """Send ``call`` and return the step's value; ``info["llm"]`` records the prompt, answer,
    tokens and cost (and the raw answer of one that did not fit its schema).

    With ``on_text`` the answer streams, and ``on_text`` sees a snapshot of the record after
    each piece; without it the answer is asked for whole, which costs the client less. With
    ``record`` the answer is also written to that file; with ``replay`` it comes from that file
    (see :mod:`.recording`).
    """
    request = request_for(call, model, temperature)
    shown = info["llm"] = {"prompt": request.prompt, "system": request.system, "model": request.model}

    sent = time.perf_counter()

    def streamed(text: str) -> None:
        if "answer" not in shown:  # the first text: what came before was a wait (see StepRecord.first_token)
            shown["first_text"] = round(time.perf_counter() - sent, 4)
        shown["answer"] = text
        if on_text is not None:
            on_text(dict(shown))  # a snapshot: the record grows

    try:
        text = streamed if on_text is not None else None
        if replay is not None:
            response = await replayed(replay, request, text, ask if replay_fallback else None)
        elif record is not None:
            response = await recorded(record, request, text, ask)
        else:
            response = await ask(request, text)
    except LLMError as exc:
        if exc.raw is not None:  # e.g. an answer that does not fit the schema: show it
            shown["answer"] = exc.raw
        raise
    shown.update(
        answer=response.text,
        offline=response.offline,
        prompt_tokens=response.prompt_tokens,
        completion_tokens=response.completion_tokens,
        cost=cost(response.model or request.model, response.prompt_tokens, response.completion_tokens),
    )
    if response.offline:  # the embedded model's delay is made up: no server kept it waiting
        shown.pop("first_text", None)
    if response.extra.get("replayed"):  # the model that was recorded answered
        shown.update(replayed=response.extra["replayed"], model=response.model)
    if response.extra.get("estimated_usage"):  # the server reported no usage: counted here, roughly
        shown["tokens_estimated"] = True
    if response.usage_note:  # the server's token counts were not numbers: dropped, and said so
        shown["usage_note"] = response.usage_note
    return response.value


__all__ = ["LLMCall", "OnText", "call", "deferred_llm", "request_for"]
