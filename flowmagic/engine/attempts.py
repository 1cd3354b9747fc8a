"""A step's attempts: retries with backoff, a deadline each, and where its code is evaluated.

The driver runs a step on its event loop through :func:`attempts` when the step needs
what the loop gives (``@retries``, ``@timeout``, an ``llm`` call, an async call, the
cluster). Each attempt evaluates the expression (:func:`evaluate`): cheap code and
coroutines on the loop, sync calls on a worker thread, on the cluster when there is one;
an ``llm(...)`` call is sent from the loop. Nothing here decides when a step starts or
records what happened: the :class:`Host` (the driver) does.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any, Protocol

from ..errors import StepTimeout
from ..flow.compiled import Code
from ..flow.model import StepOptions
from ..llm.call import LLMCall, deferred_llm
from .evaluate import is_awaitable, where
from .remote import Remote

#: The longest wait between two attempts, whatever the backoff or a server's Retry-After say.
MAX_RETRY_DELAY = 120.0


class Host(Protocol):
    """What attempts need from the driver."""

    remote: Remote | None
    async_callees: dict[Any, bool]

    @property
    def cancelling(self) -> bool:
        """The run is being cancelled: no attempt should follow."""

    def started(self, label: str, attempt: int, detail: dict[str, Any] | None) -> bool:
        """Record attempt ``attempt`` (> 1) of ``label``; False if the step has settled meanwhile."""

    def retried(self, label: str, attempt: int, error: BaseException, detail: dict[str, Any] | None) -> None: ...

    def in_thread(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        """``fn(*args)`` on a worker thread (inline where there are none), as a future of the loop."""

    def send(self, label: str, code: Code, ns: dict[str, Any]) -> asyncio.Future[Any]:
        """Run ``code`` on the cluster: a future of ``((began, ended), value)``."""

    async def ask(self, label: str, call: LLMCall, info: dict[str, Any]) -> Any:
        """Send an ``llm`` call, recording it in ``info``."""


def retry_delay(error: BaseException, backoff: float, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt``: exponential backoff with jitter, never sooner
    than the ``retry_after`` the error asks for (a server's Retry-After), never more than
    :data:`MAX_RETRY_DELAY`."""
    exponent = min(attempt - 1, 64)  # 2.0 ** 1024 would overflow
    delay: float = backoff * 2.0**exponent * random.uniform(0.5, 1.5)
    asked = getattr(error, "retry_after", None)
    if isinstance(asked, (int, float)) and asked > 0 and math.isfinite(asked):
        delay = max(delay, float(asked) * random.uniform(1.0, 1.2))
    return min(delay, MAX_RETRY_DELAY) if math.isfinite(delay) else MAX_RETRY_DELAY


async def attempts(
    host: Host,
    label: str,
    options: StepOptions,
    code: Code,
    ns: dict[str, Any],
    info: dict[str, Any],
    detail: dict[str, Any] | None = None,
) -> Any:
    """Evaluate until an attempt succeeds or ``@retries`` runs out; the first attempt has begun."""
    attempt = 1
    while True:
        if options.timeout is None:  # the common case: no extra task
            try:
                return await evaluate(host, label, code, ns, info)
            except Exception as exc:
                error: BaseException = exc
        else:
            ok, outcome = await _with_timeout(host, label, code, ns, info, options.timeout)
            if ok:
                return outcome
            error = outcome
        if attempt > options.retries or host.cancelling:
            raise error
        host.retried(label, attempt, error, detail)
        await asyncio.sleep(retry_delay(error, options.backoff, attempt))
        attempt += 1
        if not host.started(label, attempt, detail):
            raise asyncio.CancelledError


async def _with_timeout(
    host: Host, label: str, code: Code, ns: dict[str, Any], info: dict[str, Any], timeout: float
) -> tuple[bool, Any]:
    """Evaluate with a deadline: ``(True, value)`` or ``(False, error)``."""
    work = asyncio.ensure_future(evaluate(host, label, code, ns, info))
    try:
        finished, _ = await asyncio.wait({work}, timeout=timeout)
    except asyncio.CancelledError:
        work.cancel()
        raise
    if work not in finished:
        work.cancel()
        return False, StepTimeout(label, timeout, abandoned_thread=bool(info.get("thread")))
    error = work.exception()
    return (True, work.result()) if error is None else (False, error)


async def evaluate(
    host: Host, label: str, code: Code, ns: dict[str, Any], info: dict[str, Any], send: bool = True
) -> Any:
    """One evaluation of ``code``: on the loop, a worker thread or the cluster; ``llm`` sent from here."""
    if code.llm:  # evaluate the call's arguments only; the prompt is sent from the loop
        ns = {**ns, "llm": deferred_llm}
    if where(code, ns, host.async_callees) == "loop":
        value = eval(code.code, ns)
    elif host.remote is not None and send and "llm" not in ns:
        info["ran"], value = await host.send(label, code, ns)
    else:
        info["thread"] = True
        value = await host.in_thread(eval, code.code, ns)
    if isinstance(value, LLMCall):
        return await host.ask(label, value, info)
    if is_awaitable(value):
        value = await value
    return value


__all__ = ["MAX_RETRY_DELAY", "Host", "attempts", "evaluate", "retry_delay"]
