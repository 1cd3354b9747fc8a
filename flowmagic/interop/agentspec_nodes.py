"""What one step of a flowmagic flow becomes in Agent Spec (a :class:`Node`, before it is a component).

- ``f(a, b=c)``, a call of a function with names as arguments: a ``ToolNode`` whose
  ``ServerTool`` is named after the function, with the function's parameters as
  inputs and the step as output, typed from the type hints;
- ``llm("... {x} ...", model=, system=, temperature=, max_tokens=)``: an ``LlmNode`` with an
  OpenAI (or, when ``OPENAI_BASE_URL`` is set, OpenAI-compatible) configuration and
  no API key, ever; an LlmNode has one prompt, so a system prompt heads its template, kept
  in ``metadata.flowmagic.system`` too for flowmagic's import to split it off again;
- ``[f(x) for x in xs]`` or ``[llm("...{x}...") for x in xs]``: a map node (see
  ``agentspec_mapnodes``); a map over ``range(N)`` or a literal list iterates over an input of
  the flow whose default is that list (``i_values`` for ``for i in range(5)``);
- ``cats = research(question="cats")``, a call of another flow: a ``FlowNode`` (built
  by the exporter, which exports the called flow as its subflow);
- an ``if`` block's condition: a ``BranchingNode`` (see ``agentspec_blocks``), and a
  name's value after the block (a join) no node at all: the arms' nodes give it;
- ``b = a``, a copy (an import writes them): no node; what reads ``b`` reads what gives ``a``;
- a ``for`` loop: its body's nodes and a ``BranchingNode`` that goes back to them (laid
  out by the exporter, see ``agentspec_loops``), and a name's value after it no node;
- anything else (an expression that is not such a call, ``schema=``, a map over another
  expression, a loop of another form...) is an :class:`AgentSpecError` naming the step.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import string
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import TypeAdapter

from ..dsl.lines import split_lines
from ..dsl.names import is_llm_call
from ..flow.calls import calls
from ..llm.registry import DEFAULT_OPENAI_MODEL, OFFLINE_MODEL
from ..llm.secrets import safe_url
from .agentspec import AgentSpecError
from .agentspec_blocks import Block, Nesting, Refused, block

if typing.TYPE_CHECKING:
    from ..flow.flow import Flow
    from ..flow.model import Step

Schema = dict[str, Any]
STRING: Schema = {"type": "string"}


@dataclass
class Node:
    """What one step becomes: a tool call, a prompt or a subflow, maybe mapped over a list; or a
    block's condition (``branch``) or a name's value after it (``join``)."""

    kind: str  # "tool" | "llm" | "flow" | "branch" | "join" | "loop" | "pick" | "copy"
    inputs: list[tuple[str, Schema]]  # the node's input properties (title, schema), in order
    args: dict[str, str]  # input title -> the value it reads (a step, an input, or the loop variable)
    tool: dict[str, Any] | None = None  # the ServerTool, without its output
    output: Schema | None = None  # from the return type hint (a subflow: its result's type)
    prompt: str | None = None
    system: str | None = None  # a prompt's system prompt, in Agent Spec's template syntax
    llm_config: dict[str, Any] | None = None
    over: str | None = None  # a map: the value it iterates over
    loop: str | None = None  # a map: the loop variable
    subflow: dict[str, Any] | None = None  # a subflow: the called flow's document
    result: str | None = None  # a subflow: the output of that flow that is the step's value


class StepNodes:
    """The node of each step of ``flow`` (:attr:`nodes`); :meth:`flow_node` makes a subflow's."""

    def __init__(self, flow: Flow, namespace: Mapping[str, Any]) -> None:
        self.flow = flow
        self.namespace = namespace
        self.lines = split_lines(flow.source)
        self.nesting = Nesting(flow.compiled)
        self.blocks: dict[str, Block] = {}
        self.subflows: dict[str, Flow] = dict(calls(flow.compiled, namespace))
        self.enclosing: tuple[StepNodes, Step] | None = None  # a loop's body: the loop's flow and step
        self.literals: dict[str, list[Any]] = {}  # inputs made for the lists maps iterate over: their defaults

    def nodes_of_steps(self) -> dict[str, Node]:
        return {name: self.node(step) for name, step in self.flow.steps.items()}

    def error(self, step: Step, why: str, text: str | None = None) -> AgentSpecError:
        """An error naming ``step`` (and, for a step inside an ``if`` block or a loop, the block or the loop)."""
        if text is None:
            text = self.lines[step.line - 1].strip() if 0 < step.line <= len(self.lines) else step.source
        where = f"step '{step.name}' (line {step.line})"
        cond = self.nesting.parent.get(step.name) if step.name in self.nesting.arm_step else None
        if cond is not None:
            label = next(lb for lb, steps in self.flow.compiled.arms[cond] if step.name in steps)
            why = f"in its arm '{label}', {where} cannot: {why}"
            where = f"step '{cond}' (line {self.flow.steps[cond].line})"
        if self.enclosing is not None:
            outer, loop = self.enclosing
            return outer.error(loop, f"in its body, {where} cannot: {why}", text)
        return AgentSpecError(f"{where} cannot be exported to Agent Spec: {why}\n    {text}")

    def node(self, step: Step) -> Node:
        compiled = self.flow.compiled
        if step.kind == "loop":
            return self.loop_node(step)
        if step.name in compiled.picks:
            return Node("pick", [], {})
        if step.kind == "if":
            try:
                self.blocks[step.name] = found = block(compiled, step.name)
            except Refused as exc:
                raise self.error(step, str(exc)) from None
            return Node("branch", [(found.key, dict(STRING))], {found.key: compiled.code[step.name].unit_of(found.key)})
        if step.kind == "join":
            return Node("join", [], {})
        try:
            expr = ast.parse(step.source.strip(), mode="eval").body
        except SyntaxError:  # pragma: no cover - the source was parsed once already
            raise self.error(step, "its expression does not parse on its own") from None
        if step.name in self.subflows:
            node = self.flow_node(step, expr, self.subflows[step.name])
        elif isinstance(expr, ast.ListComp):
            node = self.map_node(step, expr)
        else:
            node = self.call_node(step, expr)
        code = compiled.code[step.name]
        node.args = {t: v if v == node.loop else code.unit_of(v) for t, v in node.args.items()}
        node.over = code.unit_of(node.over) if node.over else None
        for read in [*node.args.values(), *filter(None, [node.over])]:
            if read in self.flow.groups and read not in self.flow.steps:
                raise self.error(
                    step, f"it reads group '{read}' as a dict; Agent Spec passes single values: read its members"
                )
        return node

    def flow_node(self, step: Step, expr: ast.expr, callee: Flow) -> Node:  # pragma: no cover - the exporter's
        raise NotImplementedError

    def loop_node(self, step: Step) -> Node:  # pragma: no cover - the exporter's
        raise NotImplementedError

    def map_node(self, step: Step, comp: ast.ListComp) -> Node:
        gen = comp.generators[0]
        if len(comp.generators) != 1 or gen.ifs or gen.is_async:
            raise self.error(step, "a map becomes a ParallelMapNode: one 'for', no 'if'")
        if not isinstance(gen.target, ast.Name):
            raise self.error(step, "a map becomes a ParallelMapNode: loop over one name, e.g. 'for x in xs'")
        node = self.call_node(step, comp.elt)
        node.over, node.loop = self.iterated(step, gen.iter, gen.target.id), gen.target.id
        return node

    def iterated(self, step: Step, over: ast.expr, loop: str) -> str:
        """The name of the value a map iterates over: a name, or an input made for a literal list or range."""
        if isinstance(over, ast.Name):
            return over.id
        values = literal_list(over)
        if values is None:
            raise self.error(
                step,
                f"a ParallelMapNode iterates over a value: make '{ast.unparse(over)}' a step or an input "
                "(or a literal list or range(N), which becomes an input with that default)",
            )
        if len(values) > MAX_LITERAL:
            why = f"'{ast.unparse(over)}' has more than {MAX_LITERAL:,} elements to write as an input's default"
            raise self.error(step, why)
        taken = self.taken()
        name, n = f"{loop}_values", 1
        while name in taken:
            n += 1
            name = f"{loop}_values_{n}"
        self.literals[name] = values
        return name

    def taken(self) -> set[str]:
        """The names the flow (and a loop's enclosing flows) uses, and its namespace's."""
        flow = self.flow
        names = {*flow.steps, *flow.groups, *flow.inputs, *self.namespace, *self.literals}
        return names | (self.enclosing[0].taken() if self.enclosing is not None else set())

    def call_node(self, step: Step, expr: ast.expr) -> Node:
        if isinstance(expr, ast.Name) and step.kind == "call":  # a copy, as an import writes: no node of its own
            return Node("copy", [("value", {})], {"value": expr.id})
        if is_llm_call(expr):
            assert isinstance(expr, ast.Call)
            return self.llm_node(step, expr)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
            return self.tool_node(step, expr)
        raise self.error(
            step,
            "Agent Spec runs tools and prompts, not Python expressions: "
            "make it a call of a function, f(a, b), with names as arguments",
        )

    def tool_node(self, step: Step, call: ast.Call) -> Node:
        assert isinstance(call.func, ast.Name)
        name = call.func.id
        fn = self.namespace.get(name)
        if fn is None or not callable(fn):
            raise self.error(step, f"no function '{name}' is known here to read its parameters from")
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            raise self.error(step, f"the parameters of '{name}' cannot be read") from None
        for a in [*call.args, *(k.value for k in call.keywords)]:
            if not isinstance(a, ast.Name):
                raise self.error(
                    step, f"argument '{ast.unparse(a)}' is not a name: Agent Spec passes values between nodes by name"
                )
        if any(k.arg is None for k in call.keywords):
            raise self.error(step, "**kwargs cannot be passed to a tool")
        try:
            bound = signature.bind(
                *(a.id for a in call.args if isinstance(a, ast.Name)),
                **{k.arg: k.value.id for k in call.keywords if k.arg and isinstance(k.value, ast.Name)},
            )
        except TypeError as exc:
            raise self.error(step, f"{name}(...) does not match its signature: {exc}") from None
        types = hints(fn)
        inputs: list[tuple[str, Schema]] = []
        args: dict[str, str] = {}
        for pname, param in signature.parameters.items():
            schema = schema_of(types.get(pname, param.annotation))
            if pname in bound.arguments:
                if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                    raise self.error(step, f"parameter '{pname}' of '{name}' cannot be passed by name")
                inputs.append((pname, schema))
                args[pname] = bound.arguments[pname]
            elif param.default is not param.empty and is_json(param.default):
                inputs.append((pname, {**schema, "default": param.default}))
        doc = inspect.getdoc(fn) or ""
        tool = {
            "name": name,
            "description": doc.split("\n\n")[0].strip() or None,
        }
        returns = types.get("return", signature.return_annotation)
        output = None if returns is inspect.Signature.empty else schema_of(returns)
        return Node("tool", inputs, args, tool=tool, output=output or None)

    def llm_node(self, step: Step, call: ast.Call) -> Node:
        template = call.args[0] if call.args else None
        if not (isinstance(template, ast.Constant) and isinstance(template.value, str)):
            raise self.error(step, "an LlmNode needs the prompt as a literal string")
        settings: dict[str, Any] = {}
        for kw in call.keywords:
            if kw.arg == "schema":
                raise self.error(step, "llm(schema=...) has no Agent Spec equivalent (an LlmNode gives text)")
            try:
                settings[str(kw.arg)] = ast.literal_eval(kw.value)
            except ValueError:
                raise self.error(step, f"llm({kw.arg}=...) must be a literal value to be exported") from None
        system, names = None, list[str]()
        if settings.get("system") is not None:
            if not isinstance(settings["system"], str):
                raise self.error(step, "llm(system=...) must be a literal string to be exported")
            system, names = self.prompt(step, settings["system"])
        prompt, read = self.prompt(step, template.value)
        names = list(dict.fromkeys([*names, *read]))
        temperature = settings.get("temperature", step.options.temperature)
        if temperature is None:
            temperature = self.flow.settings.temperature
        config = llm_config(settings.get("model") or self.flow.settings.model, temperature, settings.get("max_tokens"))
        inputs = [(n, dict(STRING)) for n in names]
        return Node("llm", inputs, {n: n for n in names}, prompt=prompt, system=system, llm_config=config)

    def prompt(self, step: Step, template: str) -> tuple[str, list[str]]:
        """A flowmagic template in Agent Spec's ``{{name}}`` syntax, and the names it reads."""
        out: list[str] = []
        names: dict[str, None] = {}
        for literal, fieldname, spec, conversion in string.Formatter().parse(template):
            if any(mark in literal for mark in ("{{", "}}", "{%", "{#")):
                raise self.error(step, f"the prompt's text {literal!r} would read as a template tag in Agent Spec")
            out.append(literal)
            if fieldname is None:
                continue
            if spec or conversion or not fieldname.isidentifier():
                raise self.error(
                    step, f"placeholder {{{fieldname}}}: Agent Spec prompts take plain names, such as {{title}}"
                )
            names[fieldname] = None
            out.append("{{" + fieldname + "}}")
        return "".join(out), list(names)


