"""``for`` loops: what a loop step runs once per element, and where ``break`` leaves it.

A loop's body is compiled as a flow of its own (:class:`Loop`.body) that the loop step
runs once per element of its iterable, in order, each time as a nested run. A name the body
reads before it assigns it is *carried*: the body reads it as the input ``NAME@carried``,
given the previous iteration's value (or the one from before the loop). After the loop,
each name the body assigns is a step of the flow holding its last value.

``break`` ends the loop. It must be the last line of an arm of an ``if`` directly in the
body: :func:`unfold_breaks` moves the lines after that ``if`` into its other arm (its
``else``), so they run only when the loop goes on, and the loop step stops after an
iteration that chose a breaking arm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..dsl.syntax import Arm, BranchNode, BreakNode, ForNode, GroupNode, IfNode, Node, Pos
from ..errors import FlowDefinitionError

if TYPE_CHECKING:
    from .compiled import CompiledFlow

CARRIED = "@carried"  # the body's input holding a carried name's previous value: 'draft@carried'
#: The most iterations a loop runs; an iterable with more is an error before the first one.
MAX_ITERATIONS = 1000


@dataclass(frozen=True)
class Loop:
    """What a loop step runs: its body, and how values pass between iterations."""

    target: str  # the loop variable
    label: str  # 'for attempt in range(3)'
    body: CompiledFlow
    carried: tuple[str, ...]  # names the body reads before assigning them
    outer: tuple[str, ...]  # names the body reads that it never assigns (steps before the loop, inputs)
    outputs: dict[str, tuple[str, ...]]  # each name the body assigns: the body's units that do, in order
    breaks: tuple[tuple[str, int], ...] = ()  # (condition, arm): an iteration that chose it is the last
    reads: tuple[str, ...] = field(default=(), repr=False)  # what the iterable's expression reads


def _error(msg: str, pos: Pos) -> FlowDefinitionError:
    return FlowDefinitionError(msg, line=pos.line, col=pos.col, end_col=pos.end_col, text=pos.text)


def unfold_breaks(body: list[Node]) -> list[Node]:
    """The body with the lines after each ``if`` that breaks moved into its other arm; the
    breaking arms lose their ``break`` line and are marked (``Arm.breaks``)."""
    out: list[Node] = []
    for i, node in enumerate(body):
        if isinstance(node, BreakNode):
            raise _error("a 'break' directly in a loop's body ends the loop at once: put it under an 'if'", node.pos)
        if isinstance(node, IfNode) and any(_breaks(arm) for arm in node.arms):
            out.append(_unfolded(node, unfold_breaks(body[i + 1 :])))
            return out
        _no_break_inside(node)
        out.append(node)
    return out


def _breaks(arm: Arm) -> bool:
    return bool(arm.body) and isinstance(arm.body[-1], BreakNode)


def _unfolded(node: IfNode, rest: list[Node]) -> IfNode:
    arms: list[Arm] = []
    going_on = [arm for arm in node.arms if not _breaks(arm)]
    if len(going_on) + (node.arms[-1].word != "else") > 1 and rest:
        raise _error(
            "an 'if' with 'break' in one arm may have one other arm (an 'else'), where the rest of the body goes: "
            "make the other choices an 'if' inside it",
            node.pos,
        )
    for arm in node.arms:
        stop = _breaks(arm)
        kept = arm.body[:-1] if stop else arm.body
        for inner in kept:
            _no_break_inside(inner)
        arms.append(Arm(arm.word, arm.test, arm.source, arm.span, kept if stop else [*kept, *rest], arm.pos, stop))
    if node.arms[-1].word != "else":
        arms.append(Arm("else", None, "", None, list(rest), node.pos))
    return IfNode(arms=arms, pos=node.pos, options=node.options)


def _no_break_inside(node: Node, direct: bool = True) -> None:
    """A ``break`` anywhere in ``node`` but a nested loop's own body is misplaced."""
    bodies: list[list[Node]] = []
    if isinstance(node, IfNode):
        bodies = [arm.body for arm in node.arms]
    elif isinstance(node, (GroupNode, BranchNode)):
        bodies = [node.body]
    for body in bodies:
        for inner in body:
            if isinstance(inner, BreakNode):
                if direct and isinstance(node, IfNode):
                    raise _error("'break' must be the last line of its arm of the 'if'", inner.pos)
                why = "'break' belongs in an 'if' directly in the loop's body, as its arm's last line"
                raise _error(why, inner.pos)
            if not isinstance(inner, ForNode):
                _no_break_inside(inner, direct=False)


__all__ = ["CARRIED", "MAX_ITERATIONS", "Loop", "unfold_breaks"]
