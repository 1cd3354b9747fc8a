"""A provider for OpenAI and any OpenAI-compatible server (Ollama, vLLM, LM Studio...).

The ``openai`` SDK is imported when the first provider is built, never at import time.

Two layers retry, each on its own terms:

- The SDK retries one request: rate limits (429), 408, 409, server errors (5xx)
  and dropped connections, ``max_retries`` times (2 by default). It waits what
  the server's Retry-After asks (up to 60 s), else an exponential backoff from
  0.5 s, with jitter. Other errors (401, 400...) are not retried there.
- A step's ``@retries(N)`` then runs the whole step again, for any error (a
  timeout, an answer that does not fit its schema, what the SDK gave up on).
  An error answer's Retry-After travels on :class:`LLMStatusError`
  (``retry_after``), so the step waits at least that long too.

So an ``llm`` step with ``@retries(N)`` sends at most ``(N + 1) * (max_retries + 1)`` requests.

Everything the server chooses and flowmagic keeps (the answer, the model name,
the response id, error messages) goes through :func:`~flowmagic.llm.secrets.redact`
first, and its token counts are checked by :class:`~flowmagic.llm.protocol.LLMResponse`:
a server that echoes the key, whole or in part, puts it in no record, cache or log.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from flowmagic.llm import log_redaction
from flowmagic.llm.protocol import (
    LLMError,
    LLMRequest,
    LLMResponse,
    TextCallback,
    count_note,
    estimate_tokens,
    validated,
)
from flowmagic.llm.secrets import StreamRedactor, hold, redact, safe_url
from flowmagic.llm.server_errors import LLMStatusError, LLMTruncated, retry_after
from flowmagic.llm.structured import refuses_format, shaped, transient, ways_from

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletionChunk

# Local servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"

@functools.cache
def _api_errors() -> tuple[type[Exception], ...]:
    """What a failed request or stream raises (the SDK is imported on first use)."""
    import openai

    errors: list[type[Exception]] = [openai.OpenAIError, json.JSONDecodeError]
    try:  # older SDKs let the transport's errors escape from the middle of a stream
        import httpx
    except ImportError:
        pass
    else:
        errors.append(httpx.HTTPError)
    return tuple(errors)


def _aiohttp_client() -> Any:
    """The SDK's aiohttp transport (``openai[aiohttp]``), or None without it (the SDK's default then).

    Measured on two cores, 100 calls 32 at a time: about 1.0 ms of CPU a call
    against 1.6 ms on the default transport, so each round of calls waits less.
    """
    try:
        from openai import DefaultAioHttpClient

        return DefaultAioHttpClient()
    except (ImportError, RuntimeError):  # an older SDK, or the extra is not installed
        return None


def _params(request: LLMRequest) -> dict[str, Any]:
    """The chat completions arguments for ``request``, but for its ``schema`` (see :mod:`.structured`)."""
    messages: list[dict[str, str]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": request.prompt})
    params: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.max_tokens is not None:
        params["max_tokens"] = request.max_tokens
    return params


def _split_query(base_url: str | None) -> tuple[str | None, dict[str, str]]:
    """``base_url`` without its query string, and that query's parameters.

    The SDK appends the endpoint's path to the base URL as written, after any
    query (``/v1?api-key=K`` would become ``/v1?api-key=Kchat/completions``), so
    a query (a key, ``api-version``...) is sent as the client's default query instead.
    """
    if base_url is None:
        return None, {}
    parts = urlsplit(base_url)
    if not parts.query:
        return base_url, {}
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LLMError(f"the base URL names a query parameter more than once: {', '.join(repeated)}")
    return urlunsplit(parts._replace(query="")), dict(pairs)


def _response(
    request: LLMRequest,
    *,
    text: str,
    refusal: str | None,
    model: str | None,
    usage: CompletionUsage | None,
    extra: dict[str, Any],
    counted: bool = False,
) -> LLMResponse:
    """The response for a finished answer: a refusal raises, and a ``schema`` answer is validated.

    Every string the server chose is redacted first, so neither the value, the raw
    answer nor an error quotes a secret it echoed. With ``counted``, a response with no usage
    gets tokens estimated here (:func:`~flowmagic.llm.protocol.estimate_tokens`), marked
    ``estimated_usage``. An answer that does not validate
    (or is not JSON) raises :class:`LLMError` with the validation error and the raw
    answer (see :func:`invalid_answer`). Token counts that are not whole numbers are
    dropped with a note (see :class:`LLMResponse`), the value itself never kept.
    """
    text, refusal = redact(text), redact(refusal or "")
    if not text and refusal:
        raise LLMError(f"{request.model} refused: {refusal}", raw=refusal)
    value = validated(request, text)
    total = getattr(usage, "total_tokens", None)  # not kept (LLMResponse adds up its own), but checked
    prompt_tokens = getattr(usage, "prompt_tokens", None)
    completion_tokens = getattr(usage, "completion_tokens", None)
    extra = {k: redact(v) if isinstance(v, str) else v for k, v in extra.items()}
    if usage is None and counted:  # a stream that carried no usage: counted here, and marked so
        prompt_tokens = estimate_tokens((request.system or "") + request.prompt)
        completion_tokens = estimate_tokens(text)
        extra["estimated_usage"] = True
    return LLMResponse(
        text=text,
        value=value,
        model=redact(model) if model else request.model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        extra=extra,
        usage_note=count_note("total_tokens", total),
    )


class OpenAIProvider:
    """Answers requests through ``openai.AsyncOpenAI``'s chat completions API.

    ``api_key`` and ``base_url`` default to ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL``. With a base URL but no key, a placeholder key is sent,
    which local servers accept. The SDK retries rate limits, server errors and
    dropped connections itself (``max_retries`` times, honouring Retry-After);
    an error status it gives up on is an :class:`LLMStatusError` carrying the
    last Retry-After for the step's own ``@retries`` (see the module docstring).
    A query string in the base URL (``?api-key=...``) is sent with every request.
    Errors, answers and the SDK's logs never quote the API key, the URL's password
    or query values, or any run of 8 of their characters (see
    :mod:`flowmagic.llm.secrets`), and errors do not keep the SDK's exception
    (whose request holds the Authorization header) as their context.
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
        # counted as secrets from here on, so nothing below can show them
        hold(self, api_key=None if api_key == PLACEHOLDER_API_KEY else api_key, base_url=base_url)
        from openai import AsyncOpenAI

        endpoint, query = _split_query(base_url)
        options: dict[str, Any] = {"api_key": api_key, "base_url": endpoint, "max_retries": max_retries}
        if query:
            options["default_query"] = query
        if timeout is not None:
            options["timeout"] = timeout
        # aiohttp refuses credentials in the URL next to the Authorization header (every request
        # would fail); the SDK's default transport sends them, as Basic auth
        http_client = None if "@" in urlsplit(endpoint or "").netloc else _aiohttp_client()
        if http_client is not None:
            options["http_client"] = http_client
        self.base_url = base_url
        self._client: AsyncOpenAI = AsyncOpenAI(**options)
        self._ways: dict[str, str] = {}  # per model: the way of asking for a schema that worked
        log_redaction.install()  # the SDK's and its transport's loggers exist now

    @property
    def closed(self) -> bool:
        return self._client.is_closed()

    def _failure(self, model: str, exc: Exception) -> LLMError:
        # The SDK's exception text may quote the request; ours is redacted. Callers raise it
        # outside their ``except`` block, so it does not keep the SDK's exception as context.
        if isinstance(exc, json.JSONDecodeError):  # a 200 whose body is not JSON (broken proxy or server)
            return LLMError(redact(f"{model}: the server's response is not JSON: {exc}"))
        message = f"{model}: {type(exc).__name__}: {exc}"
        cause = exc.__cause__
        if cause is not None and str(cause) and str(cause) not in message:  # "Connection error." says little
            message += f" ({type(cause).__name__}: {cause})"
        message = redact(message)
        response = getattr(exc, "response", None)
        status = getattr(exc, "status_code", None)
        if response is not None and isinstance(status, int):
            return LLMStatusError(message, status=status, retry_after=retry_after(response.headers))
        return LLMError(message)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return await self._shaped(request, lambda params, client: self._complete(request, params, client))

    async def stream(self, request: LLMRequest, on_text: TextCallback) -> LLMResponse:
        """Answer ``request`` as :meth:`complete` does, calling ``on_text(text_so_far)`` as text arrives.

        Asks the server for the token usage in a final chunk; when a server sends none, the
        tokens are estimated (and marked so). A stream that ends without a finish reason was cut
        off: an :class:`LLMTruncated` error holding the text so far, never a success. A failure
        before or during the stream (an error event, a dropped connection) is an :class:`LLMError`.
        """
        return await self._shaped(request, lambda params, client: self._stream(request, params, client, on_text))

    async def _shaped(
        self, request: LLMRequest, send: Callable[[dict[str, Any], Any], Awaitable[LLMResponse]]
    ) -> LLMResponse:
        """``send(params, client)``, with a ``schema`` asked for the best way the server takes (see
        :mod:`.structured`): a way refused for its format is not retried, the next one is tried."""
        params = _params(request)
        if request.schema is None:
            return await send(params, self._client)
        learned = self._ways.get(request.model)
        for way in ways_from(learned):
            asked = shaped(params, way, request.schema)
            if way == learned:
                return await send(asked, self._client)
            try:
                response = await send(asked, self._client.with_options(max_retries=0))
            except LLMStatusError as exc:
                if refuses_format(exc.status, str(exc)) and way != "prompt":
                    continue
                if not transient(exc.status):
                    raise
                response = await send(asked, self._client)  # what the SDK would have retried
            self._ways[request.model] = way
            return response
        raise AssertionError("the last way, a prompt, is never refused for its format")

    async def _complete(self, request: LLMRequest, params: dict[str, Any], client: Any) -> LLMResponse:
        failure: LLMError | None = None
        try:
            response = await client.chat.completions.create(**params)
        except _api_errors() as exc:
            failure = self._failure(request.model, exc)
        if failure is not None:
            raise failure
        if not response.choices:
            raise LLMError(f"{request.model}: the server returned no choices")
        choice = response.choices[0]
        return _response(
            request,
            text=choice.message.content or "",
            refusal=getattr(choice.message, "refusal", None),
            model=response.model,
            usage=response.usage,
            extra={"id": response.id, "finish_reason": choice.finish_reason},
        )

    async def _stream(
        self, request: LLMRequest, params: dict[str, Any], client: Any, on_text: TextCallback
    ) -> LLMResponse:
        params = {**params, "stream": True, "stream_options": {"include_usage": True}}
        shown = StreamRedactor()  # what on_text is given is redacted too: a watcher may keep it
        text, refusal, seen_choices = "", "", False
        model: str | None = None
        response_id: str | None = None
        finish_reason: str | None = None
        usage: CompletionUsage | None = None
        async with contextlib.aclosing(self._chunks(request.model, params, client)) as chunks:
            async for chunk in chunks:
                model, response_id = chunk.model or model, chunk.id or response_id
                usage = chunk.usage or usage
                if not chunk.choices:
                    continue
                seen_choices = True
                choice = chunk.choices[0]
                finish_reason = choice.finish_reason or finish_reason
                refusal += getattr(choice.delta, "refusal", None) or ""
                if choice.delta.content:
                    text += choice.delta.content
                    on_text(shown(text))
        if not seen_choices:
            raise LLMError(f"{request.model}: the server returned no choices")
        if finish_reason is None:
            raise LLMTruncated(request.model, redact(text))
        return _response(
            request,
            text=text,
            refusal=refusal,
            model=model,
            usage=usage,
            extra={"id": response_id, "finish_reason": finish_reason},
            counted=True,
        )

    async def _chunks(
        self, model: str, params: dict[str, Any], client: Any
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The stream's chunks, with its errors turned into :class:`LLMError` (``on_text``'s are not)."""
        failure: LLMError | None = None
        try:
            chunks = await client.chat.completions.create(**params)
            async with chunks:  # closes the response if the caller stops early
                async for chunk in chunks:
                    yield chunk
        except _api_errors() as exc:
            failure = self._failure(model, exc)
        if failure is not None:
            raise failure

    async def aclose(self) -> None:
        await self._client.close()

    def __repr__(self) -> str:
        return f"OpenAIProvider(base_url={safe_url(self.base_url) if self.base_url else None!r})"
