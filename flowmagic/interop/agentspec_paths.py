"""The control flow of an Agent Spec flow as blocks: a sequence, ``if`` blocks and loops.

An Agent Spec flow is a graph of nodes joined by control-flow edges, each leaving a
node by one of its branches: ``next`` for most nodes, one per value of the ``mapping``
and ``default`` for a ``BranchingNode``, the end branch of its subflow for a
``FlowNode`` (WayFlow names it after the subflow's ``EndNode``). A branch with no edge
ends the flow, as an ``EndNode`` does. :func:`shape` reads the graph as flowmagic
statements:

- a path of nodes is a sequence;
- a ``BranchingNode`` whose branches meet again (at the first node every one of them
  reaches, or at the flow's end) is a :class:`Choice`: an ``if`` block, one arm per
  distinct next node;
- a control flow that goes back to a node before it is a :class:`Cycle`: a loop from
  that node, left by the one ``BranchingNode`` inside it with a branch out of it (the
  latch), which goes on by its other branch, maybe through more nodes, and stops by the
  branches that leave (they must all lead to one node). The edge back may leave the
  latch itself or a node after it (as flowmagic's export writes a loop whose body goes on
  after its ``break``), or several nodes, the arms of an ``if`` block at the body's end.

Any other shape (a loop without a ``BranchingNode`` to leave it, or that two leave, a
node with two next nodes for one branch, branches that leave a loop for different
places) is an :class:`AgentSpecError` naming the node.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Union

from .agentspec import AgentSpecError
from .agentspec_text import Component, describe

EXIT = "\0exit"  # where the flow ends: an EndNode, or a branch with no edge
BRANCHING = "BranchingNode"
DEFAULT = "default"


@dataclass
class Choice:
    """A ``BranchingNode`` whose branches meet again: an ``if`` block."""

    node: Component
    arms: list[tuple[tuple[str, ...] | None, list[Part]]]  # the values that choose each arm (None: default)


@dataclass
class Cycle:
    """A loop: ``body`` up to the ``BranchingNode`` ``node``, then ``then`` on the way back, while the
    value ``node`` reads is one of ``stay`` (or, when ``stay_default``, none of ``leave``)."""

    node: Component
    body: list[Part]
    then: list[Part]
    stay: tuple[str, ...]
    leave: tuple[str, ...]
    stay_default: bool


Part = Union[Component, Choice, Cycle]  # noqa: UP007 - a runtime alias, Python 3.10 too


def nodes_in(parts: list[Part]) -> Iterator[str]:
    """The ids of the nodes in ``parts``, in order, those in blocks included."""
    for part in parts:
        if isinstance(part, Choice):
            yield part.node["id"]
            for _, arm in part.arms:
                yield from nodes_in(arm)
        elif isinstance(part, Cycle):
            yield from nodes_in(part.body)
            yield part.node["id"]
            yield from nodes_in(part.then)
        else:
            yield part["id"]


def shape(flow: Component, start: Component) -> list[Part]:
    """The parts of ``flow`` after its StartNode ``start``."""
    return _Graph(flow, start).shape()


@dataclass
class _Loop:
    latch: str  # the BranchingNode that leaves the loop
    back: str  # the node its loop goes back to


@dataclass
class _Graph:
    flow: Component
    start: Component
    by_id: dict[str, Component] = field(default_factory=dict)
    next: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> branch -> next node (or EXIT)
    back: set[tuple[str, str]] = field(default_factory=set)  # edges to a node before (the loops)
    loops: dict[str, _Loop] = field(default_factory=dict)  # by the node the loop starts at
    tails: dict[str, list[str]] = field(default_factory=dict)  # each node gone back to: the nodes going back

    def __post_init__(self) -> None:
        self.by_id = {str(n["id"]): n for n in self.flow.get("nodes") or [] if isinstance(n, dict)}
        if self.start["id"] not in self.by_id:
            raise AgentSpecError(f"{describe(self.start)} is not one of the nodes of flow '{self.flow.get('name')}'")
        for edge in self.flow.get("control_flow_connections") or []:
            source, target = edge["from_node"], edge["to_node"]
            for node in (source, target):
                if node["id"] not in self.by_id:
                    raise AgentSpecError(f"{describe(node)} is not one of the nodes of flow '{self.flow.get('name')}'")
            source = self.by_id[source["id"]]
            branch = self.branch(source, edge.get("from_branch"))
            taken = self.next.setdefault(source["id"], {})
            if taken.get(branch, target["id"]) != target["id"]:
                raise AgentSpecError(
                    f"{describe(source)} has several next nodes"
                    + (f" for its branch '{branch}'" if source.get("component_type") == BRANCHING else "")
                    + ": flowmagic imports one path for each branch (with parallel nodes for what runs side by side)"
                )
            taken[branch] = target["id"]
        self.find_loops()

    def branch(self, node: Component, name: object) -> str:
        """The branch an edge leaves ``node`` by, checked against those the node has."""
        kind = node.get("component_type")
        if kind == BRANCHING:
            branches = [*map(str, (node.get("mapping") or {}).values()), DEFAULT]
        elif kind == "EndNode":
            raise AgentSpecError(f"the control flow goes on after {describe(node)}")
        elif kind == "FlowNode":
            ends = [n for n in node["subflow"].get("nodes") or [] if n.get("component_type") == "EndNode"]
            names = sorted({str(n.get("branch_name") or "next") for n in ends})
            if len(names) > 1:
                raise AgentSpecError(
                    f"{describe(node)}: its subflow ends by several branches ({', '.join(names)}); "
                    "flowmagic imports subflows with one way out"
                )
            return "next" if name in (None, "next", *names) else self.no_branch(node, name, ["next", *names])
        else:
            branches = ["next"]
        if name is None and kind != BRANCHING:
            return "next"
        return str(name) if name in branches else self.no_branch(node, "next" if name is None else name, branches)

    @staticmethod
    def no_branch(node: Component, name: object, branches: list[str]) -> str:
        raise AgentSpecError(f"{describe(node)} has no branch {name!r} (its branches: {', '.join(branches)})")

    def successors(self, node: str) -> dict[str, str]:
        """Each branch of ``node`` and where it leads (EXIT: the flow ends)."""
        if node == EXIT:
            return {}
        component = self.by_id[node]
        kind = component.get("component_type")
        # an EndNode ends the flow as a branch with no edge does: both lead to EXIT
        ends = {b: t for b, t in self.next.get(node, {}).items() if self.by_id[t].get("component_type") == "EndNode"}
        taken = {**self.next.get(node, {}), **dict.fromkeys(ends, EXIT)}
        if kind == BRANCHING:
            values = dict.fromkeys([*map(str, (component.get("mapping") or {}).values()), DEFAULT])
            return {b: taken.get(b, EXIT) for b in values}
        return {"next": taken.get("next", EXIT)}

    def find_loops(self) -> None:
        """The edges back to a node on the way to them (a depth-first walk from the start), and the
        loop each node gone back to starts (see :meth:`loop`)."""
        on_path: set[str] = set()
        seen: set[str] = set()
        stack = [(self.start["id"], iter(self.successors(self.start["id"]).values()))]
        on_path.add(self.start["id"])
        seen.add(self.start["id"])
        while stack:
            node, todo = stack[-1]
            target = next(todo, None)
            if target is None:
                stack.pop()
                on_path.discard(node)
                continue
            if target in on_path:
                self.back.add((node, target))
                self.tails.setdefault(target, []).append(node)
            elif target not in seen and target != EXIT:
                seen.add(target)
                on_path.add(target)
                stack.append((target, iter(self.successors(target).values())))
        before: dict[str, list[str]] = {}  # each node: the nodes that lead to it
        for node in seen:
            for target in self.successors(node).values():
                before.setdefault(target, []).append(node)
        for back, tails in self.tails.items():
            self.loop(back, tails, before)

    def loop(self, back: str, tails: list[str], before: dict[str, list[str]]) -> None:
        """The loop that ``tails`` go back to ``back`` by: its nodes are those that lead to a tail
        without passing ``back``; its latch the one BranchingNode among them with a branch out."""
        inside, todo = {back, *tails}, [t for t in tails if t != back]
        while todo:
            for node in before.get(todo.pop(), []):
                if node not in inside:
                    inside.add(node)
                    todo.append(node)
        latches = [
            n
            for n in self.by_id
            if n in inside
            and self.by_id[n].get("component_type") == BRANCHING
            and any(t not in inside for t in self.successors(n).values())
        ]
        target = self.by_id[back]
        if not latches:
            raise AgentSpecError(
                f"the control flow loops back to {describe(target)} from {describe(self.by_id[tails[0]])}, "
                "with no BranchingNode to leave the loop"
            )
        if len(latches) > 1:
            raise AgentSpecError(
                f"the loop back to {describe(target)} is left from two places "
                f"({describe(self.by_id[latches[0]])}, {describe(self.by_id[latches[1]])}): "
                "flowmagic imports loops that one BranchingNode leaves"
            )
        self.loops[back] = _Loop(latches[0], back)

    # -- the forward graph: loops cut where they go back ---------------------------------
    def forward(self, node: str) -> dict[str, str]:
        """``successors``, with an edge back to a loop's start leading to that loop's end instead."""
        return {b: _again(t) if (node, t) in self.back else t for b, t in self.successors(node).items()}

    def merges(self) -> dict[str, str]:
        """Each node's immediate post-dominator in the forward graph: the first node all its ways reach."""
        order: list[str] = []  # reverse post-order: every node before the nodes it leads to
        seen = {self.start["id"]}
        stack = [(self.start["id"], iter(self.forward(self.start["id"]).values()))]
        while stack:
            node, todo = stack[-1]
            target = next(todo, None)
            if target is None:
                stack.pop()
                order.append(node)
                continue
            if target not in seen:
                seen.add(target)
                stack.append((target, iter(self.forward(target).values()) if _real(target) else iter([EXIT])))
        rank = {node: i for i, node in enumerate(order)}  # the sinks first
        idom: dict[str, str] = {}
        for node in order:
            after = list(self.forward(node).values()) if _real(node) else ([] if node == EXIT else [EXIT])
            if not after:
                idom[node] = node
                continue
            found = after[0]
            for other in after[1:]:
                found = _meet(found, other, idom, rank)
            idom[node] = found
        return idom

    # -- the blocks ---------------------------------------------------------------------------
    def shape(self) -> list[Part]:
        self.idom = self.merges()
        parts, _ = self.walk(self.forward(self.start["id"])["next"], EXIT, frozenset())
        return parts

    def walk(self, node: str, stop: str, open_loops: frozenset[str]) -> tuple[list[Part], str]:
        """The parts from ``node`` up to ``stop`` (or the flow's end), and where the walk stopped."""
        parts: list[Part] = []
        while node != stop and _real(node):
            component = self.by_id[node]
            if node in self.loops and node not in open_loops:
                cycle, node = self.cycle(self.loops[node], open_loops | {node})
                parts.append(cycle)
            elif component.get("component_type") == BRANCHING:
                merge = self.idom[node]
                arms: dict[str, list[str]] = {}
                for branch, target in self.forward(node).items():
                    arms.setdefault(target, []).append(branch)
                mapping = component.get("mapping") or {}
                choice = Choice(component, [])
                for target, branches in arms.items():
                    values = tuple(str(k) for k, b in mapping.items() if str(b) in branches)
                    arm, _ = self.walk(target, merge, open_loops)
                    choice.arms.append((None if DEFAULT in branches else values, arm))
                choice.arms.sort(key=lambda arm: arm[0] is None)  # the default arm last: the 'else'
                parts.append(choice)
                node = merge
            else:
                parts.append(component)
                node = self.forward(node)["next"]
        return parts, node

    def cycle(self, loop: _Loop, open_loops: frozenset[str]) -> tuple[Cycle, str]:
        latch = self.by_id[loop.latch]
        body, reached = self.walk(loop.back, loop.latch, open_loops)
        if reached != loop.latch:
            raise AgentSpecError(
                f"the loop from {describe(self.by_id[loop.back])} to {describe(latch)} is left before its end: "
                "flowmagic imports loops that each BranchingNode inside leaves only at the loop's end"
            )
        again = _again(loop.back)
        stay: dict[str, str] = {}
        leave: dict[str, str] = {}
        for branch, target in self.forward(loop.latch).items():
            (stay if target == again or self.reaches(target, again) else leave)[branch] = target
        if len(set(stay.values())) > 1 or len(set(leave.values())) > 1 or not leave:
            where = "nowhere" if not leave else "to different nodes"
            raise AgentSpecError(
                f"{describe(latch)} loops back to {describe(self.by_id[loop.back])} and leaves the loop {where}: "
                "flowmagic imports loops that go back by one node and leave to one node"
            )
        going_on = next(iter(stay.values()))
        then, _ = self.walk(going_on, again, open_loops) if going_on != again else ([], again)
        mapping = {str(k): str(b) for k, b in (latch.get("mapping") or {}).items()}
        cycle = Cycle(
            latch,
            body,
            then,
            stay=tuple(k for k, b in mapping.items() if b in stay),
            leave=tuple(k for k, b in mapping.items() if b in leave),
            stay_default=DEFAULT in stay,
        )
        return cycle, next(iter(leave.values()))

    def reaches(self, node: str, goal: str) -> bool:
        seen, todo = {node}, [node]
        while todo:
            here = todo.pop()
            if here == goal:
                return True
            for target in self.forward(here).values() if _real(here) else []:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return False


def _again(node: str) -> str:
    """The end of one turn of the loop that goes back to ``node``."""
    return f"\0again {node}"


def _real(node: str) -> bool:
    return not node.startswith("\0")


def _meet(a: str, b: str, idom: dict[str, str], rank: dict[str, int]) -> str:
    """The nearest node that post-dominates both ``a`` and ``b``."""
    while a != b:  # a node's post-dominators come before it in the post-order: climb from the later one
        while rank[a] > rank[b]:
            a = idom[a]
        while rank[b] > rank[a]:
            b = idom[b]
    return a


__all__ = ["EXIT", "Choice", "Cycle", "Part", "nodes_in", "shape"]
