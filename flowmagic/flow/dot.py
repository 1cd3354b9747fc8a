"""``Flow.to_dot()``: deterministic Graphviz DOT text, with groups and branches as clusters."""

from __future__ import annotations

from collections.abc import Callable

from .shape import Cluster, Node, Shape


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_STYLE = {
    "group": 'style="rounded,dashed"; color="#5b8def";',
    "branch": 'style="rounded"; color="#aaaaaa";',
    "arm": 'style="rounded,dotted"; color="#b07d2b";',
    "loop": 'style="rounded,bold"; color="#7c3aed";',
    "subflow": 'style="rounded,filled"; color="#0f766e"; fillcolor="#f0fdfa";',
}
#: a condition is drawn as a decision (a hexagon); the rest as rounded boxes
_SHAPES = {"if": ', shape=hexagon, style="filled"'}


def shape_to_dot(shape: Shape) -> str:
    lines = [
        f"digraph {quote(shape.name)} {{",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.3, ranksep=0.4];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", color="#888888", '
        'fontname="Helvetica", fontsize=11];',
        '  edge [color="#888888", arrowsize=0.7];',
        *nested(
            shape,
            _node,
            lambda cluster: f"label={quote(cluster.label)}; {_STYLE[cluster.kind]}",
        ),
        *(f"  {quote(a)} -> {quote(b)};" for a, b in shape.edges),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _node(node: Node) -> str:
    return f"{quote(node.name)} [label={quote(node.name + chr(10) + node.kind)}{_SHAPES.get(node.kind, '')}];"


def nested(shape: Shape, node: Callable[[Node], str], cluster: Callable[[Cluster], str]) -> list[str]:
    """The DOT lines of every node and cluster, clusters as nested subgraphs in declaration order.

    ``node`` writes a node's statement, ``cluster`` the attributes of a cluster.
    """
    lines: list[str] = []

    def emit(parent: str | None, indent: str) -> None:
        for item in shape.children(parent):
            if isinstance(item, Node):
                lines.append(indent + node(item))
                continue
            lines.append(f"{indent}subgraph {quote(item.id)} {{")
            lines.append(f"{indent}  {cluster(item)}")
            emit(item.id, indent + "  ")
            lines.append(f"{indent}}}")

    emit(None, "  ")
    return lines
