"""A compiled flow: its checked steps and groups, and the code objects an engine runs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from types import CodeType
from typing import TYPE_CHECKING

from ..dsl.syntax import Pos, nested
from .model import Group, Step
from .shape import Cluster

if TYPE_CHECKING:
    from .loops import Loop


@dataclass(frozen=True)
class Code:
    """A compiled expression and what the executor needs to know to run it."""

    code: CodeType
    llm: bool  # the expression is a single llm(...) call
    callee: CodeType | None  # evaluates the called function (to tell async from sync)
    calls: int  # calls it makes besides the top one; 0 means cheap to evaluate on the event loop


@dataclass(frozen=True)
class CompiledStep:
    name: str
    expr: Code  # for a map: one element
    reads: tuple[str, ...]  # every name the step reads (steps, groups, inputs)
    input_pos: dict[str, Pos]  # where each input is first read, for error carets
    bindings: Code | None = None  # for a map: evaluates to a list of loop-variable tuples
    targets: tuple[str, ...] = ()  # for a map: the loop variables
    binds: dict[str, str] | None = None  # names read that are steps of another name (``x`` is ``x@4``)
    callees: tuple[str, ...] = ()  # what its calls call (see expressions.callees), for the cache policy

    def unit_of(self, name: str) -> str:
        """The step a name it reads stands for."""
        return self.binds.get(name, name) if self.binds else name


def _renamed(code: CodeType, filename: str) -> CodeType:
    return nested(code, lambda c: c.replace(co_filename=filename))


def _code_renamed(code: Code | None, filename: str) -> Code | None:
    if code is None:
        return None
    callee = _renamed(code.callee, filename) if code.callee is not None else None
    return replace(code, code=_renamed(code.code, filename), callee=callee)


@dataclass
class CompiledFlow:
    steps: dict[str, Step]
    groups: dict[str, Group]
    code: dict[str, CompiledStep]
    # each if block's condition: its arms, each a label and every step inside it
    arms: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = field(default_factory=dict)
    # each name's value after an if block: its condition and the step of each arm
    joins: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # what the drawing nests: groups, branch blocks and if arms (parents first), and each step's cluster
    clusters: tuple[Cluster, ...] = ()
    drawn: dict[str, str | None] = field(default_factory=dict)
    # each for loop: what it runs once per element (see .loops)
    loops: dict[str, Loop] = field(default_factory=dict)
    # each name's value after a for loop: the loop and the name in its value
    picks: dict[str, tuple[str, str]] = field(default_factory=dict)

    def file_as(self, filename: str) -> None:
        """Give the flow's code ``filename``, under which its text is in :mod:`linecache`, so a
        traceback through a step shows the step's line of the cell."""
        for name, step in self.code.items():
            expr = _code_renamed(step.expr, filename)
            assert expr is not None
            self.code[name] = replace(step, expr=expr, bindings=_code_renamed(step.bindings, filename))
        for loop in self.loops.values():
            loop.body.file_as(filename)

    @cached_property
    def order(self) -> list[str]:
        """Every step after the steps it reads (see :func:`topological`), computed once per flow."""
        return topological(self.steps)

    @cached_property
    def declared(self) -> list[str]:
        """The steps in the order the cell declares them."""
        return sorted(self.steps, key=lambda n: self.steps[n].index)

    @cached_property
    def children(self) -> dict[str, tuple[str, ...]]:
        """The steps that read each step, in declaration order."""
        found: dict[str, list[str]] = {n: [] for n in self.steps}
        for n in self.declared:
            for d in self.steps[n].deps:
                found[d].append(n)
        return {n: tuple(c) for n, c in found.items()}

    @cached_property
    def indegree(self) -> dict[str, int]:
        """How many steps each step reads (copy it: a run counts it down)."""
        return {n: len(s.deps) for n, s in self.steps.items()}

    @cached_property
    def fixed_callee(self) -> frozenset[str]:
        """Steps whose called function reads no step: it is the same all run long."""
        steps = self.steps.keys()
        return frozenset(
            n for n, c in self.code.items() if c.expr.callee is not None and steps.isdisjoint(c.expr.callee.co_names)
        )

    @cached_property
    def parent_of(self) -> dict[str, str | None]:
        """Each group's enclosing group, or None."""
        return {g: group.parent for g, group in self.groups.items()}

    @cached_property
    def group_workers(self) -> dict[str, int]:
        """The groups that bound their concurrency (``parallel (workers=N)``), and the bound."""
        return {g: group.workers for g, group in self.groups.items() if group.workers}

    @cached_property
    def group_of(self) -> dict[str, str | None]:
        """Each step's innermost group, or None."""
        return {n: s.group for n, s in self.steps.items()}

    @cached_property
    def sources(self) -> dict[str, str]:
        """Each step's source line (shared by the runs' records: do not change it)."""
        return {n: s.source for n, s in self.steps.items()}

    @cached_property
    def records(self) -> list[tuple[str, str, str | None, str | None, tuple[str, ...]]]:
        """What a run's record of each step starts from: name, kind, group, branch, deps."""
        return [(n, s.kind, s.group, s.branch, s.deps) for n, s in self.steps.items()]

    @cached_property
    def join_conds(self) -> dict[str, str]:
        """Each join's condition."""
        return {join: cond for join, (cond, _) in self.joins.items()}

    @cached_property
    def simple(self) -> frozenset[str]:
        """Steps run in one attempt without a deadline: plain calls, no ``@retries`` or ``@timeout``."""
        return frozenset(
            n
            for n, s in self.steps.items()
            if s.kind in ("call", "if") and s.options.timeout is None and not s.options.retries
        )


def topological(steps: dict[str, Step]) -> list[str]:
    """Every step after the steps it reads: declaration order, moved only where a step reads a later one."""
    done: dict[str, None] = {}
    for root in sorted(steps, key=lambda n: steps[n].index):
        stack = [root]
        while stack:
            name = stack[-1]
            if name in done:
                stack.pop()
                continue
            todo = [d for d in steps[name].deps if d not in done]
            if todo:
                stack.extend(sorted(todo, key=lambda n: -steps[n].index))
                continue
            done[name] = None
            stack.pop()
    return list(done)
