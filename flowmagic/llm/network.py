"""One event loop per process for the network clients, so their connections outlive a run.

Every run has an event loop of its own (see :mod:`flowmagic.engine.runner`), and
an HTTP client belongs to the loop it first ran on. A client made on a run's
loop would die with it, and the next run would connect again: 32 new TCP
connections for 32 parallel calls, every time. So networked providers live on
one daemon thread's loop, started on first use, and a run awaits their calls
from its own loop with :func:`on_network`. Cancelling the awaiting task cancels
the call. At exit the providers are closed and the loop stopped.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

THREAD_NAME = "flowmagic-network"
#: The loop's default executor (host name lookups) has at most this many threads, named after it.
RESOLVER_THREADS = 4

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def serve(loop: asyncio.AbstractEventLoop, *, join_executor: bool = False) -> None:
    """A loop thread's body: run ``loop`` until stopped, then close its providers and the loop.

    With ``join_executor`` the loop's default executor's threads are joined too
    (the network loop's resolvers); a run's loop leaves them to end on their own.
    """
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        from flowmagic.llm.registry import aclose_providers

        try:
            loop.run_until_complete(aclose_providers())
            loop.run_until_complete(loop.shutdown_asyncgens())
            if join_executor:
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def network_loop() -> asyncio.AbstractEventLoop:
    """The process's network loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            _loop.set_default_executor(
                concurrent.futures.ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix=THREAD_NAME)
            )
            _thread = threading.Thread(
                target=serve, args=(_loop,), kwargs={"join_executor": True}, name=THREAD_NAME, daemon=True
            )
            _thread.start()
        return _loop


async def on_network(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` run on the network loop (directly when already on it)."""
    loop = network_loop()
    if asyncio.get_running_loop() is loop:
        return await coro
    future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
    return await asyncio.wrap_future(future)  # cancelling this cancels the task over there


def relay(callback: Any) -> Any:
    """``callback`` made safe to call from the network loop: it runs on the caller's own loop, in order."""
    home = asyncio.get_running_loop()

    def relayed(*args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop has closed: nobody to tell
            home.call_soon_threadsafe(callback, *args)

    return relayed


def shutdown(timeout: float = 2.0) -> None:
    """Close the network providers and stop the loop; the next call starts a new one."""
    global _loop, _thread
    with _lock:
        loop, thread, _loop, _thread = _loop, _thread, None, None
    if loop is None or thread is None:
        return
    with contextlib.suppress(RuntimeError):  # already closed
        loop.call_soon_threadsafe(loop.stop)
    if thread is not threading.current_thread():
        thread.join(timeout)


def _forget_in_child() -> None:
    # a forked child has the parent's loop object but not its thread
    global _loop, _thread
    _loop = _thread = None


atexit.register(shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
