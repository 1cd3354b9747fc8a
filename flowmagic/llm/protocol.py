"""The one small protocol every LLM provider implements.

The executor builds an :class:`LLMRequest` for each ``llm(...)`` step and awaits
``provider.complete(request)`` on its event loop, or, through :func:`answer`,
``provider.stream(request, on_text)`` when the provider can stream and someone
watches the text arrive. Nothing here imports a vendor SDK.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

TextCallback = Callable[[str], None]

RAW_EXCERPT_CHARS = 500  # how much of a raw answer an error message quotes


@dataclass(frozen=True)
class LLMRequest:
    """A rendered prompt and the settings to answer it with."""

    prompt: str
    model: str
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    schema: Any = None  # a pydantic model class, or None for plain text


def is_count(value: object) -> bool:
    """Whether ``value`` is a token count: a whole number, at least 0 (``True`` is not one).

    >>> is_count(12), is_count(0), is_count(-1), is_count("12"), is_count(True), is_count(1.0)
    (True, True, False, False, False, False)
    """
    return type(value) is int and value >= 0


def count_note(name: str, value: object) -> str | None:
    """Why the server's ``name`` was dropped, or None when it is a count (or absent).

    The note names the field and the type only: the value is the server's choice,
    and it could be anything (a key it echoed, a huge string).
    """
    if value is None or is_count(value):
        return None
    what = "a negative number" if type(value) is int else f"a {type(value).__name__}"
    return f"{name} dropped: the server sent {what}, not a whole number of at least 0"


#: The estimate of :func:`estimate_tokens`: about four characters of English text a token.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Tokens in ``text``, estimated at :data:`CHARS_PER_TOKEN` characters a token (the usual
    rule of thumb for English with OpenAI's tokenizers), for servers that report no usage.

    >>> estimate_tokens(""), estimate_tokens("Hi"), estimate_tokens("The key point is")
    (0, 1, 4)
    """
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass
class LLMResponse:
    """What a provider answered.

    ``value`` is what the step returns: the answer text, or an instance of the
    request's ``schema``. ``text`` is always the raw answer, kept for display and
    for error messages when structured output does not validate.

    Token counts that are not whole numbers of at least 0 (a server may send
    anything there) are set to None when the response is made, and
    ``usage_note`` says which were dropped, so records, caches and sums only
    ever hold numbers.
    """

    text: str
    value: Any
    model: str
    offline: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    usage_note: str | None = None

    def __post_init__(self) -> None:
        notes = []
        for name in ("prompt_tokens", "completion_tokens"):
            note = count_note(name, getattr(self, name))
            if note is not None:
                setattr(self, name, None)
                notes.append(note)
        if self.usage_note:  # the provider's own (e.g. about total_tokens), after these
            notes.append(self.usage_note)
        self.usage_note = "; ".join(notes) or None

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


class LLMError(RuntimeError):
    """A provider failed to answer; ``raw`` holds the answer text when there was one."""

    def __init__(self, message: str, *, raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw


_FENCE_RE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


def unfence(text: str) -> str:
    """``text`` without the Markdown code fence some models wrap around JSON."""
    match = _FENCE_RE.match(text)
    return match.group(1) if match else text


def validated(request: LLMRequest, text: str) -> Any:
    """What a step gets for the answer ``text``: the text, or an instance of the request's
    ``schema`` (an answer that does not fit raises :func:`invalid_answer`'s error)."""
    if request.schema is None:
        return text
    try:
        return request.schema.model_validate_json(unfence(text))
    except ValidationError as exc:
        raise invalid_answer(request.model, request.schema, text, exc) from exc


def invalid_answer(model: str, schema: Any, raw: str, error: BaseException) -> LLMError:
    """The error for an answer that is not valid JSON for ``schema`` (a pydantic model class).

    The message names ``model`` and the schema, and holds the validation error
    and the raw answer, cut to its first :data:`RAW_EXCERPT_CHARS` characters with
    a note of how many were cut; ``.raw`` holds the whole answer.
    """
    cut = len(raw) - RAW_EXCERPT_CHARS
    note = f" (first {RAW_EXCERPT_CHARS} of {len(raw)} characters, {cut} cut)" if cut > 0 else ""
    shown = f"raw answer{note}:\n{raw[:RAW_EXCERPT_CHARS]}"
    name = getattr(schema, "__name__", repr(schema))
    return LLMError(f"{model}: the answer does not match {name}: {error}\n{shown}", raw=raw)


@runtime_checkable
class Provider(Protocol):
    """An LLM backend. One instance serves every step of a run that uses its model.

    A provider may also stream (see :class:`StreamingProvider`); :func:`answer`
    uses ``stream`` when it exists and falls back to ``complete`` otherwise, so a
    provider with only ``complete`` keeps working.
    """

    async def complete(self, request: LLMRequest) -> LLMResponse: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class StreamingProvider(Provider, Protocol):
    """A provider that can also hand out its answer while it is being written."""

    async def stream(self, request: LLMRequest, on_text: TextCallback) -> LLMResponse:
        """Answer ``request`` like ``complete``, calling ``on_text(text_so_far)`` as text arrives.

        ``on_text`` gets the accumulated answer text (not the latest piece), so
        every call's argument is a prefix of the next one's. The return value is
        what ``complete`` would return for the same request (same text, value,
        tokens, model and offline flag); errors are :class:`LLMError` as there.
        """
        ...


async def answer(provider: Provider, request: LLMRequest, on_text: TextCallback | None = None) -> LLMResponse:
    """``provider.stream(request, on_text)`` when the provider streams and ``on_text`` is given,
    else ``provider.complete(request)``."""
    if on_text is not None and isinstance(provider, StreamingProvider):
        return await provider.stream(request, on_text)
    return await provider.complete(request)