#: The most elements of a literal list or range a map's input default holds.
MAX_LITERAL = 10_000


def literal_list(expr: ast.expr) -> list[Any] | None:
    """The values of ``range(...)`` of whole numbers, or of a literal list or tuple of JSON values; else None."""
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "range":
        bounds = [a.value for a in expr.args if isinstance(a, ast.Constant) and type(a.value) is int]
        if expr.keywords or len(bounds) != len(expr.args) or not 1 <= len(bounds) <= 3 or 0 in bounds[2:]:
            return None
        span = range(*bounds)
        return list(span) if len(span) <= MAX_LITERAL else list(span[: MAX_LITERAL + 1])
    if not isinstance(expr, (ast.List, ast.Tuple)):
        return None
    try:
        values = ast.literal_eval(expr)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return list(values) if is_json(list(values)) else None


def element_schema(values: list[Any]) -> Schema:
    """The type of every element of a literal list (``{}`` when they differ, or are not scalars)."""
    for kind, types in (("boolean", (bool,)), ("integer", (int,)), ("number", (int, float)), ("string", (str,))):
        if values and all(isinstance(v, types) and (kind == "boolean" or not isinstance(v, bool)) for v in values):
            return {"type": kind}
    return {}


def llm_config(model: str | None, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
    """An OpenAI configuration, or an OpenAI-compatible one for ``OPENAI_BASE_URL``; never a key."""
    model = model or os.environ.get("FLOWMAGIC_MODEL", "").strip() or DEFAULT_OPENAI_MODEL
    if model == OFFLINE_MODEL:  # the embedded model means nothing elsewhere
        model = DEFAULT_OPENAI_MODEL
    generation = {k: v for k, v in (("temperature", temperature), ("max_tokens", max_tokens)) if v is not None}
    config: dict[str, Any] = {
        "component_type": "OpenAiConfig",
        "name": model,
        "model_id": model,
        "default_generation_parameters": generation or None,
    }
    url = os.environ.get("OPENAI_BASE_URL", "").strip()
    if url:
        # never a user or password written in the URL, nor its query values (a key, a signature...)
        parts = urlsplit(safe_url(url))
        host = parts.netloc.rpartition("@")[2]
        config.update(component_type="OpenAiCompatibleConfig", url=urlunsplit(parts._replace(netloc=host)))
    return config


def hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        return dict(getattr(fn, "__annotations__", {}) or {})


def schema_of(hint: Any) -> Schema:
    """The JSON schema of a type hint; ``{}`` (any value) when there is none or it has none."""
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    try:
        schema = TypeAdapter(hint).json_schema()
    except Exception:  # not a type pydantic knows: any value
        return {}
    return plain(schema)


def plain(schema: Schema) -> Schema:
    return {k: v for k, v in schema.items() if k not in ("title", "default")}


def typed(schema: Schema) -> bool:
    return "type" in schema or "anyOf" in schema


def is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
