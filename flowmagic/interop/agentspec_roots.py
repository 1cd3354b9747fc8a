"""The flow an Agent Spec document stands for, and the errors that name what flowmagic does not import.

- a ``Flow`` or WayFlow's ``ExtendedFlow`` is the flow (of its context providers, constants only:
  what a node reads from one is that value);
- a single node (an ``LlmNode``, a ``ToolNode``...) is a flow of one step: a ``StartNode`` giving
  the node's inputs, the node, an ``EndNode`` taking its outputs;
- anything else is an :class:`AgentSpecError` naming it.

A document that refers to a component it does not define (a credential its runtime is given at
load time) and that uses a node flowmagic does not import is refused for the node, the first in
the document: that is what stands in the way, whatever the runtime would be given.
"""

from __future__ import annotations

from typing import Any

from .agentspec import AgentSpecError
from .agentspec_bounds import MAX_DOCUMENT_VALUES, MissingReference, resolve
from .agentspec_components import FLOWS, NODES, ROOT_NODES
from .agentspec_text import Component, describe, titles

CONSTANT_PROVIDER = "PluginConstantContextProvider"  # WayFlow's: a value a node may read, like an input


def root_flow(document: Component) -> Component:
    """The document's flow, references resolved (a single node made a flow of one step)."""
    try:
        root = resolve(document)
    except MissingReference:
        found = first_unsupported(document)
        if found is not None:
            raise unsupported(*found) from None
        raise
    kind = root.get("component_type")
    if kind in FLOWS:
        return check_flow(root)
    if kind in ROOT_NODES:
        return one_step(root)
    raise AgentSpecError(
        f"flowmagic imports Agent Spec flows, not a {kind!r} ('{root.get('name')}'), or one node as a flow of one step"
    )


def check_flow(flow: Component) -> Component:
    """``flow``, if it has nothing flowmagic does not run: of WayFlow's context providers, only constants
    (its state variables are read and written by nodes flowmagic does not import, which name themselves)."""
    for provider in flow.get("context_providers") or []:
        if not isinstance(provider, dict) or provider.get("component_type") != CONSTANT_PROVIDER:
            what = describe(provider) if isinstance(provider, dict) else repr(provider)
            raise AgentSpecError(
                f"{what} in flow '{flow.get('name')}' is not supported: flowmagic reads {CONSTANT_PROVIDER}s only"
            )
    return flow


def unsupported(node: Component, flow: Component | None) -> AgentSpecError:
    where = f" in flow '{flow.get('name')}'" if flow is not None else ""
    return AgentSpecError(f"{describe(node)}{where} is not supported: flowmagic imports {', '.join(NODES)}")


def first_unsupported(document: Component) -> tuple[Component, Component | None] | None:
    """The first node of the document (not resolved) that flowmagic does not import, and its flow."""
    stack: list[tuple[Any, Component | None]] = [(document, None)]
    seen: set[int] = set()
    while stack:
        value, flow = stack.pop()
        if id(value) in seen or len(seen) > MAX_DOCUMENT_VALUES:
            continue
        seen.add(id(value))
        if isinstance(value, list):
            stack.extend((item, flow) for item in reversed(value))
            continue
        if not isinstance(value, dict):
            continue
        kind = value.get("component_type")
        if isinstance(kind, str):
            if kind in FLOWS:
                flow = value
            elif kind.endswith("Node") and kind not in NODES:
                return value, flow
        stack.extend((item, flow) for item in reversed(list(value.values())) if isinstance(item, (dict, list)))
    return None


def one_step(node: Component) -> Component:
    """A flow that runs ``node`` once: its inputs are the flow's, its outputs the flow's."""
    ident = str(node.get("id"))
    inputs = [p for p in node.get("inputs") or [] if isinstance(p, dict)]
    outputs = [p for p in node.get("outputs") or (node.get("tool") or {}).get("outputs") or [] if isinstance(p, dict)]
    start = {"component_type": "StartNode", "id": f"{ident}/start", "name": "start", "inputs": inputs}
    end = {"component_type": "EndNode", "id": f"{ident}/end", "name": "end", "inputs": outputs, "outputs": outputs}

    def edge(source: Component, output: str, dest: Component, input_: str) -> Component:
        return {
            "component_type": "DataFlowEdge",
            "source_node": source,
            "source_output": output,
            "destination_node": dest,
            "destination_input": input_,
        }

    return {
        "component_type": "Flow",
        "id": f"{ident}/flow",
        "name": node.get("name"),
        "start_node": start,
        "nodes": [start, node, end],
        "control_flow_connections": [
            {"component_type": "ControlFlowEdge", "from_node": start, "to_node": node},
            {"component_type": "ControlFlowEdge", "from_node": node, "to_node": end},
        ],
        "data_flow_connections": [
            *(edge(start, t, node, t) for t in titles(inputs)),
            *(edge(node, t, end, t) for t in titles(outputs)),
        ],
    }


__all__ = ["check_flow", "first_unsupported", "one_step", "root_flow", "unsupported"]
