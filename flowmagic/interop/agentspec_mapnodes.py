"""A map step, ``[f(x) for x in xs]``, as an Agent Spec map node, for the export.

The element (the call, once) runs in a subflow whose inputs are the loop variable and the
other values it reads. Which node runs it depends on how many elements may run at once: the
least ``workers`` of the ``parallel (workers=N)`` groups around the step, none without one.

- no bound: a ``ParallelMapNode`` (elements side by side), inputs ``iterated_<name>``;
- one at a time: a ``MapNode``, which Agent Spec runs sequentially;
- N at a time: WayFlow's ``ExtendedParallelMapNode`` with ``max_workers=N``, its one list input
  ``iterated_input`` whose elements go to the loop variable (``unpack_input``); Agent Spec has
  no bound of its own, and a runtime without WayFlow's plugin does not read this node.

The Agent Spec map nodes name their output ``collected_<name>``; ``metadata.flowmagic.step``
keeps the step's name for flowmagic's import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .agentspec_graph import Component, Graph, named
from .agentspec_nodes import Schema, plain
from .agentspec_types import loop_schema

if TYPE_CHECKING:
    from ..flow.flow import Flow
    from .agentspec_export import _Exporter

#: WayFlow's plugin of extended nodes, as WayFlow names it in the components it writes.
WAYFLOW_PLUGIN = {"component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"}


def workers_of(flow: Flow, step: str) -> int | None:
    """The least ``workers`` of the groups around ``step`` (None: no group around it bounds it)."""
    found: list[int] = []
    group = flow.steps[step].group
    while group is not None:
        bound = flow.groups[group].workers
        if bound:
            found.append(bound)
        group = flow.groups[group].parent
    return min(found) if found else None


def map_output(flow: Flow, step: str) -> str:
    """The output of the map node of ``step`` that holds the list: Agent Spec's ``collected_<name>``, or
    the name itself on WayFlow's node."""
    workers = workers_of(flow, step)
    return named(step) if workers is not None and workers > 1 else f"collected_{named(step)}"


def extended(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of a WayFlow extended node: no renames, and the plugin that reads it."""
    return {**fields, "input_mapping": {}, "output_mapping": {}, **WAYFLOW_PLUGIN}


def map_component(exporter: _Exporter, name: str) -> tuple[Component, list[tuple[str, str]]]:
    """The map node of step ``name``, and what it reads: (input title, value name)."""
    node = exporter.nodes[name]
    loop, out = str(node.loop), named(name)
    inner = [loop, *dict.fromkeys(v for v in node.args.values() if v != loop)]
    schemas = {v: loop_schema(node, exporter.schemas) if v == loop else exporter.schemas[v] for v in inner}
    element = exporter.call_component(name, node, f"{name} element", schemas)
    props_in = [{"title": v, **schemas[v]} for v in inner]
    item = exporter.element_schema(name)
    props_out = [{"title": out, **item}]
    start = exporter.component("StartNode", "start", inputs=props_in, outputs=props_in, branches=["next"])
    end = exporter.component("EndNode", "end", inputs=props_out, outputs=props_out, branches=[])
    graph = Graph([start])
    graph.data = [exporter.data_edge(start, node.args[t], element, t) for t, _ in node.inputs if t in node.args]
    graph.data.append(exporter.data_edge(element, out, end, out))
    exporter.add(graph, element, [(start, None)])
    exporter.add(graph, end, [(element, None)])
    subflow = exporter.flow_component(f"{name} element", props_in, props_out, graph)
    workers = workers_of(exporter.flow, name)
    if workers is not None and workers > 1:
        fields = {
            "inputs": [*props_in[1:], {"title": "iterated_input", **array(props_in[0])}],
            "outputs": [{"title": out, **array(item)}],
            "branches": ["next"],
            "flow": subflow,
            "unpack_input": {loop: "."},
            "max_workers": workers,
        }
        component = exporter.component("ExtendedParallelMapNode", name, **extended(fields))
        reads = [("iterated_input", str(node.over))] + [(v, v) for v in inner[1:]]
        return component, reads
    component = exporter.component(
        "MapNode" if workers == 1 else "ParallelMapNode",
        name,
        inputs=[{"title": f"iterated_{p['title']}", "anyOf": [plain(p), array(p)]} for p in props_in],
        outputs=[{"title": f"collected_{out}", **array(item)}],
        branches=["next"],
        subflow=subflow,
        reducers={out: "append"},
    )
    component["metadata"] = {"flowmagic": {"step": out}}
    reads = [(f"iterated_{loop}", str(node.over))] + [(f"iterated_{v}", v) for v in inner[1:]]
    return component, reads


def array(schema: Schema) -> Schema:
    return {"type": "array", "items": plain(schema)}


__all__ = ["WAYFLOW_PLUGIN", "array", "extended", "map_component", "map_output", "workers_of"]
