"""A map's elements: pulling its iterable, and each element's namespace and outcome.

``out = [f(x) for x in xs if ok(x)]`` is one step that expands, once ``xs`` is known, into
one unit of work per element. Its iterable is pulled here, on a worker thread, at most
one element past :data:`MAX_MAP_ELEMENTS`, and a cancel stops the pull even when the
iterable never yields (:class:`Pull`). The scheduler then starts the elements as slots
allow, and the driver records each outcome in :class:`Elements`.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from typing import Any

from ..errors import MapError
from ..flow.compiled import Code
from .evaluate import place

#: A map larger than this is refused with an error rather than flooding the machine.
MAX_MAP_ELEMENTS = 1_000_000

UNSET: Any = object()  # an element with no outcome yet


class MapStopped(Exception):
    """Raised in the thread that pulls a map's iterable when the map is cancelled."""


class Pull:
    """Pulls a map's iterable into a list on a worker thread, and can be stopped from outside.

    A thread cannot be killed, but a thread that runs Python code can be made to raise:
    :meth:`stop` asks the interpreter to raise :class:`MapStopped` in the pulling thread
    (``PyThreadState_SetAsyncExc``), so an iterable that never yields, such as
    ``x for x in count() if x < 0``, ends with the run instead of burning a core. Only
    while the thread is inside :meth:`pull`, and a request that arrives as the pull ends is
    raised and caught before the thread goes back to the pool. (A request is never
    withdrawn instead: withdrawing one leaves the interpreter checking for it after every
    few instructions, for good.) An iterable stuck in C code notices when it returns to Python.
    """

    def __init__(self, iterable: Any, limit: int | None = None) -> None:
        self.iterable = iterable
        self.limit = limit  # None: a map's, MAX_MAP_ELEMENTS
        self._lock = threading.Lock()
        self._thread: int | None = None
        self._stopped = False

    def pull(self) -> list[Any]:
        """On a worker thread: the elements, at most one past the limit."""
        try:
            with self._lock:
                if self._stopped:
                    raise MapStopped
                self._thread = threading.get_ident()
            try:
                limit = MAX_MAP_ELEMENTS if self.limit is None else self.limit
                return list(itertools.islice(self.iterable, limit + 1))
            finally:
                with self._lock:
                    self._thread = None
                    asked = self._stopped  # stop() asked while this thread was inside
                if asked:
                    _check_point()  # the exception, if not raised yet, is raised here
        except MapStopped:
            raise MapStopped("the map was cancelled while its iterable was read") from None

    def stop(self) -> None:
        """From any thread: make the pull raise, if it is under way (once)."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                if self._thread is not None:
                    _raise_in(self._thread, MapStopped)


def _check_point() -> None:
    """A call: the interpreter raises a pending asynchronous exception on entering it."""


def _raise_in(thread: int, exception: type[BaseException]) -> None:
    # (CPython's API; where it is missing, a pull simply runs to its end)
    set_async_exc = getattr(getattr(ctypes, "pythonapi", None), "PyThreadState_SetAsyncExc", None)
    if set_async_exc is not None:
        set_async_exc(ctypes.c_ulong(thread), ctypes.py_object(exception))


def check_size(name: str, bindings: list[Any]) -> None:
    if len(bindings) > MAX_MAP_ELEMENTS:
        raise ValueError(
            f"'{name}' would expand to more than {MAX_MAP_ELEMENTS:,} elements; the limit is {MAX_MAP_ELEMENTS:,}"
        )


class Elements:
    """A map's elements and their outcomes (changed only under the driver's lock)."""

    __slots__ = ("async_calls", "bindings", "code", "failures", "kind", "name", "ns", "place", "results", "targets")

    def __init__(self, name: str, code: Code, targets: tuple[str, ...], bindings: list[Any], ns: dict[str, Any]):
        self.name = name
        self.code = code
        self.kind = "llm" if code.llm else "call"
        self.targets = targets
        self.bindings = bindings
        self.ns = ns
        self.results: list[Any] = [UNSET] * len(bindings)  # each element's value or error
        self.failures: dict[int, BaseException] = {}
        self.place = "loop"
        self.async_calls = False  # plain calls of one async function: one attempt each, straight on the loop

    def label(self, index: int) -> str:
        return f"{self.name}[{index}]"

    def detail(self, index: int) -> dict[str, Any]:
        return {"map": self.name, "index": index, "kind": self.kind}

    def namespace(self, index: int) -> dict[str, Any]:
        ns = self.ns.copy()
        ns.update(zip(self.targets, self.bindings[index], strict=True))
        return ns

    def choose_place(self, plain: bool, known: dict[Any, bool]) -> None:
        """Where every element runs: ``"thread"`` when they are plain sync calls (``plain``: no
        retries, timeout, llm or cluster), else ``"loop"``: awaited there when they are plain
        calls of an async function, each through its own attempts otherwise."""
        code = self.code
        if not plain or code.llm or not self.bindings:
            return
        if code.callee is not None and not code.calls and not set(code.callee.co_names).isdisjoint(self.targets):
            return  # which function an element calls depends on the element: each is placed on the loop
        try:
            where = place(code, self.namespace(0), known)
        except Exception:
            return  # the element's own evaluation reports it
        self.place = "loop" if where == "loop" else "thread"
        self.async_calls = where == "loop"

    def outcome(self, index: int, ok: bool, value: Any) -> None:
        self.results[index] = value
        if not ok:
            self.failures[index] = value

    def value(self) -> list[Any]:
        """The elements' values in order, or :class:`MapError` naming the first failure."""
        failures = dict(self.failures)
        for index, value in enumerate(self.results):  # an element cancelled on its own has no value
            if value is UNSET:
                failures[index] = MapStopped(f"{self.label(index)} was cancelled")
        if failures:
            raise MapError(self.name, self.results, dict(sorted(failures.items())))
        return self.results


__all__ = ["MAX_MAP_ELEMENTS", "UNSET", "Elements", "MapStopped", "Pull", "check_size"]
