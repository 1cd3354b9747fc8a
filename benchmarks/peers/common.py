"""What every peer adapter shares: the task descriptions and the step bodies.

This module runs inside the peers' environments, so it imports only the
standard library (never flowmagic, never a peer).

A DAG task is a list of :class:`Step` (name, seconds or ``None`` for a no-op,
dependencies), the same data as :class:`benchmarks.workloads.Spec`. Every
adapter runs each step through one :class:`Recorder`, whose step bodies sleep
(``time.sleep`` or ``asyncio.sleep``) and note when they started and finished
and how often they ran: the worker checks from it that each step ran exactly
once per run and reads the slow/fast gap off it. A step's value is its name
(a string, because LLMFlows' steps must return one).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float | None
    deps: tuple[str, ...] = ()


@dataclass(frozen=True)
class DagTask:
    key: str
    steps: tuple[Step, ...]
    #: WayFlow only: the DAG as levels of branches (each branch a list of step
    #: names run in order), when the workload says how a person would group it.
    branches: tuple[tuple[tuple[str, ...], ...], ...] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DagTask:
        steps = tuple(Step(n, s, tuple(d)) for n, s, d in data["specs"])
        branches = data.get("branches")
        levels = tuple(tuple(tuple(b) for b in level) for level in branches) if branches else None
        return cls(data["key"], steps, levels)

    @property
    def finals(self) -> list[str]:
        """The steps no other step reads: the results a user asks for."""
        read = {d for s in self.steps for d in s.deps}
        return [s.name for s in self.steps if s.name not in read]


@dataclass(frozen=True)
class LlmTask:
    key: str
    calls: int
    workers: int
    base_url: str  # ends in /v1
    model: str
    api_key: str

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def prompt(self, i: int) -> str:
        return f"Question {i}: say something short."


@dataclass(frozen=True)
class MapTask:
    key: str
    items: int


def levels(steps: tuple[Step, ...]) -> list[list[Step]]:
    """Steps grouped by level (longest path from a root), in declaration order within a level."""
    level: dict[str, int] = {}
    for s in steps:
        level[s.name] = 1 + max((level[d] for d in s.deps), default=-1)
    out: list[list[Step]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for s in steps:
        out[level[s.name]].append(s)
    return out


@dataclass
class Recorder:
    """The step bodies, with when each step started and finished and how often it ran."""

    started: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.started.clear()
        self.finished.clear()
        self.calls.clear()

    def run(self, name: str, seconds: float | None) -> str:
        self.started[name] = time.perf_counter()
        if seconds:
            time.sleep(seconds)
        self.finished[name] = time.perf_counter()
        self.calls.append(name)  # list.append is atomic: safe from any thread
        return name

    async def arun(self, name: str, seconds: float | None) -> str:
        self.started[name] = time.perf_counter()
        if seconds:
            await asyncio.sleep(seconds)
        self.finished[name] = time.perf_counter()
        self.calls.append(name)
        return name

    def repeated(self) -> dict[str, int]:
        """Steps that ran more than once in this run, with their counts."""
        return {n: c for n, c in Counter(self.calls).items() if c > 1}
