"""The drawable shape of a flow: its nodes, edges and nested clusters.

``to_dot`` and the view's layouts both read this, so a group or a branch is a
cluster in exactly one place. A ``parallel`` group is a cluster; a ``branch``
block of several steps is a cluster inside it; a one-step branch is not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .flow import Flow


@dataclass(frozen=True, slots=True)
class Cluster:
    """A parallel group (``cluster_G``) or a branch block inside one (``cluster_G/B``)."""

    id: str
    label: str
    kind: Literal["group", "branch"]
    parent: str | None  # the enclosing cluster's id


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    kind: str  # "call" | "llm" | "map"
    cluster: str | None  # the innermost cluster's id


@dataclass(frozen=True, slots=True)
class Shape:
    """Nodes in declaration order, edges ``(dependency, step)``, clusters parents first."""

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]
    clusters: tuple[Cluster, ...]

    @property
    def key(self) -> str:
        """Equal for flows that draw the same, whatever their code: the layout cache's key."""
        text = repr((self.nodes, self.edges, self.clusters))
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def children(self, cluster: str | None) -> list[Cluster | Node]:
        """What sits directly inside ``cluster`` (None: the top level), in declaration order."""
        parents = {c.id: c.parent for c in self.clusters}
        first: dict[str, int] = {}  # each cluster's place: that of its first node
        for index, node in enumerate(self.nodes):
            cid = node.cluster
            while cid is not None and cid not in first:  # once set, its parents are set too
                first[cid] = index
                cid = parents[cid]
        items: list[tuple[int, Cluster | Node]] = [(first[c.id], c) for c in self.clusters if c.parent == cluster]
        items += [(i, n) for i, n in enumerate(self.nodes) if n.cluster == cluster]
        return [item for _, item in sorted(items, key=lambda pair: (pair[0], isinstance(pair[1], Node)))]


def shape_of(flow: Flow) -> Shape:
    clusters: list[Cluster] = []
    # the cluster each group's branches sit in: branch blocks get their own
    branch_cluster: dict[tuple[str, str], str] = {}

    def add_group(name: str, parent: str | None) -> None:
        group = flow.groups[name]
        title = f"parallel {group.name}" if group.named else "parallel"
        if group.workers:
            title += f" (workers={group.workers})"
        gid = f"cluster_{name}"
        clusters.append(Cluster(gid, title, "group", parent))
        for branch in group.branches:
            single = branch.steps == (branch.name,) and flow.steps[branch.name].group == name
            nested = branch.name in flow.groups and flow.groups[branch.name].parent == name
            where = gid
            if not (single or nested):
                where = f"{gid}/{branch.name}"
                clusters.append(Cluster(where, f"branch {branch.name}", "branch", gid))
            branch_cluster[(name, branch.name)] = where
            for child in _nested_groups(flow, name, branch.steps):
                add_group(child, where)

    for name, group in flow.groups.items():
        if group.parent is None:
            add_group(name, None)
    ordered = sorted(flow.steps.values(), key=lambda s: s.index)
    nodes = tuple(
        Node(
            s.name,
            s.kind,
            None if s.group is None else branch_cluster[(s.group, s.branch or s.name)],
        )
        for s in ordered
    )
    edges = tuple((dep, s.name) for s in ordered for dep in s.deps)
    return Shape(flow.name, nodes, edges, tuple(clusters))


def _nested_groups(flow: Flow, parent: str, steps: tuple[str, ...]) -> list[str]:
    """The groups directly inside ``parent`` that these steps belong to, in order."""
    found: list[str] = []
    for step in steps:
        name = flow.steps[step].group
        while name is not None and name != parent and flow.groups[name].parent != parent:
            name = flow.groups[name].parent
        if name is not None and name != parent and name not in found:
            found.append(name)
    return found
