"""A call of another flow, ``cats = research(question="cats")``, as Agent Spec's ``FlowNode``.

The node's subflow is the called flow, exported as any flow is; its inputs are the values
the called flow reads, each given by the call: a name becomes a data edge, a literal the
input's default (as does a value the called flow finds in its own namespace, or a literal list one of its maps
iterates over, when the call does not give it). The step's value is the called flow's final step's value, so that flow
must have one final step: a dict of several is not a value Agent Spec passes.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .agentspec_blocks import Refused
from .agentspec_nodes import Node, Schema, is_json, plain

if TYPE_CHECKING:
    from ..flow.flow import Flow


class Exported(Protocol):
    """The export of the called flow (the exporter's)."""

    schemas: dict[str, Schema]
    literals: dict[str, list[Any]]  # inputs made for the lists its maps iterate over: their defaults

    def outputs(self) -> list[str]: ...

    def reads(self, steps: list[str]) -> list[str]: ...

    def flow_document(self) -> dict[str, Any]: ...


def subflow_node(call: ast.expr, callee: Flow, export: Callable[[], Exported]) -> Node:
    """The FlowNode of ``call``; :class:`Refused` when Agent Spec cannot express it."""
    sub = export()
    needed = sub.reads(list(callee.steps))
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not call.args):
        example = f"{callee.name}({', '.join(f'{n}=...' for n in needed)})"
        raise Refused(f"a subflow becomes a FlowNode: call it on its own, with its inputs by name: {example}")
    finals = sub.outputs()
    if len(finals) != 1:
        raise Refused(
            f"its value is a dict of the final steps of '{callee.name}' ({', '.join(finals) or 'none'}); "
            "a FlowNode gives them one by one: give the subflow one final step"
        )
    given = {kw.arg: kw.value for kw in call.keywords}
    if None in given:
        raise Refused("**kwargs cannot be passed to a subflow: name each input")
    unknown = [k for k in given if k not in needed]
    if unknown:
        raise Refused(f"'{callee.name}' reads no input '{unknown[0]}' (it reads {', '.join(needed) or 'none'})")
    names = callee._namespace or {}
    inputs: list[tuple[str, Schema]] = []
    args: dict[str, str] = {}
    for title in needed:
        schema = plain(sub.schemas.get(title, {}))
        value = given.get(title)
        if isinstance(value, ast.Name):
            args[title] = value.id
            inputs.append((title, schema))
            continue
        if value is not None:
            try:
                default = ast.literal_eval(value)
            except ValueError:
                raise Refused(f"input '{title}' must be a name or a literal value") from None
        elif title in sub.literals:  # a map's literal list: its own input, with that default
            default = sub.literals[title]
        elif title in names and not callable(names[title]) and is_json(names[title]):
            default = names[title]
        else:
            raise Refused(f"'{callee.name}' reads '{title}': pass it, {callee.name}({title}=...)")
        if not is_json(default):
            raise Refused(f"input '{title}' must be a value Agent Spec can write (JSON)")
        inputs.append((title, {**schema, "default": default}))
    output = plain(sub.schemas.get(finals[0], {}))
    return Node("flow", inputs, args, output=output, subflow=sub.flow_document(), result=finals[0])


__all__ = ["Exported", "subflow_node"]
