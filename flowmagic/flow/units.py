"""What the compiler keeps of each statement while it walks a flow: where it stands (:class:`At`)
and the units it becomes (a step line, an ``if`` block's condition and joins, a ``for`` loop
and its picks)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..dsl.syntax import ForNode, IfNode, Option, Pos, StepNode
from ..errors import FlowDefinitionError
from .loops import Loop
from .scopes import Binding, Scope


def error(msg: str, pos: Pos) -> FlowDefinitionError:
    return FlowDefinitionError(msg, line=pos.line, col=pos.col, end_col=pos.end_col, text=pos.text)


def options_of(options: list[Option], base: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for opt in options:
        if opt.name == "retries":
            merged["retries"] = opt.args[0]
            merged.update(dict(opt.kwargs))
        elif opt.name == "timeout":
            merged["timeout"] = float(opt.args[0])
        elif opt.name == "cache":
            merged["cache"] = opt.args[0]
    return merged


@dataclass(frozen=True)
class At:
    """Where a statement stands: its group and branch, the options around it, the scope its
    names are read in, and the innermost cluster it is drawn in."""

    group: str | None
    branch: str | None
    options: dict[str, Any]
    scope: Scope
    cluster: str | None

    def but(self, **changes: Any) -> At:
        return replace(self, **changes)


@dataclass(eq=False)
class Pending:
    """A step line, where it stands."""

    node: StepNode
    at: At
    index: int
    binding: Binding


@dataclass(eq=False)
class If:
    """An if block's condition, a step of its own named ``if@LINE``."""

    node: IfNode
    at: At
    index: int
    key: str
    arms: list[list[Any]]  # each arm's pending items, nested ones included


@dataclass(eq=False)
class Join:
    """A name's value after an if block: the chosen arm's."""

    cond: If
    variants: list[Binding]  # one per arm
    index: int
    binding: Binding


@dataclass(eq=False)
class LoopUnit:
    """A for loop: a step of its own named ``for@LINE`` that runs its body once per element."""

    node: ForNode
    at: At
    index: int
    key: str
    plan: Loop


@dataclass(eq=False)
class Pick:
    """A name's value after a for loop: its last iteration's."""

    loop: LoopUnit
    name: str
    index: int
    binding: Binding


Unit = Pending | If | Join | LoopUnit | Pick
