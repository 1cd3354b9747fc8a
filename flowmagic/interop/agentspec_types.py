"""One JSON schema per value of an exported flow, so the two ends of every data edge agree.

A step's value is typed from its function's return hint (a prompt's is a string); a value
nothing types that way (an input, an untyped function's result) takes the type its
readers want, a typed one before a string. A name after an ``if`` block is typed as its
arms' steps are, and they as it is; a copy (``b = a``) as what it copies.
"""

from __future__ import annotations

from collections.abc import Mapping

from .agentspec_nodes import STRING, Node, Schema, plain, typed


def value_schemas(
    nodes: Mapping[str, Node], steps: list[str], joins: Mapping[str, tuple[str, tuple[str, ...]]]
) -> dict[str, Schema]:
    """The schema of each step and of each value the steps read."""
    known: dict[str, Schema] = {}
    wanted: dict[str, list[Schema]] = {}
    loops: dict[str, Schema] = {}
    for name, node in nodes.items():
        element = node.output if node.kind in ("tool", "flow") else STRING if node.kind == "llm" else None
        if element is not None:
            known[name] = {"type": "array", "items": element} if node.over else dict(element)
        for title, schema in node.inputs:
            if title in node.args:
                read = node.args[title]
                if read == node.loop:
                    loops[name] = schema
                else:
                    wanted.setdefault(read, []).append(schema)
        if node.over:
            wanted.setdefault(node.over, []).append({"type": "array", "items": loops.get(name, {})})
    for name, (_, variants) in joins.items():  # a name after a block: typed as its arms' steps are
        found = next((known[v] for v in variants if v in known and typed(known[v])), None)
        if found is not None:
            known[name] = found
        for v in variants:
            wanted.setdefault(v, []).extend(wanted.get(name, []))
    schemas: dict[str, Schema] = {}
    for name in [*steps, *wanted]:
        if name in known:
            schemas[name] = known[name]
            continue
        typed_ = [s for s in wanted.get(name, []) if typed(s) and s.get("type") != "string"]
        strings = [s for s in wanted.get(name, []) if s.get("type") == "string"]
        schemas[name] = plain(typed_[0] if typed_ else strings[0] if strings else {})
    for name, (_, variants) in joins.items():
        schemas[name] = next((schemas[v] for v in variants if typed(schemas[v])), schemas[name])
    for name, node in nodes.items():  # a copy: typed as what it copies
        if node.kind == "copy" and typed(schemas.get(node.args["value"], {})):
            schemas[name] = schemas[node.args["value"]]
    return schemas


def loop_schema(node: Node, schemas: Mapping[str, Schema]) -> Schema:
    """The type of a map's loop variable: an element of what it iterates over."""
    over = schemas.get(str(node.over), {})
    if over.get("type") == "array" and "items" in over:
        return plain(over["items"])
    return next((plain(s) for t, s in node.inputs if node.args.get(t) == node.loop), {})


__all__ = ["loop_schema", "value_schemas"]
