"""The worker threads sync steps run on.

Like ``ThreadPoolExecutor``, but its threads are daemons, and a step abandoned by a
timeout or a cancel (threads cannot be killed) does not take a worker away from the
rest of the run: the pool starts another thread rather than queue work behind it. Runs'
limits already bound how many steps run at once, so the pool's own cap
(:data:`MAX_THREADS`) is only reached when abandoned threads pile up (say, a tool that
hangs forever, cancelled again and again). Past it, work waits for a thread to come
back, and the pool counts each such wait (:attr:`WorkerPool.waits`), which runs report.

Runs share one process-wide pool (:func:`shared_pool`), so a run starts its
steps on threads the last run left idle instead of starting new ones (about
0.2 ms each on two cores: 16 parallel steps waited up to 5 ms for their threads).
A thread idle for :data:`IDLE_SECONDS` exits.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

_STOP = None

#: How long a thread of the shared pool waits for work before it exits.
IDLE_SECONDS = 60.0
#: The most threads the shared pool starts (``FLOWMAGIC_MAX_THREADS``); abandoned ones count.
MAX_THREADS = int(os.environ.get("FLOWMAGIC_MAX_THREADS", "512"))


class WorkerPool:
    """Threads named ``flowmagic-NAME-N``, at most ``max_threads``; with ``idle_timeout``, one idle
    that long exits."""

    def __init__(self, name: str, idle_timeout: float | None = None, max_threads: int | None = None) -> None:
        self._name = name
        self._idle_timeout = idle_timeout
        self.max_threads = max_threads
        self.waits = 0  # work that had to wait for a thread because the pool was at its cap
        self._backlog = 0  # such work not yet taken by a thread
        self._numbers = itertools.count()
        self._queue: queue.SimpleQueue[tuple[Future[Any] | None, Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for work that no submit has claimed yet
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on a thread of the pool; its future holds the result or the error."""
        future: Future[Any] = Future()
        self._put(future, fn, args)
        return future

    def run(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a thread of the pool, for its effect: no future (``fn`` reports itself)."""
        self._put(None, fn, args)

    def _put(self, future: Future[Any] | None, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        with self._lock:
            if self._closed:  # late work (a step let go by a cancel): a thread of its own, that ends
                thread = threading.Thread(target=self._one, args=(future, fn, args), daemon=True)
                thread.start()
                return
            if self._idle:
                self._idle -= 1  # claim an idle thread for this item
            elif self.max_threads is not None and len(self._threads) >= self.max_threads:
                self.waits += 1  # every thread is busy (some with abandoned steps): the first back takes it
                self._backlog += 1
            else:
                thread = threading.Thread(
                    target=self._work, name=f"flowmagic-{self._name}-{next(self._numbers)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put((future, fn, args))

    @property
    def idle(self) -> int:
        """Threads waiting for work (the rest are running a step, or about to)."""
        return self._idle

    def at_work(self, names: Iterable[str]) -> list[str]:
        """Thread ``names``, sorted, less as many of this pool's threads as are idle.

        The pool counts its idle threads but does not say which: the last of its
        own names are the ones left out. For checks that nothing is left running.
        """
        prefix = f"flowmagic-{self._name}-"
        names = sorted(names)
        mine = [n for n in names if n.startswith(prefix)]
        return [n for n in names if not n.startswith(prefix)] + mine[self._idle :]

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    # exit only if no submit has claimed an idle thread it is counting on
                    if self._idle:
                        self._idle -= 1
                        self._threads.remove(threading.current_thread())
                        return
                continue
            if item is _STOP:
                return
            self._one(*item)
            del item
            with self._lock:
                if self._backlog:
                    self._backlog -= 1  # it goes straight to work waiting for a thread
                else:
                    self._idle += 1

    @staticmethod
    def _one(future: Future[Any] | None, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if future is None:  # run(): fn reports its own outcome
            try:
                fn(*args)
            except BaseException:  # a bug, not a step's error (fn catches those): say so, keep the thread
                traceback.print_exc()
            return
        if future.set_running_or_notify_cancel():
            try:
                result = fn(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self) -> None:
        """Stop every thread once it is idle (:meth:`join` waits for that)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(_STOP)

    def join(self) -> None:
        """Wait for every thread to exit (after :meth:`shutdown`)."""
        for thread in self._threads:
            thread.join()


_shared: WorkerPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> WorkerPool:
    """The process's pool that runs use unless given one (started on first use)."""
    global _shared
    pool = _shared
    if pool is not None:
        return pool
    with _shared_lock:
        if _shared is None:
            _shared = WorkerPool("worker", idle_timeout=IDLE_SECONDS, max_threads=MAX_THREADS)
        return _shared


def _forget_in_child() -> None:
    # a forked child has the pool's bookkeeping but none of its threads
    global _shared
    _shared = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
