"""Which value each input of an Agent Spec node reads, as the DSL name that holds it.

An input reads what its data-flow edges bring; in a flow without data-flow edges (none given,
or an empty list: WayFlow wires both by name), the outputs of the same name. With several
sources (the arms of a branch, or a loop that feeds a node the value it made the turn before),
it reads the one given last: the translation records each output as it writes it
(:meth:`Values.produce`; after a loop, what its body gave is the latest, :meth:`Values.again`).
Where that is decided by the way the flow runs, not by the order of the text, the translation of
an ``if`` block or a loop names the value beforehand: every source writes one name
(:attr:`Values.forced`) and the readers read it (:attr:`Values.resolved`).

The inputs of every ``EndNode`` are read as one node, :data:`EXIT`: the flow's outputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from .agentspec import AgentSpecError
from .agentspec_paths import EXIT
from .agentspec_text import Component, describe, titles

Key = tuple[str, str]  # (node id, property title)


class Values:
    def __init__(self, flow: Component, start: Component, top: bool) -> None:
        self.top = top  # the flow imported, not one inside it: its outputs are read by nothing
        nodes = [n for n in flow.get("nodes") or [] if isinstance(n, dict)]
        self.by_id = {str(n["id"]): n for n in nodes}
        ends = [n for n in nodes if n.get("component_type") == "EndNode"]
        self.end = ends[0] if ends else {"component_type": "EndNode", "name": "end"}
        # each node's input properties by title, the first of each; the EndNodes' together, as EXIT's
        self.declared = {str(n["id"]): _first(n.get("inputs")) for n in nodes if n.get("component_type") != "EndNode"}
        self.declared[EXIT] = _first([p for e in ends for p in e.get("inputs") or []])
        self.outputs = list(dict.fromkeys(t for e in ends for t in titles(e.get("inputs") or e.get("outputs"))))
        edges = flow.get("data_flow_connections")
        self.by_name = not edges  # no data-flow edges: an input reads the outputs of its name
        self.incoming: dict[Key, list[Key]] = {}
        end_ids = {e.get("id") for e in ends}
        if edges:
            for edge in edges:
                if edge.get("component_type") != "DataFlowEdge":
                    raise AgentSpecError(f"{describe(edge)} is not supported as a data-flow connection")
                dest = edge["destination_node"]["id"]
                key = (EXIT if dest in end_ids else dest, str(edge["destination_input"]))
                self.incoming.setdefault(key, []).append((edge["source_node"]["id"], str(edge["source_output"])))
        else:
            named: dict[str, list[Key]] = {}
            for node in nodes:
                props = [*(node.get("outputs") or [])]
                if node.get("id") == start.get("id"):
                    props += node.get("inputs") or []
                for title in dict.fromkeys(titles(props)):
                    named.setdefault(title, []).append((node["id"], title))
            for dest, inputs in self.declared.items():
                for title in inputs:
                    self.incoming[(str(dest), str(title))] = named.get(str(title), [])
            for title in self.outputs:
                self.incoming.setdefault((EXIT, title), named.get(title, []))
        self.readers: dict[str, list[Key]] = {}  # each node: the inputs it is a source of
        for dest, sources in self.incoming.items():
            for ident in dict.fromkeys(s[0] for s in sources):
                self.readers.setdefault(ident, []).append(dest)
        self.produced: dict[Key, tuple[int, str]] = {}  # each output written: when, and its DSL name
        self._clock = itertools.count()
        self.forced: dict[Key, str] = {}  # outputs that must be written under a name chosen beforehand
        self.resolved: dict[Key, str] = {}  # inputs whose DSL name was chosen beforehand
        self.wanted: dict[Key, str] = {}  # inputs read after the blocks being written: the name each will read
        self.carried: set[Key] = set()  # inputs that read a loop's carried name, whatever block gives it
        self.done: set[str] = set()  # the nodes written so far

    def produce(self, key: Key, name: str) -> None:
        self.produced[key] = (next(self._clock), name)

    def again(self, nodes: Iterable[str]) -> None:
        """The values ``nodes`` gave, written last (a loop's last round leaves right after its body)."""
        for ident in nodes:
            for key in [k for k in self.produced if k[0] == ident]:
                self.produce(key, self.produced[key][1])

    def latest(self, sources: list[Key]) -> str | None:
        """The DSL name of the source written last, or None when none is written yet."""
        written = [self.produced[s] for s in sources if s in self.produced]
        return max(written)[1] if written else None

    def read(self, node: Component, title: str) -> str | None:
        """What ``node``'s input ``title`` reads; None when nothing gives it (its default may)."""
        key = (node.get("id"), title)
        if key in self.resolved:
            return self.resolved[key]
        sources = self.incoming.get(key, [])  # type: ignore[arg-type]
        name = self.latest(sources)
        if name is None and sources and not self.by_name:
            raise AgentSpecError(f"{describe(node)} reads '{sources[0][1]}' from a node that has not run before it")
        return name

    def default(self, key: Key) -> tuple[bool, Any]:
        """The default of input ``key``: (whether it has one, its value)."""
        prop = self.declared.get(key[0], {}).get(key[1], {})
        return ("default" in prop), prop.get("default")

    def component(self, node: str) -> Component:
        return self.end if node == EXIT else self.by_id[node]

    def reads_from(self, nodes: Iterable[str]) -> Iterator[tuple[Key, list[Key]]]:
        """Each input (the flow's outputs too) that one of ``nodes`` is a source of, and all its sources."""
        seen: set[Key] = set()
        for node in nodes:
            for dest in self.readers.get(node, []):
                if dest not in seen:
                    seen.add(dest)
                    yield dest, self.incoming[dest]

    def forced_for(self, node: Component) -> dict[str, str]:
        """The names chosen beforehand for ``node``'s outputs, by output title."""
        found = {}
        for title in titles([*(node.get("outputs") or []), *((node.get("tool") or {}).get("outputs") or [])]):
            if (node["id"], title) in self.forced:
                found[title] = self.forced[(node["id"], title)]
        return found


def _first(properties: Any) -> dict[Any, Any]:
    found: dict[Any, Any] = {}
    for p in properties or []:
        if isinstance(p, dict):
            found.setdefault(p.get("title"), p)
    return found


__all__ = ["Key", "Values"]
