"""The drawable shape of a flow: its nodes, edges and nested clusters.

``to_dot`` and the view's layouts both read this, so a group or a branch is a
cluster in exactly one place. A ``parallel`` group is a cluster; a ``branch``
block of several steps is a cluster inside it; a one-step branch is not; each arm
of an ``if`` block is a cluster. The compiler decides the nesting (``drawn``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .flow import Flow


@dataclass(frozen=True, slots=True)
class Cluster:
    """A parallel group (``cluster_G``), a branch block inside one (``cluster_G/B``), an arm of
    an if block (``cluster_if@L/N``, labelled with its test), a for loop (``cluster_for@L``) or a
    step that calls a subflow (``cluster_STEP/subflow``, labelled with the flow's name)."""

    id: str
    label: str
    kind: Literal["group", "branch", "arm", "loop", "subflow"]
    parent: str | None  # the enclosing cluster's id


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    kind: str  # "call" | "llm" | "map" | "if" | "join" | "loop"
    cluster: str | None  # the innermost cluster's id


@dataclass(frozen=True, slots=True)
class Shape:
    """Nodes in declaration order, edges ``(dependency, step)``, clusters parents first."""

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]
    clusters: tuple[Cluster, ...]
    _key: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def key(self) -> str:
        """Equal for flows that draw the same, whatever their code: the layout cache's key (worked
        out once: a 1,000-step flow's takes a few milliseconds, and every view of a run asks)."""
        if self._key is None:
            text = repr((self.nodes, self.edges, self.clusters))
            object.__setattr__(self, "_key", hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest())
        return self._key  # type: ignore[return-value]

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
    from .calls import calls

    compiled = flow.compiled
    ordered = sorted(flow.steps.values(), key=lambda s: s.index)
    drawn = dict(compiled.drawn)
    clusters = list(compiled.clusters)
    for step, called in calls(compiled, flow._namespace or {}):  # a step calling a flow: in a box of its own
        if step in flow.steps:
            clusters.append(Cluster(f"cluster_{step}/subflow", f"subflow {called.name}", "subflow", drawn.get(step)))
            drawn[step] = clusters[-1].id
    nodes = tuple(Node(s.name, s.kind, drawn.get(s.name)) for s in ordered)
    # a condition's edge to a step of its arm that follows another of the arm, or to a join, says nothing new
    arm_of = {step: cond for cond, arms in compiled.arms.items() for _, steps in arms for step in steps}
    edges = tuple(
        (dep, s.name)
        for s in ordered
        for dep in s.deps
        if not (dep in compiled.arms and (s.kind == "join" or any(arm_of.get(d) == dep for d in s.deps)))
    )
    return Shape(flow.name, nodes, edges, tuple(clusters))
