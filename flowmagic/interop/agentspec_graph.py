"""The pieces an Agent Spec flow is laid out with: its nodes and edges as they are added
(:class:`Graph`), unique component ids (:class:`Ids`), and references between components."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Component = dict[str, Any]
Tail = tuple[Component, "str | None"]  # a node the control flow leaves, and by which branch (None: next)
Sources = list[tuple[Component, str]]  # the nodes and outputs that give a value


@dataclass
class Ids:
    """The ids given so far: each new one is unique in the document."""

    used: set[str] = field(default_factory=set)

    def new(self, base: str) -> str:
        ident, n = base, 1
        while ident in self.used:
            n += 1
            ident = f"{base}#{n}"
        self.used.add(ident)
        return ident


@dataclass
class Graph:
    """The nodes and edges of one Agent Spec flow, as they are laid out."""

    nodes: list[Component] = field(default_factory=list)
    control: list[Component] = field(default_factory=list)
    data: list[Component] = field(default_factory=list)
    reads: list[tuple[str, Component, str]] = field(default_factory=list)  # each value read: by which input
    made: dict[str, Sources] = field(default_factory=dict)  # each value: every output that gave it


def ref(component: Component) -> dict[str, str]:
    return {"$component_ref": component["id"]}


def named(step: str) -> str:
    """The name a step assigns: ``reply`` for ``reply@5``, a step inside an arm."""
    return step.partition("@")[0]


__all__ = ["Component", "Graph", "Ids", "Sources", "Tail", "named", "ref"]
