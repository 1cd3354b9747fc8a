"""Concurrency limits, and the claims steps make on them.

A run has one :class:`Limit` for its ``workers`` and one for each ``parallel (workers=N)``
group. A step takes a slot of each limit around it, outermost first, through a :class:`Claim`;
where a limit is full the claim waits in that limit's line, and a finishing step hands its slot
straight to the next claim in line (:func:`give`). No thread waits here: the executor runs what
is granted. These functions change shared state: call them under the run's lock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .executor import Elements


class Limit:
    """One concurrency limit (the run's workers, or a group's): free slots and a line of claims."""

    __slots__ = ("free", "line", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.line: deque[Claim] = deque()


class Claim:
    """A step's way through its limits, taken in a fixed order (outermost group first, the run's last).

    It holds ``limits[:held]``; where a limit is full it waits in that limit's line,
    holding what it has, until a finishing step hands it the slot. A granted claim runs
    on a worker thread (a direct step) or ``on_loop`` as a task; ``future`` is set while
    a task already running waits for its slots (a map's puller on the loop). A map's
    claims are its pullers': ``elements`` is the map they work through.
    """

    __slots__ = ("begun", "dead", "elements", "future", "held", "info", "limits", "ns", "on_loop", "step")

    def __init__(
        self, step: str, limits: tuple[Limit, ...], ns: dict[str, Any] | None = None, on_loop: bool = False
    ) -> None:
        self.step = step
        self.limits = limits
        self.ns = ns
        self.on_loop = on_loop  # the step runs as a task on the loop, not on a worker thread
        self.held = 0
        self.dead = False  # given up (cancelled) while in a line
        self.begun = False  # a direct step: STARTED is recorded and the thread counted
        self.future: asyncio.Future[None] | None = None
        self.info: dict[str, Any] = {}
        self.elements: Elements | None = None


def resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def take(claim: Claim) -> bool:
    """Take ``claim``'s limits in order; False if it had to join a line. Call under the run's lock."""
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
    """Release what ``claim`` holds, handing each slot to the next live claim in line.

    Returns the claims that now hold all their limits. Call under the run's lock.
    """
    granted: list[Claim] = []
    for limit in reversed(claim.limits[: claim.held]):
        while limit.line:
            waiting = limit.line.popleft()
            if waiting.dead:
                continue
            waiting.held += 1
            if take(waiting):
                granted.append(waiting)
            break
        else:
            limit.free += 1
    claim.held = 0
    return granted


def share(claim: Claim) -> tuple[bool, list[Claim]]:
    """Between two of a map puller's elements: if another step waits first in line for one of
    its slots, hand them on and line up again. Whether it still holds its slots, and the claims
    now granted. (Not for a puller of the same map first in line: that would gain nothing.)
    Call under the run's lock.
    """
    if not any(limit.line and limit.line[0].elements is not claim.elements for limit in claim.limits):
        return True, []
    granted = give(claim)
    return take(claim), granted
