"""The words a run is described in, defined once: step statuses, run statuses, event kinds.

Each is a ``StrEnum``, so a member *is* its string (``Status.FAILED == "failed"``), prints
as it, and goes into JSON as it: records, events and the view share one spelling.
"""

from __future__ import annotations

import sys
from enum import Enum

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, Enum):
        """``enum.StrEnum`` for Python 3.10: members print and format as their value."""

        __str__ = str.__str__
        __format__ = str.__format__  # type: ignore[assignment]


class Status(StrEnum):
    """A step's status in a :class:`~flowmagic.engine.record.Run`: exactly one final state each."""

    PENDING = "pending"  # waiting for what it reads
    RUNNING = "running"  # an attempt began
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # something it reads failed
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.SKIPPED, Status.CANCELLED})


class RunStatus(StrEnum):
    """A whole run's status: ``running`` until it ends."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Kind(StrEnum):
    """What an :class:`~flowmagic.engine.events.Event` says happened."""

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


__all__ = ["Kind", "RunStatus", "Status", "StrEnum"]
