"""``Flow.to_dot()``: deterministic Graphviz DOT text, with groups and branches as clusters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .shape import Cluster, Node, Shape, shape_of

if TYPE_CHECKING:
    from .flow import Flow


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_STYLE = {
    "group": 'style="rounded,dashed"; color="#5b8def";',
    "branch": 'style="rounded"; color="#aaaaaa";',
}


def to_dot(flow: Flow) -> str:
    return shape_to_dot(shape_of(flow))


def shape_to_dot(shape: Shape) -> str:
    lines = [
        f"digraph {quote(shape.name)} {{",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.3, ranksep=0.4];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", color="#888888", '
        'fontname="Helvetica", fontsize=11];',
        '  edge [color="#888888", arrowsize=0.7];',
    ]

    def emit(cluster: str | None, indent: str) -> None:
        for item in shape.children(cluster):
            if isinstance(item, Node):
                lines.append(f"{indent}{quote(item.name)} [label={quote(item.name + chr(10) + item.kind)}];")
            else:
                emit_cluster(item, indent)

    def emit_cluster(cluster: Cluster, indent: str) -> None:
        lines.append(f"{indent}subgraph {quote(cluster.id)} {{")
        lines.append(f"{indent}  label={quote(cluster.label)}; {_STYLE[cluster.kind]}")
        emit(cluster.id, indent + "  ")
        lines.append(f"{indent}}}")

    emit(None, "  ")
    lines += [f"  {quote(a)} -> {quote(b)};" for a, b in shape.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"
