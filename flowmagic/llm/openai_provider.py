"""A provider for OpenAI and any OpenAI-compatible server (Ollama, vLLM, LM Studio...).

The ``openai`` SDK is imported when the first provider is built, never at import time.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from flowmagic.llm.protocol import LLMError, LLMRequest, LLMResponse

if TYPE_CHECKING:
    from openai import AsyncOpenAI

# Local servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"

_FENCE_RE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


def _schema_name(schema: type[Any]) -> str:
    # The API accepts ^[a-zA-Z0-9_-]{1,64}$ for json_schema names.
    return (re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__) or "Answer")[:64]


def _unfence(text: str) -> str:
    """Drop a Markdown code fence some local models wrap around JSON."""
    match = _FENCE_RE.match(text)
    return match.group(1) if match else text


class OpenAIProvider:
    """Answers requests through ``openai.AsyncOpenAI``'s chat completions API.

    ``api_key`` and ``base_url`` default to ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL``. With a base URL but no key, a placeholder key is sent,
    which local servers accept. The SDK retries rate limits, server errors and
    dropped connections itself (``max_retries`` times, honouring Retry-After).
    The client belongs to the event loop it is first used on; call
    :meth:`aclose` on that loop.

    Example::

        provider = OpenAIProvider(base_url="http://127.0.0.1:11434/v1")
        response = await provider.complete(LLMRequest(prompt="Hi", model="llama3.2"))
        print(response.text, response.total_tokens)
        await provider.aclose()
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float | None = None,
    ) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None:
            if base_url is None:
                raise LLMError(
                    "no OpenAI credentials: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local "
                    "OpenAI-compatible server, or use model='offline'"
                )
            api_key = PLACEHOLDER_API_KEY
        from openai import AsyncOpenAI

        options: dict[str, Any] = {"api_key": api_key, "base_url": base_url, "max_retries": max_retries}
        if timeout is not None:
            options["timeout"] = timeout
        self.base_url = base_url
        self._secret = api_key
        self._client: AsyncOpenAI = AsyncOpenAI(**options)

    @property
    def closed(self) -> bool:
        return self._client.is_closed()

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    async def complete(self, request: LLMRequest) -> LLMResponse:
        import openai

        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.prompt})
        params: dict[str, Any] = {"model": request.model, "messages": messages}
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(request.schema), "schema": request.schema.model_json_schema()},
            }
        try:
            response = await self._client.chat.completions.create(**params)
        except openai.OpenAIError as exc:
            # `from None`: the SDK's exception text may quote the request; ours is redacted.
            raise LLMError(self._redact(f"{request.model}: {type(exc).__name__}: {exc}")) from None
        except json.JSONDecodeError as exc:  # a 200 whose body is not JSON (broken proxy or server)
            raise LLMError(f"{request.model}: the server's response is not JSON: {exc}") from None

        if not response.choices:
            raise LLMError(f"{request.model}: the server returned no choices")
        message = response.choices[0].message
        if message.content is None and getattr(message, "refusal", None):
            raise LLMError(f"{request.model} refused: {message.refusal}", raw=message.refusal)
        text = message.content or ""
        value: Any = text
        if request.schema is not None:
            try:
                value = request.schema.model_validate_json(_unfence(text))
            except ValidationError as exc:
                raise LLMError(
                    f"{request.model}: the answer does not match {request.schema.__name__}: {exc}", raw=text
                ) from exc
        usage = response.usage
        return LLMResponse(
            text=text,
            value=value,
            model=response.model or request.model,
            prompt_tokens=usage.prompt_tokens if usage is not None else None,
            completion_tokens=usage.completion_tokens if usage is not None else None,
            extra={"id": response.id, "finish_reason": response.choices[0].finish_reason},
        )

    async def aclose(self) -> None:
        await self._client.close()

    def __repr__(self) -> str:
        return f"OpenAIProvider(base_url={self.base_url!r})"
