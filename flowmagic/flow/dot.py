"""``Flow.to_dot()``: deterministic Graphviz DOT text, with groups and branches as clusters."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .flow import Flow
    from .model import Group


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def node_id(name: str) -> str:
    return quote(name)


def to_dot(flow: Flow) -> str:
    lines = [
        f"digraph {quote(flow.name)} {{",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.3, ranksep=0.4];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", color="#888888", '
        'fontname="Helvetica", fontsize=11];',
        '  edge [color="#888888", arrowsize=0.7];',
    ]
    placed: set[str] = set()

    def step_node(name: str, indent: str) -> None:
        lines.append(f"{indent}{node_id(name)} [label={quote(name + chr(10) + flow.steps[name].kind)}];")
        placed.add(name)

    def direct_child(step: str, parent: str) -> Group:
        name = flow.steps[step].group
        while name is not None and flow.groups[name].parent != parent:
            name = flow.groups[name].parent
        assert name is not None
        return flow.groups[name]

    def emit_members(group: Group, steps: tuple[str, ...], indent: str) -> None:
        emitted: set[str] = set()
        for name in steps:
            if flow.steps[name].group == group.name:
                step_node(name, indent)
                continue
            nested = direct_child(name, group.name)
            if nested.name not in emitted:
                emitted.add(nested.name)
                emit_group(nested, indent)

    def emit_group(group: Group, indent: str) -> None:
        title = f"parallel {group.name}" if group.named else "parallel"
        if group.workers:
            title += f" (workers={group.workers})"
        lines.append(f"{indent}subgraph {quote('cluster_' + group.name)} {{")
        lines.append(f'{indent}  label={quote(title)}; style="rounded,dashed"; color="#5b8def";')
        for branch in group.branches:
            single = branch.steps == (branch.name,) and flow.steps[branch.name].group == group.name
            nested = branch.name in flow.groups and flow.groups[branch.name].parent == group.name
            if single or nested:
                emit_members(group, branch.steps, indent + "  ")
                continue
            lines.append(f"{indent}  subgraph {quote('cluster_' + group.name + '/' + branch.name)} {{")
            lines.append(f'{indent}    label={quote("branch " + branch.name)}; style="rounded"; color="#aaaaaa";')
            emit_members(group, branch.steps, indent + "    ")
            lines.append(f"{indent}  }}")
        lines.append(f"{indent}}}")

    for group in flow.groups.values():
        if group.parent is None:
            emit_group(group, "  ")
    for name in sorted(flow.steps, key=lambda n: flow.steps[n].index):
        if name not in placed:
            step_node(name, "  ")
    for name in sorted(flow.steps, key=lambda n: flow.steps[n].index):
        for dep in flow.steps[name].deps:
            lines.append(f"  {node_id(dep)} -> {node_id(name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
