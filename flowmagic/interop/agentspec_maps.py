"""Agent Spec's maps as flowmagic maps, ``[tool(x=x) for x in xs]``, run as their runtime runs them.

- ``ParallelMapNode`` (its inputs ``iterated_<name>``: a list is iterated, zipped with the other
  lists, another value passed whole to every element) runs its elements side by side;
- ``MapNode``, the same but sequential in Agent Spec, runs them one after another;
- WayFlow's ``ExtendedParallelMapNode`` and ``ExtendedMapNode`` (its ``MapStep``) iterate one
  list, ``iterated_input``, whose elements go to the inner inputs its ``unpack_input`` names
  (``.``, the whole element; of a dict, iterated by its items, ``._key`` and ``._value``); the
  second runs side by side only when its ``parallel_execution`` says so.

Where the runtime bounds the elements running at once (a sequential map: one; WayFlow's
``max_workers``, or the ``metadata.flowmagic.workers`` flowmagic's export writes), the map is the
one member of an unnamed group with that limit, ``parallel (workers=1):``. A subflow of one tool or
prompt is its call, inline; another is imported as a flow of its own (a subflow call, its value its
one output), called for each element. The step is named after the node's output
(``collected_summary``), or the step a flowmagic export wrote the node for
(``metadata.flowmagic.step``).
"""

from __future__ import annotations

from collections.abc import Callable
from keyword import iskeyword
from typing import TYPE_CHECKING

from .agentspec import AgentSpecError
from .agentspec_components import LLM_NODES, TOOL_NODES, WAYFLOW_MAPS
from .agentspec_renames import outside, reading
from .agentspec_text import Component, Group, Item, Line, Translated, describe, is_list_of, titles

if TYPE_CHECKING:
    from .agentspec_kinds import NodeKinds

ITERATED = "iterated_input"  # WayFlow's one list input
ITEM_QUERIES = ("._key", "._value")  # what WayFlow's unpack_input takes of the items of a dict it iterates


def map_workers(node: Component) -> int | None:
    """How many elements of the map run at once (None: no bound of its own)."""
    kind = node.get("component_type")
    if kind == "MapNode" or (kind == "ExtendedMapNode" and not node.get("parallel_execution")):
        return 1
    workers = node.get("max_workers")
    if workers is None:
        workers = _flowmagic(node).get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise AgentSpecError(f"{describe(node)}: max_workers must be a whole number of at least 1, not {workers!r}")
    return workers


