"""Run an execution from synchronous code, in a notebook cell or a script.

A notebook cell already runs inside the kernel's event loop, so ``asyncio.run``
fails there. Instead each run gets a private event loop on a daemon thread; the
caller blocks on the result in short waits, so a kernel interrupt
(``KeyboardInterrupt``) lands promptly. The run is then cancelled, its finished
steps kept, and the interrupt passed on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..llm.network import serve
from .driver import Execution
from .record import Run

T = TypeVar("T")

#: How long an interrupted run may take to settle its steps before the interrupt goes on.
CANCEL_GRACE = 1.5
_POLL = 0.1


class FlowInterrupted(KeyboardInterrupt):
    """A run was interrupted; ``run`` is its record, cancelled, with finished steps kept."""

    def __init__(self, run: Run) -> None:
        super().__init__(f"flow '{run.flow}' was interrupted")
        self.run = run

    def _render_traceback_(self) -> list[str]:
        # IPython prints this instead of a traceback
        done = sum(1 for r in self.run.steps.values() if r.status == "succeeded" and r.map is None)
        return [f"KeyboardInterrupt: flow '{self.run.flow}' {self.run.status}; {done} finished steps kept in .last"]


class LoopThread:
    """A private event loop on a daemon thread that closes itself once stopped."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=serve, args=(self.loop,), name=f"flowmagic-loop-{name}", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, join: float | None = 2.0) -> None:
        if not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.loop.stop)
        if join and threading.current_thread() is not self._thread:
            self._thread.join(join)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def run_blocking(execution: Execution) -> Run:
    """Run to the end and return the :class:`Run`.

    On ``KeyboardInterrupt`` the run is cancelled and :class:`FlowInterrupted`
    (a ``KeyboardInterrupt``) is raised, carrying the cancelled run.
    """
    return run_all_blocking([execution])[0]


def run_all_blocking(executions: list[Execution]) -> list[Run]:
    """Run several executions side by side on one private loop; return their runs in order.

    An interrupt cancels every one of them and raises :class:`FlowInterrupted`
    with the first run that had not finished.
    """

    async def everything() -> list[Run]:
        if len(executions) == 1:  # the common case: no task around the one run
            return [await executions[0].execute()]
        return list(await asyncio.gather(*(e.execute() for e in executions)))

    runner = LoopThread(executions[0].name)
    future = runner.submit(everything())
    try:
        while True:
            try:
                return future.result(timeout=_POLL)
            except concurrent.futures.TimeoutError:
                continue
    except KeyboardInterrupt:
        for execution in executions:
            execution.cancel("interrupted")
        with contextlib.suppress(BaseException):
            future.result(timeout=CANCEL_GRACE)
        unfinished = [e.run for e in executions if e.run.status in ("running", "cancelled")]
        raise FlowInterrupted((unfinished or [executions[-1].run])[0]) from None
    finally:
        runner.stop()


class RunHandle:
    """A run going on in the background.

    ``.run`` is the live :class:`Run` (its status is ``"running"`` until it ends);
    ``.wait()`` blocks for the end; ``.cancel()`` stops it, keeping what finished.
    """

    def __init__(self, execution: Execution, on_done: Callable[[Run], None] | None = None) -> None:
        self.execution = execution
        self._on_done = on_done  # before the callback: a quick run may finish at once
        self._runner = LoopThread(execution.name)
        self._future = self._runner.submit(execution.execute())
        self._future.add_done_callback(self._finished)

    def _finished(self, future: concurrent.futures.Future[Any]) -> None:
        self._runner.stop(join=None)
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
            self._future.result(timeout=timeout)
        return self.run

    def cancel(self, reason: str = "cancelled") -> None:
        self.execution.cancel(reason)

    def __repr__(self) -> str:
        return f"<RunHandle {self.execution.name!r} {self.run.status}>"
