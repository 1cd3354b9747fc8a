"""What the executor tells its observers. It knows nothing of who listens."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

RUN_STARTED = "run_started"
QUEUED = "queued"  # the step's dependencies are done; it waits for a worker
STARTED = "started"  # an attempt began
RETRIED = "retried"  # an attempt failed and another will follow
TEXT = "text"  # an llm step's answer so far, while it streams in (detail: the step's llm info)
EXPANDED = "expanded"  # a map knows its elements (detail["count"])
FINISHED = "finished"  # succeeded
FAILED = "failed"
SKIPPED = "skipped"  # a dependency failed
CANCELLED = "cancelled"
RUN_FINISHED = "run_finished"


class Event(NamedTuple):
    """One thing that happened in a run (immutable).

    ``step`` is None for run-level events; map elements are named ``map[i]``.
    ``time`` is a ``time.time()`` float, comparable across steps and processes.
    A named tuple rather than a frozen dataclass: a run makes three events a
    step, and a tuple is built in a third of the time.
    """

    kind: str
    step: str | None
    time: float
    attempt: int = 0
    error: BaseException | None = None
    value: Any = None  # the step's result, on FINISHED (a reference, never a copy)
    detail: dict[str, Any] | None = None


class Observer(Protocol):
    """Anything called with each event, on the executor's coordinating thread.

    Observers must be quick; an observer that raises is reported once and dropped
    so a broken display never breaks a run.
    """

    def __call__(self, event: Event) -> None: ...
