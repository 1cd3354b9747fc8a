"""Which flows a flow calls (its subflows), and a flow that calls itself, refused before it runs.

A step calls a subflow when the name it calls holds a :class:`~flowmagic.flow.flow.Flow`: the
caller's inputs say so for the flow about to run, each subflow's own namespace for the flows
it calls in turn. A chain that comes back to a flow already on it (``report`` calls
``research`` calls ``report``) would never end: it is a ``FlowDefinitionError`` at the step
that starts it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..dsl.lines import split_lines
from ..errors import FlowDefinitionError

if TYPE_CHECKING:
    from .compiled import CompiledFlow
    from .flow import Flow


def calls(compiled: CompiledFlow, names: Mapping[str, Any]) -> Iterator[tuple[str, Flow]]:
    """``(step, flow)`` for each step (loop bodies included) that calls a flow found in ``names``."""
    for step, code in compiled.code.items():
        for callee in code.callees:
            value = names.get(callee.partition(".")[0]) if callee and not callee.startswith(".") else None
            if getattr(type(value), "__flowmagic_subflow__", False):
                yield step, value  # type: ignore[misc]
    for loop in compiled.loops.values():
        yield from calls(loop.body, names)


def check_no_cycle(flow: Flow, resolved: Mapping[str, Any]) -> None:
    """Raise ``FlowDefinitionError`` if a chain of subflows from ``flow`` comes back to a flow on it."""
    if not any(getattr(type(v), "__flowmagic_subflow__", False) for v in resolved.values()):
        return  # (the common case, checked in one pass)
    for step, callee in calls(flow.compiled, resolved):
        chain = _back(callee, [flow])
        if chain is not None:
            where = flow.steps.get(step) or next(
                (loop.body.steps[step] for loop in flow.compiled.loops.values() if step in loop.body.steps), None
            )
            names = " -> ".join(f.name for f in [flow, *chain])
            line = where.line if where is not None else 1
            col = where.col if where is not None else 0
            raise FlowDefinitionError(
                f"flow '{flow.name}' calls itself ({names}): a subflow cannot call the flow that calls it",
                line=line,
                col=col,
                end_col=col + len(step.partition("@")[0]),
                text=split_lines(flow.source)[line - 1] if line <= len(split_lines(flow.source)) else "",
            )


def _back(flow: Flow, path: list[Flow]) -> list[Flow] | None:
    """The chain from ``flow`` back to a flow on ``path``, if there is one."""
    if any(flow is seen or flow.name == seen.name for seen in path):
        return [flow]
    for _, callee in calls(flow.compiled, flow._namespace or {}):
        rest = _back(callee, [*path, flow])
        if rest is not None:
            return [flow, *rest]
    return None


__all__ = ["calls", "check_no_cycle"]
