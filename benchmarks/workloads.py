"""The benchmark workloads: one DAG each, written for every system.

A workload is a list of :class:`Spec` (name, seconds or ``None`` for a no-op,
dependencies). From it come the graph for the two baselines
(:mod:`benchmarks.baselines`) and the flowmagic DSL text, both with sync and
``async def`` step functions. Steps pass their parents' values as arguments,
so in the DSL a dependency is simply a name the expression reads:
``d = work(0.1, b, c)``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .baselines import Graph, Node

# -- the step functions -----------------------------------------------------------


def work(seconds: float, *parents: Any) -> float:
    time.sleep(seconds)
    return seconds


async def awork(seconds: float, *parents: Any) -> float:
    await asyncio.sleep(seconds)
    return seconds


def noop(*parents: Any) -> None:
    return None


async def anoop(*parents: Any) -> None:
    return None


def critic(lyrics: Any, i: int, seconds: float = 0.1) -> float:
    time.sleep(seconds)
    return seconds


async def acritic(lyrics: Any, i: int, seconds: float = 0.1) -> float:
    await asyncio.sleep(seconds)
    return seconds


SYNC_NS: dict[str, Callable[..., Any]] = {"work": work, "noop": noop, "critic": critic}
ASYNC_NS: dict[str, Callable[..., Any]] = {"work": awork, "noop": anoop, "critic": acritic}


# -- workloads --------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    name: str
    seconds: float | None  # None: a no-op step
    deps: tuple[str, ...] = ()


@dataclass
class Workload:
    key: str
    title: str
    specs: list[Spec]
    #: "makespan": report wall / ``scale`` (the critical path, s);
    #: "per_step": report wall / ``scale`` (the step count) in microseconds.
    metric: str
    scale: float
    #: DSL text used for flowmagic instead of the one generated from ``specs``
    #: (the same DAG, written another way, e.g. with a map).
    dsl_override: str | None = None
    layered: bool = True  # wrap independent steps of one level in ``parallel:``
    extra: dict[str, Any] = field(default_factory=dict)

    def graph(self, asynchronous: bool) -> Graph:
        ns = ASYNC_NS if asynchronous else SYNC_NS
        graph: Graph = {}
        for s in self.specs:
            if s.seconds is None:
                graph[s.name] = Node(ns["noop"], (), s.deps)
            else:
                graph[s.name] = Node(ns["work"], (s.seconds,), s.deps)
        return graph

    def dsl(self) -> str:
        if self.dsl_override is not None:
            return self.dsl_override
        return to_dsl(self.specs, self.layered)

    @property
    def size(self) -> int:
        return len(self.specs)


def _line(s: Spec) -> str:
    if s.seconds is None:
        return f"{s.name} = noop({', '.join(s.deps)})"
    return f"{s.name} = work({', '.join([repr(s.seconds), *s.deps])})"


def to_dsl(specs: list[Spec], layered: bool = True) -> str:
    """DSL text for ``specs`` (in topological order).

    With ``layered``, consecutive steps that share a level (longest path from a
    root) are wrapped in one ``parallel:`` block when there are two or more.
    """
    if not layered:
        return "".join(_line(s) + "\n" for s in specs)
    level: dict[str, int] = {}
    for s in specs:
        level[s.name] = 1 + max((level[d] for d in s.deps), default=-1)
    out: list[str] = []
    i = 0
    while i < len(specs):
        j = i
        while j < len(specs) and level[specs[j].name] == level[specs[i].name]:
            j += 1
        block = specs[i:j]
        if len(block) == 1:
            out.append(_line(block[0]))
        else:
            out.append("parallel:")
            out.extend("    " + _line(s) for s in block)
        i = j
    return "\n".join(out) + "\n"


def fan_out(width: int = 4, seconds: float = 0.2) -> Workload:
    specs = [Spec(f"s{i}", seconds) for i in range(width)]
    return Workload(
        key="fanout",
        title=f"fan-out {width} x {seconds:g} s",
        specs=specs,
        metric="makespan",
        scale=seconds,
    )


def _soundtrack_specs(seconds: float, critics: int) -> list[Spec]:
    return [
        Spec("a", seconds),
        Spec("b", seconds, ("a",)),
        Spec("c", seconds, ("a",)),
        Spec("d", seconds, ("b", "c")),
        *(Spec(f"e{i + 1}", seconds, ("d",)) for i in range(critics)),
    ]


def soundtrack(seconds: float = 0.1, critics: int = 5) -> Workload:
    return Workload(
        key="soundtrack",
        title=f"soundtrack {seconds:g} s/step, {critics} critic steps",
        specs=_soundtrack_specs(seconds, critics),
        metric="makespan",
        scale=4 * seconds,
    )


def soundtrack_map(seconds: float = 0.1, critics: int = 5) -> Workload:
    """The same DAG; flowmagic writes the critics as one map step."""
    text = (
        f"a = work({seconds!r})\n"
        "parallel:\n"
        f"    b = work({seconds!r}, a)\n"
        f"    c = work({seconds!r}, a)\n"
        f"d = work({seconds!r}, b, c)\n"
        f"reviews = [critic(d, i, {seconds!r}) for i in range({critics})]\n"
    )
    return Workload(
        key="soundtrack_map",
        title=f"soundtrack {seconds:g} s/step, critics as a map of {critics}",
        specs=_soundtrack_specs(seconds, critics),
        metric="makespan",
        scale=4 * seconds,
        dsl_override=text,
    )


def wide(n: int = 1000) -> Workload:
    return Workload(
        key="wide",
        title=f"{n:,} independent no-op steps",
        specs=[Spec(f"n{i}", None) for i in range(n)],
        metric="per_step",
        scale=n,
        layered=False,  # plain lines, no parallel: block
    )


def chain(n: int = 1000) -> Workload:
    specs = [Spec("n0", None)] + [Spec(f"n{i}", None, (f"n{i - 1}",)) for i in range(1, n)]
    return Workload(
        key="chain",
        title=f"chain of {n:,} no-op steps",
        specs=specs,
        metric="per_step",
        scale=n,
        layered=False,
    )


def all_workloads(quick: bool = False) -> list[Workload]:
    n = 100 if quick else 1000
    return [fan_out(), soundtrack(), soundtrack_map(), wide(n), chain(n)]


# -- workloads added for the side-by-side table -------------------------------------


def wide_fan_out(width: int = 16, seconds: float = 0.2) -> Workload:
    """A fan-out wider than a small default worker cap (Python's thread pool: CPUs + 4)."""
    w = fan_out(width, seconds)
    w.key = f"fanout{width}"
    return w


#: (started, finished) per step name, written by :func:`stamp` / :func:`astamp`.
STAMPS: dict[str, tuple[float, float]] = {}


def stamp(name: str, seconds: float, *parents: Any) -> float:
    """:func:`work` that notes when it started and finished (``time.perf_counter``)."""
    started = time.perf_counter()
    if seconds:
        time.sleep(seconds)
    STAMPS[name] = (started, time.perf_counter())
    return seconds


async def astamp(name: str, seconds: float, *parents: Any) -> float:
    started = time.perf_counter()
    if seconds:
        await asyncio.sleep(seconds)
    STAMPS[name] = (started, time.perf_counter())
    return seconds


def stamped_graph(w: Workload, asynchronous: bool) -> Graph:
    """The baselines' graph of ``w`` with every step run through :func:`stamp` / :func:`astamp`."""
    fn = astamp if asynchronous else stamp
    return {s.name: Node(fn, (s.name, s.seconds or 0.0), s.deps) for s in w.specs}


def slow_fast(slow: float = 0.5, fast: float = 0.1) -> Workload:
    """A slow branch beside a fast one; ``uses_fast`` needs only the fast branch.

    The metric is ``uses_fast``'s start minus ``fast``'s end, in ms (read off
    :data:`STAMPS`): near 0 when a step starts as soon as its own dependencies
    are done, about ``slow - fast`` when steps run in lock-step rounds.
    ``extra["branches"]`` says how a person would group it into branches (for
    systems that express parallelism only as branches of a parallel step).
    """
    specs = [
        Spec("slow", slow),
        Spec("fast", fast),
        Spec("uses_fast", fast, ("fast",)),
        Spec("both", None, ("slow", "uses_fast")),
    ]
    text = (
        "parallel:\n"
        f'    slow = stamp("slow", {slow!r})\n'
        f'    fast = stamp("fast", {fast!r})\n'
        f'uses_fast = stamp("uses_fast", {fast!r}, fast)\n'
        'both = stamp("both", 0, slow, uses_fast)\n'
    )
    return Workload(
        key="slowfast",
        title=f"slow branch {slow:g} s beside fast {fast:g} s + a step on the fast one",
        specs=specs,
        metric="gap_ms",
        scale=1.0,
        dsl_override=text,
        extra={"gap": ("fast", "uses_fast"), "branches": [[["slow"], ["fast", "uses_fast"]], [["both"]]]},
    )
