"""A text outline of a flow's DAG: what ``Flow.show()`` prints in a terminal and ``flowmagic check`` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .flow import Flow


def outline(flow: Flow) -> str:
    lines = [
        f"flow '{flow.name}': {len(flow.steps)} steps" + (f", inputs: {', '.join(flow.inputs)}" if flow.inputs else "")
    ]
    width = max((len(n) for n in flow.steps), default=4)
    for name in sorted(flow.steps, key=lambda n: flow.steps[n].index):
        step = flow.steps[name]
        where = ""
        if step.group:
            group = flow.groups[step.group]
            where = f"  [parallel {group.name}" + (f" / {step.branch}" if step.branch != name else "") + "]"
        deps = f"  <- {', '.join(step.deps)}" if step.deps else ""
        lines.append(f"  {name:<{width}}  {step.kind:<4}{deps}{where}")
    return "\n".join(lines)

