"""Run an execution from synchronous code, in a notebook cell or a script.

A notebook cell already runs inside the kernel's event loop, so ``asyncio.run``
fails there. Instead each run goes on a private event loop in a daemon thread; the
caller blocks on the result in short waits, so a kernel interrupt
(``KeyboardInterrupt``) lands promptly. The run is then cancelled, its finished
steps kept, and the interrupt passed on as :class:`FlowInterrupted`, whenever it
lands: before the run began, while it runs, or while it settles.

Loops are reused: a run takes an idle loop thread that an earlier run left (starting
a thread and a loop costs more than a small run), and gives it back when it ends. A
loop idle for :data:`IDLE_SECONDS` closes; a loop whose run would not settle is never
given back. Each loop serves one run at a time, so a step that blocks its loop holds
up only its own run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..errors import FlowInterrupted
from ..llm.network import serve
from .driver import Execution
from .jobs import Job
from .record import Run

T = TypeVar("T")

#: How long an interrupted run may take to settle its steps before the interrupt goes on.
CANCEL_GRACE = 1.5
#: How long an idle loop thread waits for another run before it closes.
IDLE_SECONDS = 60.0
_POLL = 0.1


class LoopThread:
    """A private event loop on a daemon thread; :data:`loops` lends them out and takes them back."""

    _numbers = itertools.count()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.name = f"flowmagic-loop-{next(self._numbers)}"
        self._thread = threading.Thread(target=serve, args=(self.loop,), name=self.name, daemon=True)
        self._thread.start()
        self.ident = self._thread.ident or 0
        self.idle_since = 0.0
        self.timed = False  # whether its idle timer is set (once, on the first give)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, join: float | None = 2.0) -> None:
        if not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.loop.stop)
        if join and threading.current_thread() is not self._thread:
            self._thread.join(join)


class Loops:
    """Idle loop threads, lent to one run at a time.

    Lending and taking back do not wake the loop: each loop has one timer, set when it is
    first given back, that closes it once it has been idle for :data:`IDLE_SECONDS` and
    otherwise looks again when it could next be due.
    """

    def __init__(self) -> None:
        self._idle: list[LoopThread] = []
        self._lock = threading.Lock()

    def take(self) -> LoopThread:
        with self._lock:
            while self._idle:
                lent = self._idle.pop()
                if not lent.loop.is_closed():
                    return lent
        return LoopThread()

    def give(self, lent: LoopThread, healthy: bool) -> None:
        """Take a loop back after its run; a loop whose run did not settle is stopped instead."""
        if not healthy or lent.loop.is_closed():
            lent.stop(join=None)
            return
        with self._lock:
            lent.idle_since = time.monotonic()
            self._idle.append(lent)
            timed, lent.timed = lent.timed, True
        if not timed:
            with contextlib.suppress(RuntimeError):
                lent.loop.call_soon_threadsafe(self._look, lent, IDLE_SECONDS)

    def _look(self, lent: LoopThread, delay: float) -> None:
        lent.loop.call_later(delay, self.expire, lent)

    def expire(self, lent: LoopThread) -> None:
        """On ``lent``'s loop: close it if it has been idle for :data:`IDLE_SECONDS`, else look again
        when it could be."""
        with self._lock:
            idle = lent in self._idle
            left = IDLE_SECONDS - (time.monotonic() - lent.idle_since) if idle else IDLE_SECONDS
            if left <= 0:
                self._idle.remove(lent)
        if left <= 0:
            lent.loop.stop()
        else:
            self._look(lent, left)

    def idle(self) -> list[str]:
        """The names of the loop threads waiting for a run (they outlive runs, by design)."""
        with self._lock:
            return [lent.name for lent in self._idle]

    def close(self) -> None:
        """Stop every idle loop (tests; a process that wants its threads back)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for lent in idle:
            lent.stop()


#: The process's idle run loops.
loops = Loops()


def _forget_in_child() -> None:
    # a forked child has the bookkeeping but none of the threads
    global loops
    loops = Loops()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)

__all__ = [
    "CANCEL_GRACE",
    "FlowInterrupted",
    "LoopThread",
    "Loops",
    "RunHandle",
    "loops",
    "run_all_blocking",
    "run_blocking",
    "run_on",
    "wait_for",
]


def run_blocking(execution: Execution) -> Run:
    """Run to the end and return the :class:`Run`.

    The run starts from this thread (its sync steps go straight to the worker threads) and
    goes on on a lent loop; this thread waits for the run's end, not for the loop. Outside an
    event loop, this thread runs one sync step itself (and what follows it on one thread)
    rather than hand it to a worker and wait. On
    ``KeyboardInterrupt`` the run is cancelled and :class:`FlowInterrupted` (a
    ``KeyboardInterrupt``) is raised, carrying the cancelled run.
    """
    lent: LoopThread | None = None
    future: concurrent.futures.Future[Run] | None = None
    try:
        lent = loops.take()
        # this thread would only wait: it runs a sync step itself (see _begin)
        future, kept = _begin(execution, lent)
        if kept is not None:
            execution.run_here(kept)
        while not execution.ended.wait(_POLL):
            pass
    except KeyboardInterrupt:
        raise _interrupted([execution], future, lent) from None
    # the loop finishes the run's last callbacks; it serves the next run meanwhile, as it would anyway
    loops.give(lent, healthy=True)
    return execution.run


