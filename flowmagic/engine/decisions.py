"""What the scheduler is told of a flow and what it answers: its :class:`Plan`, its
:class:`Decision` s, and the state it keeps for each map.

See :mod:`flowmagic.engine.scheduler` for the rules that connect them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .limits import Claim, Limit
from .vocabulary import StrEnum

Unit = Hashable  # a step's name, or (map, index)


class Verdict(StrEnum):
    """What a :class:`Decision` asks of the driver."""

    START = "start"  # run the unit: it holds its slots
    QUEUED = "queued"  # the unit is ready and waits for slots (only with ``announce``)
    SKIP = "skip"  # settled as skipped: something it reads failed
    CANCEL = "cancel"  # settled as cancelled; stop it if it is running
    COLLECT = "collect"  # every element of this map has an outcome: report the map's own
    DONE = "done"  # every step has a final state


class Decision(NamedTuple):
    verdict: Verdict
    unit: Unit | None = None
    reason: str | None = None


def decision(verdict: Verdict, unit: Unit | None = None, reason: str | None = None) -> Decision:
    # a NamedTuple's own constructor is Python code; this is the C one (a run makes one per step)
    return new(Decision, (verdict, unit, reason))


new = tuple.__new__


@dataclass(frozen=True)
class Plan:
    """What the scheduler knows of a flow: its shape and its limits, nothing it runs.

    ``order`` is topological (a step after the steps it reads) and, among independent
    steps, declaration order. ``group_of`` maps a step to its innermost group (or None);
    ``parent_of`` a group to the group around it; ``group_workers`` the groups that
    have a limit.

    ``arms`` maps each condition (an ``if`` block's unit) to its arms in order, each a
    label (``elif x > 1``) and every step inside it, nested ones included; the steps of an
    arm read its condition. ``joins`` maps each step that takes a name's value from the
    chosen arm to its condition: it reads the condition and one step per arm.
    """

    order: Sequence[str]
    children: Mapping[str, Sequence[str]]
    indegree: Mapping[str, int]
    group_of: Mapping[str, str | None]
    parent_of: Mapping[str, str | None]
    group_workers: Mapping[str, int]
    arms: Mapping[str, Sequence[tuple[str, Sequence[str]]]] = field(default_factory=dict)
    joins: Mapping[str, str] = field(default_factory=dict)


class MapState:
    """A map's elements: how many, the next to queue, and each one's state."""

    __slots__ = ("failed", "left", "line", "n", "next", "state")

    def __init__(self, n: int) -> None:
        self.n = n
        self.next = 0  # the next element to claim slots for
        self.left = n  # elements without a final state
        self.failed = 0
        self.state = bytearray(n)
        self.line: Claim | None = None  # the one element waiting in a line, if any


class Wants(str):
    """The unit of a map's claim while it waits in a line: the map's name (no element yet)."""


def only(mine: Claim | None, limits: tuple[Limit, ...]) -> bool:
    """Whether no claim but ``mine`` waits in any of these limits' lines."""
    for limit in limits:
        line = limit.line
        if line and (len(line) > 1 or line[0] is not mine):
            return False
    return True


__all__ = ["Decision", "MapState", "Plan", "Unit", "Verdict", "Wants", "decision", "new", "only"]
