"""The errors an OpenAI-compatible server's answers become: an error status (with the wait its
Retry-After asks for) and an answer cut off in the middle of its stream."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

from flowmagic.llm.protocol import LLMError


class LLMStatusError(LLMError):
    """The server answered with an error status (after the SDK's own retries).

    ``status`` is the HTTP status; ``retry_after`` the seconds its Retry-After
    (or retry-after-ms) header asked the client to wait, None without one. A
    step's ``@retries`` waits at least that long before its next attempt.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class LLMTruncated(LLMError):
    """A streamed answer that ended without a finish reason: the server cut it off (llama.cpp's
    server does so by default when another request arrives). ``raw`` holds the text so far; a
    step's ``@retries`` asks again."""

    def __init__(self, model: str, text: str) -> None:
        super().__init__(
            f"{model}: the answer was cut off after {len(text):,} characters (the stream ended with no "
            "finish reason; a server that starts another request in its place does this)",
            raw=text,
        )


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a response's ``retry-after-ms`` or ``Retry-After`` header asks for (seconds or an HTTP date).

    >>> retry_after({"retry-after": "1.5"}), retry_after({"retry-after-ms": "250"}), retry_after({})
    (1.5, 0.25, None)
    """
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            try:  # Retry-After may be a date
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, OverflowError):
                continue
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None


__all__ = ["LLMStatusError", "LLMTruncated", "retry_after"]
