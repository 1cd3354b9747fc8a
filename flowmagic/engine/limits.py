"""Concurrency limits, and the claims units of work make on them (pure bookkeeping).

A run has one :class:`Limit` for its ``workers`` and one for each ``parallel (workers=N)``
group. A unit (a step, or one element of a map) takes a slot of each limit around it,
innermost group first and the run's last, through a :class:`Claim`. Where a limit is full
the claim waits in that limit's line, holding what it has; a unit that finishes hands
each slot straight to the next claim in line (:func:`give`). Every claim takes its limits
in the same nesting order, so two claims never wait for each other.

Only the scheduler calls these, under whatever keeps it to one caller at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable


class Limit:
    """One concurrency limit (the run's workers, or a group's): free slots and a line of claims."""

    __slots__ = ("free", "line", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.line: deque[Claim] = deque()


class Claim:
    """A unit's way through its limits: it holds ``limits[:held]`` and may wait in the next one's line."""

    __slots__ = ("held", "limits", "unit")

    def __init__(self, unit: Hashable, limits: tuple[Limit, ...]) -> None:
        self.unit = unit
        self.limits = limits
        self.held = 0

    @property
    def granted(self) -> bool:
        return self.held == len(self.limits)


def take(claim: Claim) -> bool:
    """Take ``claim``'s limits in order; False if it had to join a line."""
    limits = claim.limits
    while claim.held < len(limits):
        limit = limits[claim.held]
        if limit.free and not limit.line:
            limit.free -= 1
            claim.held += 1
        else:
            limit.line.append(claim)
            return False
    return True


def give(claim: Claim) -> list[Claim]:
    """Release what ``claim`` holds (all its limits), handing each slot to the next claim in line.

    Returns the claims that now hold all their limits.
    """
    granted: list[Claim] = []
    for limit in reversed(claim.limits[: claim.held]):
        if limit.line:
            waiting = limit.line.popleft()
            waiting.held += 1
            if take(waiting):
                granted.append(waiting)
        else:
            limit.free += 1
    claim.held = 0
    return granted


__all__ = ["Claim", "Limit", "give", "take"]
