"""The worker threads sync steps run on.

Like ``ThreadPoolExecutor``, but its threads are daemons and it never caps them:
the executor's semaphores already bound how many steps run at once, and a step
abandoned by a timeout or a cancel (threads cannot be killed) must neither take
a worker away from the rest of the run nor keep the interpreter from exiting.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_STOP = None


class WorkerPool:
    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for work that no submit has claimed yet
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:  # late work (a step let go by a cancel): a thread of its own, that ends
                thread = threading.Thread(target=self._one, args=(future, fn, args), daemon=True)
                thread.start()
                return future
            if self._idle:
                self._idle -= 1  # claim an idle thread for this item
            else:
                thread = threading.Thread(
                    target=self._work, name=f"flowmagic-{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put((future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            self._one(*item)
            del item
            with self._lock:
                self._idle += 1

    @staticmethod
    def _one(future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
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