def run_on(execution: Execution, lent: LoopThread) -> Run:
    """Run to the end from this thread, which is no event loop's (a worker of an evaluation), on
    ``lent``'s loop: :func:`run_blocking` without its interrupt handling, for a caller that
    cancels its runs itself. Its first sync step, and what follows it, run on this thread."""
    _, kept = _begin(execution, lent)
    if kept is not None:
        execution.run_here(kept)
    execution.ended.wait()
    return execution.run


def _begin(execution: Execution, lent: LoopThread) -> tuple[concurrent.futures.Future[Run] | None, Job | None]:
    """Start the run from this thread: the loop's wait for it if it needs one, and the sync step
    kept for this thread, unless it is inside an event loop (a notebook cell is), where a step
    calling asyncio.run() would fail."""
    started = execution.start(lent.loop, lent.ident, here=asyncio_free())
    future = lent.submit(execution.wait()) if started and execution.waiting else None
    return future, started if isinstance(started, Job) else None


def wait_for(future: concurrent.futures.Future[T], timeout: float | None = None) -> T:
    """``future.result(timeout)``, waited for in short waits: a kernel interrupt raises
    ``KeyboardInterrupt`` here promptly (a single wait with no timeout was seen to miss it)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
        if left <= 0:
            raise concurrent.futures.TimeoutError
        try:
            return future.result(timeout=left)
        except concurrent.futures.TimeoutError:
            if future.done():  # the future's own result was a TimeoutError
                raise


def asyncio_free() -> bool:
    """Whether no event loop runs in this thread (a script, a test; not a notebook cell)."""
    return asyncio._get_running_loop() is None


def run_all_blocking(executions: list[Execution]) -> list[Run]:
    """Run several executions side by side on one loop; return their runs in order.

    An interrupt, wherever it lands, cancels every one of them and raises
    :class:`FlowInterrupted` with the first run that had not succeeded.
    """

    async def everything() -> list[Run]:
        if len(executions) == 1:  # the common case: no task around the one run
            return [await executions[0].execute()]
        return list(await asyncio.gather(*(e.execute() for e in executions)))

    lent: LoopThread | None = None
    future: concurrent.futures.Future[list[Run]] | None = None
    try:
        lent = loops.take()
        future = lent.submit(everything())
        runs = wait_for(future)
        loops.give(lent, healthy=True)
        return runs
    except KeyboardInterrupt:
        raise _interrupted(executions, future, lent) from None


def _interrupted(
    executions: list[Execution], future: concurrent.futures.Future[Any] | None, lent: LoopThread | None
) -> FlowInterrupted:
    """Cancel every run, give them a moment to settle, and end each one for good."""
    for execution in executions:
        execution.cancel("interrupted")
    settled = False
    if future is not None:
        with contextlib.suppress(BaseException):
            future.result(timeout=CANCEL_GRACE)
        settled = future.done()
    elif lent is not None:
        settled = True  # nothing was sent to it
    if lent is not None:
        loops.give(lent, healthy=settled)
    for execution in executions:
        execution.end_now()  # a run that did not settle in time still ends: cancelled
    unfinished = [e.run for e in executions if e.run.status != "succeeded"]
    return FlowInterrupted((unfinished or [executions[-1].run])[0])


class RunHandle:
    """A run going on in the background.

    ``.run`` is the live :class:`Run` (its status is ``"running"`` until it ends);
    ``.wait()`` blocks for the end; ``.cancel()`` stops it, keeping what finished.
    """

    def __init__(self, execution: Execution, on_done: Callable[[Run], None] | None = None) -> None:
        self.execution = execution
        self._on_done = on_done  # before the callback: a quick run may finish at once
        self._lent = loops.take()
        self._future = self._lent.submit(execution.execute())
        self._future.add_done_callback(self._finished)

    def _finished(self, future: concurrent.futures.Future[Any]) -> None:
        loops.give(self._lent, healthy=True)
        if self._on_done is not None and not future.cancelled() and future.exception() is None:
            self._on_done(future.result())

    @property
    def run(self) -> Run:
        return self.execution.run

    def done(self) -> bool:
        return self._future.done()

    def wait(self, timeout: float | None = None) -> Run:
        """Block until the run ends (or ``timeout`` seconds pass) and return it."""
        with contextlib.suppress(concurrent.futures.TimeoutError):
            wait_for(self._future, timeout)
        return self.run

    def cancel(self, reason: str = "cancelled") -> None:
        self.execution.cancel(reason)

    def __repr__(self) -> str:
        return f"<RunHandle {self.execution.name!r} {self.run.status}>"
