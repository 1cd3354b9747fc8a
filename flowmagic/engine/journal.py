"""The events of one run: the record changes as each happens, the observers hear of them on the loop.

The driver records every event under its lock, so the :class:`~flowmagic.engine.record.Run`
is always in step with the scheduler. Observers (the view, the terminal progress) are
called later, on the run's event loop, in order, and never under the lock: an observer
that is slow or raises cannot stall or break the run.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .events import Event, Kind, Observer, ObserverWarning
from .record import Recorder, Run


class Journal:
    """Records a run's events as they happen and hands them to its observers on the loop."""

    def __init__(self, run: Run, observers: Sequence[Observer], lock: threading.Lock) -> None:
        self.recorder = Recorder(run)
        self.observers: list[Observer] = list(observers)
        self._lock = lock  # the driver's: events are recorded under it
        self._outbox: list[Event] = []
        self._delivering = False
        self.soon: Callable[[Callable[[], None]], None] | None = None  # calls on the loop, once there is one
        self.forward: Callable[[Event], None] | None = None  # a nested run's: into its parent's record

    def record(
        self,
        kind: Kind,
        step: str | None = None,
        attempt: int = 0,
        error: BaseException | None = None,
        value: Any = None,
        detail: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> None:
        """Under the driver's lock: the record changes now; the observers hear of it on the loop."""
        event = Event(kind, step, time.time() if at is None else at, attempt, error, value, detail)
        self.recorder(event)
        if self.forward is not None:  # a nested run's: its parent records it too
            self.forward(event)
        if self.observers:
            self._outbox.append(event)
            if not self._delivering and self.soon is not None:
                self._delivering = True
                self.soon(self.deliver)

    def relay(self, event: Event) -> None:
        """Under the driver's lock: a nested run's ``event`` recorded here as it is."""
        self.record(event.kind, event.step, event.attempt, event.error, event.value, event.detail, event.time)

    def deliver(self) -> None:
        """On the loop (or, for a run that never started, the caller's thread): call the observers."""
        with self._lock:
            events, self._outbox = self._outbox, []
            self._delivering = False
        for event in events:
            for observer in self.observers:
                try:
                    observer(event)
                except Exception as exc:  # a display must never break a run
                    self.observers = [o for o in self.observers if o is not observer]
                    warnings.warn(
                        f"observer {observer!r} raised {exc!r} and was removed", ObserverWarning, stacklevel=2
                    )


__all__ = ["Journal"]
