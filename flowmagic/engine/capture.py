"""What a step prints: kept in its record, and sent where its run says, never to another run.

``sys.stdout`` and ``sys.stderr`` are process-wide, while steps of several runs print from
worker threads and event-loop tasks at once. So, once a run starts, both are wrapped in a
:class:`_Stream` that asks a context variable which step (if any) is writing: the driver sets
it around each step's code (:func:`within`), on its thread or in its task, and
:meth:`Printed.write` appends the text to that step's record (``stdout`` / ``stderr``, at most
:data:`LIMIT` characters each) and hands it to the run's ``forward``. Text written outside any
step goes to the wrapped stream as before.

The default ``forward`` writes to the wrapped stream while the run goes on (a script or a cell
that waits for its run sees prints as they come); a background cell forwards to a display
under its own cell. Once the run has ended, nothing is forwarded (a thread a timeout let go
may print on), so no text lands under whatever cell runs later.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TextIO

from .record import Run

LIMIT = 100_000  # characters of one stream of one step kept in its record
CUT = "\n[flowmagic: more output not kept]\n"

#: (label, stream name, text): where a run's printed text goes besides the records.
Forward = Callable[[str, str, str], None]

# Which run (weakly: a task or timer a step starts copies this context and may outlive the run)
# and which of its units is running here; the run has ``printed``. Subflows read it too.
_writing: ContextVar[tuple[weakref.ref[Any], Any] | None] = ContextVar("flowmagic_step", default=None)


class Printed:
    """One run's printed text: into each step's record, and on to ``forward`` while the run goes on."""

    def __init__(self, run: Run, label: Callable[[Any], str]) -> None:
        self.run = run
        self.label = label  # a unit (a step's name, or a map element) -> its record's name
        self.forward: Forward | None = _to_original
        self._lock = threading.Lock()

    def write(self, unit: Any, stream: str, text: str) -> None:
        label = self.label(unit)
        record = self.run.steps.get(label)
        if record is not None:
            with self._lock:
                kept = getattr(record, stream) or ""
                if not kept.endswith(CUT):
                    room = LIMIT - len(kept)
                    setattr(record, stream, kept + (text if len(text) <= room else text[:room] + CUT))
        forward = self.forward
        if forward is not None:
            forward(label, stream, text)

    def close(self) -> None:
        """The run is over: keep recording, forward nothing more."""
        self.forward = None


#: ``enter((run, unit))``: code from here on (in this thread or task) is ``unit``'s of the run the
#: weak reference ``run`` refers to (one with a :class:`Printed` as ``printed``); returns the token
#: for ``leave(token)``. The context variable's own methods: a step pays no Python call for them.
enter = _writing.set
leave = _writing.reset


def running() -> tuple[Any, Any] | None:
    """The run and unit whose code is running here, if any (and the run is still there)."""
    here = _writing.get()
    if here is None:
        return None
    run = here[0]()
    return None if run is None else (run, here[1])


def install() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (again, if someone replaced them since)."""
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if current is not None and type(current) is not _Stream:
            setattr(sys, name, _Stream(current, name))


class _Stream:
    """A text stream that sends a step's writes to its run and everything else to ``inner``."""

    def __init__(self, inner: TextIO, name: str) -> None:
        self._inner = inner
        self._name = name

    def write(self, text: str) -> int:
        here = running()
        if here is None:
            return self._inner.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        here[0].printed.write(here[1], self._name, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, ...: the stream's own
        return getattr(self._inner, name)


def _to_original(label: str, stream: str, text: str) -> None:
    inner = getattr(sys, stream)
    while type(inner) is _Stream:
        inner = inner._inner
    inner.write(text)


__all__ = ["LIMIT", "Forward", "Printed", "enter", "install", "leave", "running"]