def translate_map(kinds: NodeKinds, node: Component, value: Callable[[str], str], decorators: str) -> Translated:
    wayflow = node.get("component_type") in WAYFLOW_MAPS
    sub = node.get("flow") if wayflow else node.get("subflow")
    if not isinstance(sub, dict) or not isinstance(sub.get("start_node"), dict):
        raise AgentSpecError(f"{describe(node)} has no subflow")
    for method in (node.get("reducers") or {}).values():
        if method != "append":
            raise AgentSpecError(f"{describe(node)}: the '{method}' reducer is not supported, only 'append'")
    work = [n for n in sub.get("nodes") or [] if n.get("component_type") not in ("StartNode", "EndNode")]
    one_call = len(work) == 1 and work[0].get("component_type") in (*TOOL_NODES, *LLM_NODES)
    workers = map_workers(node)
    read = reading(node, value)
    start = sub["start_node"]
    inner = titles(start.get("inputs") or start.get("outputs"))
    loops: dict[str, str] = {}  # loop variable -> the DSL name of the list it runs over
    env: dict[str, str] = {}
    if wayflow:  # one list, "iterated_input"; unpack_input says which inner inputs get each element
        unpack = node.get("unpack_input") or {}
        over = read(ITERATED)
        queries = {title: unpack[title] for title in inner if title in unpack}
        for title, query in queries.items():
            if query not in (".", *ITEM_QUERIES) or (query == "." and set(queries.values()) & set(ITEM_QUERIES)):
                raise AgentSpecError(
                    f"{describe(node)}: unpack_input {title!r}: {query!r} is a query flowmagic does not run; "
                    "only '.' (the whole element), or '._key' and '._value' (of a dict's items) are supported"
                )
        parts = {q: kinds.names.new(t) for t, q in queries.items() if q in ITEM_QUERIES}
        if parts:  # a dict, iterated as WayFlow does: its items, {"_key": ..., "_value": ...}
            pair = [parts.get(q) or kinds.names.new(q.strip("._")) for q in ITEM_QUERIES]
            loops[", ".join(pair)] = f"{over}.items()"
        for title in inner:
            if title not in unpack:
                env[title] = read(title)
            elif unpack[title] in parts:
                env[title] = parts[unpack[title]]
            else:
                env[title] = loop = next(iter(loops), None) or kinds.names.new(title)
                loops[loop] = over
    else:  # inputs "iterated_<name>"; lists are iterated (zipped), other values passed whole
        outer = {title: read(f"iterated_{title}") for title in inner}
        inner_props = {p.get("title"): p for p in start.get("inputs") or []}
        iterated = [t for t in inner if is_list_of(kinds.schemas.get(outer[t], {}), inner_props.get(t, {}))]
        if not iterated and len(inner) == 1:  # untyped: the one input must be the list
            iterated = inner
        for title in inner:
            if title in iterated:
                env[title] = loop = kinds.names.new(title)
                loops[loop] = outer[title]
            else:
                env[title] = outer[title]
    if not loops:
        raise AgentSpecError(f"{describe(node)}: none of its inputs is a list to iterate over")
    if one_call:
        body, outs = kinds.flow(sub, env)
        if len(body) != 1 or not isinstance(body[0], Line) or len(outs) != 1:
            raise AgentSpecError(f"{describe(node)}: flowmagic imports maps with one output")
        element_name, expr = body[0].text.split(" = ", 1)
        kinds.names.used.discard(element_name)
        ((inner_title, _),) = outs.items()
        decorators = decorators or body[0].decorators
    else:  # the subflow, a flow of its own, called for each element
        inner_title, expr = _subflow_call(kinds, node, sub, env)
    title = outside(node, "output_mapping", inner_title if wayflow else f"collected_{inner_title}")
    step = _flowmagic(node).get("step")
    name = kinds.forced.pop(title, None) or kinds.names.new(step if isinstance(step, str) and step else title)
    source = next(iter(loops.values())) if len(loops) == 1 else f"zip({', '.join(loops.values())})"
    line = Line(f"{name} = [{expr} for {', '.join(loops)} in {source}]", decorators)
    items: list[Item] = [line] if workers is None else [Group(None, workers, [(name, [line])])]
    return Translated(items, {title: name})


def _subflow_call(kinds: NodeKinds, node: Component, sub: Component, env: dict[str, str]) -> tuple[str, str]:
    """The title of the subflow's one output, and the call of the subflow, imported as a flow of its own
    (its inputs named as in the file) whose value is that output."""
    from ..flow.flow import Flow
    from .agentspec_import import translate

    outputs = list(dict.fromkeys(t for n in sub.get("nodes") or [] if n.get("component_type") == "EndNode"
                                 for t in titles(n.get("inputs") or n.get("outputs"))))  # fmt: skip
    if len(outputs) != 1:
        raise AgentSpecError(f"{describe(node)}: flowmagic imports maps with one output")
    source, namespace, title = translate(sub, kinds.tools, kinds.model)
    flow = Flow.from_source(source, name=kinds.names.new(title), namespace=namespace, model=kinds.model)
    if flow.final_steps != (outputs[0],) or any(not t.isidentifier() or iskeyword(t) for t in env):
        raise AgentSpecError(
            f"{describe(node)}: its subflow must give one value, its output '{outputs[0]}', and name its "
            f"inputs as Python does (it gives {', '.join(flow.final_steps)})"
        )
    kinds.namespace[flow.name] = flow
    return outputs[0], f"{flow.name}({', '.join(f'{t}={v}' for t, v in env.items() if t in flow.inputs)})"


def _flowmagic(node: Component) -> dict[str, object]:
    metadata = node.get("metadata")
    ours = metadata.get("flowmagic") if isinstance(metadata, dict) else None
    return ours if isinstance(ours, dict) else {}


__all__ = ["map_workers", "translate_map"]
