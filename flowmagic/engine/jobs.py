"""What a run's book hands its driver: a started unit as a :class:`Job` (where it runs, the
names its code reads), a map whose elements are all done as a :class:`Collect`, the places
code runs in, the outcomes a unit reports, and the scheduler's :class:`Plan` of a compiled flow.
"""

from __future__ import annotations

import asyncio
from types import CodeType
from typing import Any

from ..flow.compiled import CompiledFlow
from .elements import Elements
from .scheduler import Plan, Unit

THREAD, LOOP, INLINE = "thread", "loop", "inline"
OK, FAILED, CANCELLED = 0, 1, 2


class Collect(str):
    """A map whose elements all have an outcome: the driver reports the map's own."""


class Job:
    """A started unit on its way: where it runs and the names its code reads."""

    __slots__ = ("awaitable", "begun", "code", "info", "ns", "place", "unit")

    def __init__(self, unit: Unit, place: str, ns: dict[str, Any] | None = None, code: CodeType | None = None):
        self.unit = unit
        self.place = place
        self.ns = ns
        self.code = code  # what a thread or inline job evaluates
        self.info: dict[str, Any] = {}  # what the unit's record gets besides its value
        self.awaitable: Any = None  # what a sync call returned, for the loop to await
        self.begun = False  # begun in the hold that finished the unit before it


def plan_of(flow: CompiledFlow) -> Plan:
    return Plan(
        order=flow.order,
        children=flow.children,
        indegree=flow.indegree,
        group_of=flow.group_of,
        parent_of=flow.parent_of,
        group_workers=flow.group_workers,
        arms=flow.arms,
        joins=flow.join_conds,
    )


def record_name(elements: dict[str, Elements], unit: Unit) -> str:
    """The name of ``unit``'s record: a step's own, or its map element's."""
    return elements[unit[0]].label(unit[1]) if type(unit) is tuple else unit  # type: ignore[return-value]


def resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


__all__ = [
    "CANCELLED", "FAILED", "INLINE", "LOOP", "OK", "THREAD", "Collect", "Job", "plan_of", "record_name", "resolve",
]  # fmt: skip
