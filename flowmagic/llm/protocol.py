"""The one small protocol every LLM provider implements.

The executor builds an :class:`LLMRequest` for each ``llm(...)`` step and awaits
``provider.complete(request)`` on its event loop. Nothing here imports a vendor SDK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class LLMRequest:
    """A rendered prompt and the settings to answer it with."""

    prompt: str
    model: str
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    schema: Any = None  # a pydantic model class, or None for plain text


@dataclass
class LLMResponse:
    """What a provider answered.

    ``value`` is what the step returns: the answer text, or an instance of the
    request's ``schema``. ``text`` is always the raw answer, kept for display and
    for error messages when structured output does not validate.
    """

    text: str
    value: Any
    model: str
    offline: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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


@runtime_checkable
class Provider(Protocol):
    """An LLM backend. One instance serves every step of a run that uses its model."""

    async def complete(self, request: LLMRequest) -> LLMResponse: ...

    async def aclose(self) -> None: ...
