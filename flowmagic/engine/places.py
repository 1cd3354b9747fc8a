"""Where a run's code runs: its event loop, worker threads, or a cluster.

:class:`Places` is all a driver needs to know about them: call something on the loop
from any thread (:meth:`soon`), run a job on a worker thread (:meth:`on_pool`), run a
function on a thread and await it from the loop (:meth:`in_thread`), send a step to
the cluster (:meth:`send`). Without threads (``pool=None``, as in a browser's Pyodide
kernel, where no thread can start) "a worker thread" is the loop itself: jobs run one
at a time as loop callbacks, and the same driver works unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
import uuid
from collections.abc import Callable
from typing import Any

from ..flow.compiled import Code
from .remote import Remote, evaluate, pack
from .workers import WorkerPool


class Places:
    """A run's loop, its worker threads (or none) and its cluster (or none)."""

    def __init__(self, pool: WorkerPool | None, remote: Remote | None) -> None:
        self.pool = pool
        self.remote = remote
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = 0
        self.out: set[concurrent.futures.Future[Any]] = set()  # thread work not back yet

    def bind(self, loop: asyncio.AbstractEventLoop, thread: int) -> None:
        """The run's loop is ``loop``, running on thread ``thread``."""
        self.loop = loop
        self.loop_thread = thread

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self.loop_thread

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn`` on the loop, soon, from any thread (never inline: the caller may hold a lock)."""
        loop = self.loop
        if loop is None:
            return
        if threading.get_ident() == self.loop_thread:
            loop.call_soon(fn, *args)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
                loop.call_soon_threadsafe(fn, *args)

    def on_pool(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker thread (without threads: on the loop, soon)."""
        if self.pool is None:
            self.soon(fn, *args)
        else:
            self.pool.run(fn, *args)

    def in_thread(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        """``fn(*args)`` on a worker thread, as a future of the loop (without threads: here, now)."""
        assert self.loop is not None
        result: asyncio.Future[Any] = self.loop.create_future()
        if self.pool is None:
            try:
                result.set_result(fn(*args))
            except BaseException as exc:
                result.set_exception(exc)
            return result
        # in the caller's context, as asyncio.to_thread does: what a step prints stays its own
        work = self.pool.submit(contextvars.copy_context().run, fn, *args)
        self.out.add(work)  # a cancelled step leaves its thread running (abandoned)
        work.add_done_callback(lambda done: self.soon(self._back, result, done))
        return result

    def send(self, name: str, label: str, code: Code, ns: dict[str, Any]) -> asyncio.Future[Any]:
        """Run ``code`` on the cluster; cancelling the future (a run's cancel, ``@timeout``) cancels it there."""
        assert self.loop is not None and self.remote is not None
        remote = self.remote
        payload = pack(label, code.code, ns)  # NotSendableError, naming the step, before anything is sent
        work = remote.submit(f"{name}-{label}-{uuid.uuid4().hex[:8]}", evaluate, payload)
        result: asyncio.Future[Any] = self.loop.create_future()
        work.add_done_callback(lambda done: self.soon(self._back, result, done))
        result.add_done_callback(lambda r: remote.cancel([work]) if r.cancelled() and not work.done() else None)
        return result

    def _back(self, result: asyncio.Future[Any], work: concurrent.futures.Future[Any]) -> None:
        self.out.discard(work)
        if result.cancelled():
            return
        error = work.exception()
        if error is None:
            result.set_result(work.result())
        else:
            result.set_exception(error)

    def still_out(self) -> int:
        """Thread work whose step was let go but whose thread has not returned."""
        return sum(1 for work in self.out if not work.done())


__all__ = ["Places"]
