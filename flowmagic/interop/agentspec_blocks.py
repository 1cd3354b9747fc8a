"""``if/elif/else`` blocks as Agent Spec ``BranchingNode`` s, for the export.

A ``BranchingNode`` reads one value and takes the branch its ``mapping`` gives for that
value, or its ``default`` branch. So a block exports when each of its tests compares one
and the same name with string literals: ``kind == "bug"``, ``"bug" == kind`` or
``kind in ("bug", "crash")``; its ``else`` arm (or, without one, the way past the block)
is the default branch. A value an earlier arm already takes cannot choose a later one.

:class:`Nesting` says which block each step is in, so the exporter can stage a block as
one unit beside the steps around it, and each arm's steps as a sequence of their own.
"""

from __future__ import annotations

import ast
import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..flow.compiled import CompiledFlow

DEFAULT_BRANCH = "default"  # Agent Spec's branch for a value the mapping does not hold

FORMS = 'a BranchingNode compares one name with strings: write each test as kind == "bug" or kind in ("a", "b")'


class Refused(ValueError):
    """A block Agent Spec cannot express; the message says why."""


@dataclass(frozen=True)
class Arm:
    label: str  # 'if kind == "bug"', 'else'
    values: tuple[str, ...] | None  # the values that choose it; None for the else arm
    steps: tuple[str, ...]  # every step inside it, nested blocks' steps included
    branch: str  # its branch of the BranchingNode


@dataclass(frozen=True)
class Block:
    cond: str  # the block's condition step, 'if@3'
    key: str  # the name every test reads
    arms: tuple[Arm, ...]
    joins: dict[str, tuple[str, ...]]  # each name after the block: the step of each arm

    @property
    def mapping(self) -> dict[str, str]:
        return {v: arm.branch for arm in self.arms for v in arm.values or ()}

    @property
    def has_else(self) -> bool:
        return self.arms[-1].values is None

    @property
    def branches(self) -> list[str]:
        return [*dict.fromkeys(arm.branch for arm in self.arms if arm.values is not None), DEFAULT_BRANCH]


def block(compiled: CompiledFlow, cond: str) -> Block:
    """The block of condition ``cond``; :class:`Refused` when a test is not of a form that exports."""
    key: str | None = None
    taken: set[str] = set()
    used = {DEFAULT_BRANCH}
    arms: list[Arm] = []
    for label, steps in compiled.arms[cond]:
        word, _, source = label.partition(" ")
        if word == "else":
            arms.append(Arm(label, None, steps, DEFAULT_BRANCH))
            continue
        name, values = _test(source)
        if key is not None and name != key:
            raise Refused(f"its tests read '{key}' and '{name}'; {FORMS}, all on the same name")
        key = name
        fresh = tuple(v for v in dict.fromkeys(values) if v not in taken)
        if not fresh:
            raise Refused(f"its arm '{label}' can never be chosen: an earlier arm takes {_listed(values)}")
        taken.update(fresh)
        branch = fresh[0] if len(fresh) == 1 else " | ".join(fresh)
        while branch in used:
            branch += "'"
        used.add(branch)
        arms.append(Arm(label, fresh, steps, branch))
    assert key is not None  # a block starts with 'if TEST'
    joins = {name: variants for name, (c, variants) in compiled.joins.items() if c == cond}
    return Block(cond, key, tuple(arms), joins)


def _test(source: str) -> tuple[str, tuple[str, ...]]:
    """The name a test reads and the strings it compares it with."""
    try:
        test = ast.parse(f"({source})", mode="eval").body
    except SyntaxError:  # pragma: no cover - the test was parsed once already
        raise Refused(f"its test '{source}' does not parse on its own") from None
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.Eq):
            if _string(left) is not None and not isinstance(right, ast.Constant):
                left, right = right, left
            text = _string(right)
            if text is not None:
                return _name(left, source), (text,)
        if isinstance(op, ast.In) and isinstance(right, (ast.Tuple, ast.List, ast.Set)) and right.elts:
            texts = [_string(e) for e in right.elts]
            if all(t is not None for t in texts):
                return _name(left, source), tuple(t for t in texts if t is not None)
    raise Refused(f"its test '{source}' is not an equality with a string; {FORMS}")


def _name(expr: ast.expr, source: str) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    raise Refused(
        f"its test '{source}' reads '{ast.unparse(expr)}', not a name; {FORMS} "
        "(a BranchingNode reads one value: have a step give the value to test itself)"
    )


def _string(expr: ast.expr) -> str | None:
    return expr.value if isinstance(expr, ast.Constant) and isinstance(expr.value, str) else None


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(repr(v) for v in values)


class Nesting:
    """Which block holds each step, and the steps of a block or an arm as units to stage.

    A unit is a step, a block standing for all its steps (its condition, its arms' steps
    and its joins), or a ``for`` loop standing for its step and the names it gives after
    it. ``None`` stands for the whole flow, outside every block.
    """

    def __init__(self, compiled: CompiledFlow) -> None:
        self.compiled = compiled
        self.parent: dict[str, str] = {}  # an arm's step: the innermost block holding it; a join: its block
        for cond in sorted(compiled.arms, key=lambda c: compiled.steps[c].index):  # outer blocks first
            for _, steps in compiled.arms[cond]:
                self.parent.update(dict.fromkeys(steps, cond))
        self.arm_step = set(self.parent)  # steps inside an arm (read only there)
        self.parent.update(compiled.join_conds)
        self.parent.update({pick: loop for pick, (loop, _) in compiled.picks.items()})
        self.position = {name: i for i, name in enumerate(compiled.order)}

    def unit(self, step: str, container: str | None) -> str | None:
        """The unit ``step`` belongs to directly inside ``container``; None when it is not inside it."""
        while self.parent.get(step) != container:
            if step not in self.parent:
                return None
            step = self.parent[step]
        return step

    def members(self, unit: str) -> list[str]:
        """The steps a unit stands for."""
        if unit in self.compiled.loops:
            return [unit, *(p for p, (loop, _) in self.compiled.picks.items() if loop == unit)]
        if unit not in self.compiled.arms:
            return [unit]
        inside = [s for _, steps in self.compiled.arms[unit] for s in steps]
        return [unit, *inside, *(j for j, c in self.compiled.join_conds.items() if c == unit)]

    def expand(self, units: Iterable[str]) -> list[str]:
        return [s for u in units for s in self.members(u)]

    def level(self, steps: Iterable[str], container: str | None) -> tuple[list[str], dict[str, tuple[str, ...]]]:
        """The units of ``steps`` inside ``container``, in an order where each comes after the units it
        reads, and what each reads among them."""
        units = list(dict.fromkeys(u for s in steps if (u := self.unit(s, container)) is not None))
        deps: dict[str, tuple[str, ...]] = {}
        for u in units:
            reads = (self.unit(d, container) for m in self.members(u) for d in self.compiled.steps[m].deps)
            deps[u] = tuple(dict.fromkeys(r for r in reads if r is not None and r != u))
        first = {u: min(self.position[m] for m in self.members(u)) for u in units}
        waiting = {u: len(deps[u]) for u in units}
        readers: dict[str, list[str]] = {u: [] for u in units}
        for u in units:
            for d in deps[u]:
                readers[d].append(u)
        ready = [(first[u], u) for u in units if not waiting[u]]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, u = heapq.heappop(ready)
            order.append(u)
            for r in readers[u]:
                waiting[r] -= 1
                if not waiting[r]:
                    heapq.heappush(ready, (first[r], r))
        return order, deps


__all__ = ["DEFAULT_BRANCH", "Arm", "Block", "Nesting", "Refused", "block"]
