"""What the driver tells its observers. It knows nothing of who listens."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from .vocabulary import Kind

RUN_STARTED = Kind.RUN_STARTED
QUEUED = Kind.QUEUED
STARTED = Kind.STARTED
RETRIED = Kind.RETRIED
TEXT = Kind.TEXT
EXPANDED = Kind.EXPANDED
FINISHED = Kind.FINISHED
FAILED = Kind.FAILED
SKIPPED = Kind.SKIPPED
CANCELLED = Kind.CANCELLED
RUN_FINISHED = Kind.RUN_FINISHED


class Event(NamedTuple):
    """One thing that happened in a run (immutable).

    ``step`` is None for run-level events; map elements are named ``map[i]``.
    ``time`` is a ``time.time()`` float, comparable across steps and processes.
    A named tuple rather than a frozen dataclass: a run makes three events a
    step, and a tuple is built in a third of the time.
    """

    kind: Kind
    step: str | None
    time: float
    attempt: int = 0
    error: BaseException | None = None
    value: Any = None  # the step's result, on FINISHED (a reference, never a copy)
    detail: dict[str, Any] | None = None


class Observer(Protocol):
    """Anything called with each event, on the run's event loop, in order.

    Observers must be quick; an observer that raises is reported once (an
    :class:`ObserverWarning`) and dropped, so a broken display never breaks a run.
    """

    def __call__(self, event: Event) -> None: ...


class ObserverWarning(UserWarning):
    """An observer raised; it was removed so the run could go on."""


__all__ = ["Event", "Kind", "Observer", "ObserverWarning"]
