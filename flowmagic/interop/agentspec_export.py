"""A flowmagic flow as an Agent Spec document (plain dicts).

What each step becomes:

- ``f(a, b=c)``, a call of a function with names as arguments: a ``ToolNode`` whose
  ``ServerTool`` is named after the function, with the function's parameters as
  inputs and the step as output, typed from the type hints;
- ``llm("... {x} ...", model=, temperature=, max_tokens=)``: an ``LlmNode`` with an
  OpenAI (or, when ``OPENAI_BASE_URL`` is set, OpenAI-compatible) configuration and
  no API key, ever;
- ``[f(x) for x in xs]`` or ``[llm("...{x}...") for x in xs]``: a ``ParallelMapNode``;
- anything else (an expression that is not such a call, ``system=``, ``schema=``,
  a map over an expression...) is an :class:`AgentSpecError` naming the step.

Agent Spec runs nodes one after another and allows parallelism only inside a
``ParallelFlowNode``, so the DAG is cut into stages (:func:`stages`): independent
parts become the subflows of a parallel node, dependent parts a sequence. Where
the DAG has no exact such shape (an "N": a->c, b->c, b->d), a stage waits for a
little more than it needs; no dependency is ever lost.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import os
import string
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union
from urllib.parse import urlsplit, urlunsplit

from pydantic import TypeAdapter

from ..dsl.lines import split_lines
from ..dsl.names import is_llm_call
from ..flow.model import StepOptions
from ..llm.registry import DEFAULT_OPENAI_MODEL, OFFLINE_MODEL
from ..llm.secrets import safe_url
from .agentspec import AGENTSPEC_VERSION, AgentSpecError

if typing.TYPE_CHECKING:
    from ..flow.flow import Flow
    from ..flow.model import Step

Schema = dict[str, Any]
_STRING: Schema = {"type": "string"}


@dataclass
class _Node:
    """What one step becomes: a tool call or a prompt, maybe mapped over a list."""

    kind: str  # "tool" | "llm"
    inputs: list[tuple[str, Schema]]  # the node's input properties (title, schema), in order
    args: dict[str, str]  # input title -> the name it reads (a value, or the loop variable)
    tool: dict[str, Any] | None = None  # the ServerTool, without its output
    output: Schema | None = None  # from the return type hint
    prompt: str | None = None
    llm_config: dict[str, Any] | None = None
    over: str | None = None  # a map: the value it iterates over
    loop: str | None = None  # a map: the loop variable


@dataclass
class _Par:
    """Independent sequences that run side by side: a ``ParallelFlowNode``."""

    branches: list[list[Item]]


Item = Union[str, _Par]  # noqa: UP007 - a runtime alias, Python 3.10 too


def export(flow: Flow, namespace: Mapping[str, Any]) -> dict[str, Any]:
    return _Exporter(flow, namespace).document()


# -- the DAG as stages ------------------------------------------------------------------
SEARCH_LIMIT = 40  # larger parts are cut in the middle, without looking ahead (it would take too long)


def stages(order: list[str], deps: Mapping[str, tuple[str, ...]]) -> list[Item]:
    """Cut a DAG (``order`` topological) into a sequence of steps and parallel stages.

    Independent parts become branches of a parallel stage; a connected part is cut
    where everything after depends on everything before. A part with no such cut
    is cut between levels, choosing the cut that makes the fewest steps wait for
    steps they do not read, counted over the whole decomposition that follows
    (parts of more than ``SEARCH_LIMIT`` steps are cut in the middle).
    """
    return _Cutter(order, deps).cut(list(range(len(order))))[0]


class _Cutter:
    def __init__(self, order: list[str], deps: Mapping[str, tuple[str, ...]]) -> None:
        self.order = order
        index = {name: i for i, name in enumerate(order)}
        self.parents = [[index[d] for d in deps[name]] for name in order]
        self.anc: list[int] = []  # ancestors of each step, as bits
        for parents in self.parents:
            bits = 0
            for j in parents:
                bits |= self.anc[j] | (1 << j)
            self.anc.append(bits)
        self.memo: dict[int, tuple[list[Item], int]] = {}

    def cut(self, part: list[int]) -> tuple[list[Item], int]:
        """The stages of ``part`` (indices in topological order) and how many waits they add."""
        if len(part) == 1:
            return [self.order[part[0]]], 0
        mask = sum(1 << i for i in part)
        if mask in self.memo:
            return self.memo[mask]
        groups = self.components(part, mask)
        if len(groups) > 1:
            branches = [self.cut(g) for g in groups]
            result: tuple[list[Item], int] = ([_Par([b for b, _ in branches])], sum(w for _, w in branches))
        else:
            cuts = self.exact_cuts(part, mask)
            if cuts:
                pieces = [self.cut(part[a:b]) for a, b in zip([0, *cuts], [*cuts, len(part)], strict=True)]
                result = ([item for items, _ in pieces for item in items], sum(w for _, w in pieces))
            else:
                result = self.best_cut(part, mask)
        self.memo[mask] = result
        return result

    def components(self, part: list[int], mask: int) -> list[list[int]]:
        parent = {i: i for i in part}

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in part:
            for j in self.parents[i]:
                if mask >> j & 1:
                    parent[root(i)] = root(j)
        groups: dict[int, list[int]] = {}
        for i in part:
            groups.setdefault(root(i), []).append(i)
        return list(groups.values())

    def exact_cuts(self, part: list[int], mask: int) -> list[int]:
        """Positions k where every step from k on depends on every step before k."""
        after = [mask] * (len(part) + 1)
        for k in range(len(part) - 1, -1, -1):
            after[k] = after[k + 1] & self.anc[part[k]]
        cuts, before = [], 0
        for k in range(1, len(part)):
            before |= 1 << part[k - 1]
            if before & ~after[k] == 0:
                cuts.append(k)
        return cuts

    def waits(self, part: list[int], first: int) -> int:
        """How many (step, earlier step it does not read) pairs cutting ``part`` after ``first`` adds."""
        return sum((first & ~self.anc[i]).bit_count() for i in part if not first >> i & 1)

    def best_cut(self, part: list[int], mask: int) -> tuple[list[Item], int]:
        depth: dict[int, int] = {}
        for i in part:  # longest path from the part's first steps
            depth[i] = max((depth[j] + 1 for j in self.parents[i] if mask >> j & 1), default=0)
        height: dict[int, int] = dict.fromkeys(part, 0)
        for i in reversed(part):  # longest path to the part's last steps
            for j in self.parents[i]:
                if mask >> j & 1:
                    height[j] = max(height[j], height[i] + 1)
        depths, heights = range(1, max(depth.values()) + 1), range(1, max(height.values()) + 1)
        if len(part) > SEARCH_LIMIT:  # large: only the middle cuts, so the parts halve at each level
            depths, heights = depths[len(depths) // 2 :][:1], heights[len(heights) // 2 :][:1]
        candidates = {sum(1 << i for i in part if depth[i] < k) for k in depths}
        candidates |= {sum(1 << i for i in part if height[i] >= h) for h in heights}
        candidates.discard(0)
        candidates.discard(mask)
        best: tuple[int, list[Item]] | None = None
        for first in sorted(candidates, key=lambda c: (self.waits(part, c), -c.bit_count())):
            waits = self.waits(part, first)
            if best is not None and waits >= best[0]:
                continue
            head = [i for i in part if first >> i & 1]
            tail = [i for i in part if not first >> i & 1]
            (a, wa), (b, wb) = self.cut(head), self.cut(tail)
            if best is None or waits + wa + wb < best[0]:
                best = (waits + wa + wb, a + b)
            if len(part) > SEARCH_LIMIT:  # large: the cheaper middle cut, without looking further ahead
                break
        assert best is not None
        return best[1], best[0]


# -- the document -----------------------------------------------------------------------
@dataclass
class _Ids:
    used: set[str] = field(default_factory=set)

    def new(self, base: str) -> str:
        ident, n = base, 1
        while ident in self.used:
            n += 1
            ident = f"{base}#{n}"
        self.used.add(ident)
        return ident


class _Exporter:
    def __init__(self, flow: Flow, namespace: Mapping[str, Any]) -> None:
        self.flow = flow
        self.namespace = namespace
        self.lines = split_lines(flow.source)
        self.ids = _Ids()
        self.nodes = {name: self.node(step) for name, step in flow.steps.items()}
        self.schemas = self.value_schemas()
        self.finals = set(flow.final_steps)
        self.readers: dict[str, set[str]] = {}
        for name in flow.steps:
            for value in self.reads([name]):
                self.readers.setdefault(value, set()).add(name)

    # -- steps ------------------------------------------------------------------------
    def error(self, step: Step, why: str) -> AgentSpecError:
        text = self.lines[step.line - 1].strip() if 0 < step.line <= len(self.lines) else step.source
        where = f"step '{step.name}' (line {step.line})"
        return AgentSpecError(f"{where} cannot be exported to Agent Spec: {why}\n    {text}")

    def node(self, step: Step) -> _Node:
        if step.kind == "loop" or step.name in self.flow.compiled.picks:
            raise self.error(step, "a 'for' loop has no Agent Spec form here yet (a branch back to an earlier node)")
        if step.kind in ("if", "join"):
            raise self.error(step, "an 'if' block has no Agent Spec form here yet (a BranchingNode)")
        try:
            expr = ast.parse(step.source.strip(), mode="eval").body
        except SyntaxError:  # pragma: no cover - the source was parsed once already
            raise self.error(step, "its expression does not parse on its own") from None
        node = self.map_node(step, expr) if isinstance(expr, ast.ListComp) else self.call_node(step, expr)
        for read in [*node.args.values(), *filter(None, [node.over])]:
            if read in self.flow.groups and read not in self.flow.steps:
                raise self.error(
                    step, f"it reads group '{read}' as a dict; Agent Spec passes single values: read its members"
                )
        return node

    def map_node(self, step: Step, comp: ast.ListComp) -> _Node:
        gen = comp.generators[0]
        if len(comp.generators) != 1 or gen.ifs or gen.is_async:
            raise self.error(step, "a map becomes a ParallelMapNode: one 'for', no 'if'")
        if not isinstance(gen.target, ast.Name):
            raise self.error(step, "a map becomes a ParallelMapNode: loop over one name, e.g. 'for x in xs'")
        if not isinstance(gen.iter, ast.Name):
            raise self.error(
                step, f"a ParallelMapNode iterates over a value: make '{ast.unparse(gen.iter)}' a step or an input"
            )
        node = self.call_node(step, comp.elt)
        node.over, node.loop = gen.iter.id, gen.target.id
        return node

    def call_node(self, step: Step, expr: ast.expr) -> _Node:
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

    def tool_node(self, step: Step, call: ast.Call) -> _Node:
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
        hints = _hints(fn)
        inputs: list[tuple[str, Schema]] = []
        args: dict[str, str] = {}
        for pname, param in signature.parameters.items():
            schema = _schema(hints.get(pname, param.annotation))
            if pname in bound.arguments:
                if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                    raise self.error(step, f"parameter '{pname}' of '{name}' cannot be passed by name")
                inputs.append((pname, schema))
                args[pname] = bound.arguments[pname]
            elif param.default is not param.empty and _is_json(param.default):
                inputs.append((pname, {**schema, "default": param.default}))
        doc = inspect.getdoc(fn) or ""
        tool = {
            "name": name,
            "description": doc.split("\n\n")[0].strip() or None,
        }
        returns = hints.get("return", signature.return_annotation)
        output = None if returns is inspect.Signature.empty else _schema(returns)
        return _Node("tool", inputs, args, tool=tool, output=output or None)

    def llm_node(self, step: Step, call: ast.Call) -> _Node:
        template = call.args[0] if call.args else None
        if not (isinstance(template, ast.Constant) and isinstance(template.value, str)):
            raise self.error(step, "an LlmNode needs the prompt as a literal string")
        settings: dict[str, Any] = {}
        for kw in call.keywords:
            if kw.arg in ("system", "schema"):
                raise self.error(step, f"llm({kw.arg}=...) has no Agent Spec equivalent (an LlmNode has one prompt)")
            try:
                settings[str(kw.arg)] = ast.literal_eval(kw.value)
            except ValueError:
                raise self.error(step, f"llm({kw.arg}=...) must be a literal value to be exported") from None
        prompt, names = self.prompt(step, template.value)
        temperature = settings.get("temperature", step.options.temperature)
        if temperature is None:
            temperature = self.flow.settings.temperature
        config = _llm_config(settings.get("model") or self.flow.settings.model, temperature, settings.get("max_tokens"))
        inputs = [(n, dict(_STRING)) for n in names]
        return _Node("llm", inputs, {n: n for n in names}, prompt=prompt, llm_config=config)

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

    # -- value types ----------------------------------------------------------------------
    def value_schemas(self) -> dict[str, Schema]:
        """One JSON schema per value (step or input), so every edge's two ends agree."""
        known: dict[str, Schema] = {}
        wanted: dict[str, list[Schema]] = {}
        loops: dict[str, Schema] = {}
        for name, node in self.nodes.items():
            element = node.output if node.kind == "tool" else dict(_STRING)
            if element is not None:
                known[name] = {"type": "array", "items": element} if node.over else element
            for title, schema in node.inputs:
                if title in node.args:
                    read = node.args[title]
                    if read == node.loop:
                        loops[name] = schema
                    else:
                        wanted.setdefault(read, []).append(schema)
            if node.over:
                wanted.setdefault(node.over, []).append({"type": "array", "items": loops.get(name, {})})
        schemas: dict[str, Schema] = {}
        for name in [*self.flow.steps, *wanted]:
            if name in known:
                schemas[name] = known[name]
                continue
            typed = [s for s in wanted.get(name, []) if _typed(s) and s.get("type") != "string"]
            strings = [s for s in wanted.get(name, []) if s.get("type") == "string"]
            schemas[name] = _plain(typed[0] if typed else strings[0] if strings else {})
        return schemas

    def loop_schema(self, node: _Node) -> Schema:
        over = self.schemas.get(str(node.over), {})
        if over.get("type") == "array" and "items" in over:
            return _plain(over["items"])
        return next((_plain(s) for t, s in node.inputs if node.args.get(t) == node.loop), {})

    # -- the document ---------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        order = self.flow.compiled.order
        deps = {n: self.flow.steps[n].deps for n in order}
        seq = stages(order, deps) if order else []
        inputs = self.reads(list(self.flow.steps))
        outputs = [n for n in self.flow.steps if n in self.finals]
        doc = self.flow_dict(self.flow.name, seq, inputs, outputs)
        doc["agentspec_version"] = AGENTSPEC_VERSION
        return doc

    def reads(self, steps: list[str]) -> list[str]:
        """The values steps read that they do not produce, in the order first read."""
        mine = set(steps)
        found: dict[str, None] = {}
        for s in sorted(steps, key=lambda n: self.flow.steps[n].index):
            node = self.nodes[s]
            for read in [*(node.args[t] for t, _ in node.inputs if t in node.args), *filter(None, [node.over])]:
                if read != node.loop and read not in mine:
                    found[read] = None
        return list(found)

    def flow_dict(self, name: str, seq: list[Item], inputs: list[str], outputs: list[str]) -> dict[str, Any]:
        props_in = [self.prop(v) for v in inputs]
        props_out = [self.prop(v) for v in outputs]
        start = self.component("StartNode", "start", inputs=props_in, outputs=props_in, branches=["next"])
        producer: dict[str, tuple[dict[str, Any], str]] = {v: (start, v) for v in inputs}
        nodes = [start]
        edges: list[dict[str, Any]] = []
        for item in seq:
            if isinstance(item, str):
                node, reads = self.step_component(item)
                produced = {item: f"collected_{item}" if self.nodes[item].over else item}
            else:
                node, reads, produced = self.parallel_component(item)
            for title, value in reads:
                edges.append(self.data_edge(*producer[value], node, title))
            for value, title in produced.items():
                producer[value] = (node, title)
            nodes.append(node)
        end = self.component("EndNode", "end", inputs=props_out, outputs=props_out, branches=[])
        edges.extend(self.data_edge(*producer[v], end, v) for v in outputs)
        return self.chain(name, [*nodes, end], edges, props_in, props_out)

    def step_component(self, name: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The node of one step, and what it reads: (input title, value name)."""
        node = self.nodes[name]
        options = self.flow.steps[name].options
        if node.over is None:
            component = self.call_component(name, node, name, {v: self.schemas[v] for v in node.args.values()})
            return self.with_options(component, options), [(t, node.args[t]) for t, _ in node.inputs if t in node.args]
        # a map: the element runs in a subflow, once per element of the value iterated over
        loop = str(node.loop)
        inner = [loop, *dict.fromkeys(v for v in node.args.values() if v != loop)]
        schemas = {v: self.loop_schema(node) if v == loop else self.schemas[v] for v in inner}
        element = self.call_component(name, node, f"{name} element", schemas)
        props_in = [{"title": v, **schemas[v]} for v in inner]
        item = self.element_schema(name)
        props_out = [{"title": name, **item}]
        start = self.component("StartNode", "start", inputs=props_in, outputs=props_in, branches=["next"])
        end = self.component("EndNode", "end", inputs=props_out, outputs=props_out, branches=[])
        edges = [self.data_edge(start, node.args[t], element, t) for t, _ in node.inputs if t in node.args]
        edges.append(self.data_edge(element, name, end, name))
        subflow = self.chain(f"{name} element", [start, element, end], edges, props_in, props_out)
        component = self.component(
            "ParallelMapNode",
            name,
            inputs=[{"title": f"iterated_{p['title']}", "anyOf": [_plain(p), _array(p)]} for p in props_in],
            outputs=[{"title": f"collected_{name}", **_array(item)}],
            branches=["next"],
            subflow=subflow,
            reducers={name: "append"},
        )
        reads = [(f"iterated_{loop}", str(node.over))] + [(f"iterated_{v}", v) for v in inner[1:]]
        return self.with_options(component, options), reads

    def call_component(self, step: str, node: _Node, name: str, schemas: dict[str, Schema]) -> dict[str, Any]:
        """A ToolNode or an LlmNode named ``name`` whose output is ``step``; ``schemas`` types what it reads."""
        if node.kind == "llm":
            assert node.llm_config is not None
            config = self.component(**node.llm_config)
            return self.component(
                "LlmNode",
                name,
                inputs=[{"title": t, **_STRING} for t, _ in node.inputs],
                outputs=[{"title": step, **_STRING}],
                branches=["next"],
                llm_config=config,
                prompt_template=node.prompt,
            )
        assert node.tool is not None
        inputs = []
        for title, schema in node.inputs:
            # an untyped parameter takes the type of the value it receives, so the edge's two ends agree
            typed = _plain(schema) if _typed(schema) or title not in node.args else schemas[node.args[title]]
            inputs.append({"title": title, **typed, **({"default": schema["default"]} if "default" in schema else {})})
        outputs = [{"title": step, **self.element_schema(step)}]
        tool = self.component("ServerTool", **node.tool, inputs=inputs, outputs=outputs)
        return self.component("ToolNode", name, inputs=inputs, outputs=outputs, branches=["next"], tool=tool)

    def element_schema(self, step: str) -> Schema:
        """The type of what one call of the step returns (for a map: one element)."""
        node = self.nodes[step]
        if node.kind == "llm":
            return dict(_STRING)
        if node.output is not None:
            return _plain(node.output)
        schema = self.schemas.get(step, {})
        return _plain(schema.get("items", {})) if node.over else schema

    def parallel_component(self, par: _Par) -> tuple[dict[str, Any], list[tuple[str, str]], dict[str, str]]:
        members = [_flatten(b) for b in par.branches]
        everything = {s for m in members for s in m}
        group = next((g for g in self.flow.groups.values() if set(g.members) == everything), None)
        known = {frozenset(b.steps): b.name for b in group.branches} if group is not None else {}
        subflows: list[dict[str, Any]] = []
        reads: list[tuple[str, str]] = []
        produced: dict[str, str] = {}
        for branch, steps in zip(par.branches, members, strict=True):
            inputs = self.reads(steps)
            inside = set(steps)
            outputs = [s for s in sorted(steps, key=self.index) if s in self.finals or self.read_outside(s, inside)]
            label = known.get(frozenset(steps)) or (steps[0] if len(steps) == 1 else f"branch {steps[0]}")
            subflows.append(self.flow_dict(label, branch, inputs, outputs))
            reads.extend((v, v) for v in inputs)
            produced.update({v: v for v in outputs})
        reads = list(dict.fromkeys(reads))
        component = self.component(
            "ParallelFlowNode",
            group.name if group is not None else f"parallel {min(everything, key=self.index)}",
            inputs=[self.prop(v) for v, _ in reads],
            outputs=[self.prop(v) for v in produced],
            branches=["next"],
            subflows=subflows,
        )
        if group is not None and group.workers:
            component["metadata"] = {"flowmagic": {"workers": group.workers}}
        return component, reads, produced

    def chain(
        self,
        name: str,
        nodes: list[dict[str, Any]],
        edges: list[dict[str, Any]],
        inputs: list[Schema],
        outputs: list[Schema],
    ) -> dict[str, Any]:
        """A Flow running ``nodes`` one after the other (the first is its StartNode)."""
        control = [
            self.component(
                "ControlFlowEdge", f"{a['name']} -> {b['name']}", from_node=_ref(a), from_branch=None, to_node=_ref(b)
            )
            for a, b in itertools.pairwise(nodes)
        ]
        return self.component(
            "Flow",
            name,
            inputs=inputs,
            outputs=outputs,
            start_node=_ref(nodes[0]),
            nodes=[_ref(n) for n in nodes],
            control_flow_connections=control,
            data_flow_connections=edges,
            **{"$referenced_components": {n["id"]: n for n in nodes}},
        )

    # -- small parts --------------------------------------------------------------------
    def index(self, step: str) -> int:
        return self.flow.steps[step].index

    def read_outside(self, value: str, inside: set[str]) -> bool:
        return bool(self.readers.get(value, set()) - inside)

    def prop(self, value: str) -> Schema:
        return {"title": value, **self.schemas.get(value, {})}

    def with_options(self, component: dict[str, Any], options: StepOptions) -> dict[str, Any]:
        changed = {k: v for k, v in options.model_dump().items() if v != StepOptions.model_fields[k].default}
        changed.pop("temperature", None)  # written in the LLM configuration
        if changed:
            component["metadata"] = {"flowmagic": changed}
        return component

    def component(self, component_type: str, name: str, **fields: Any) -> dict[str, Any]:
        ident = self.ids.new(f"{component_type}:{name}")
        return {"component_type": component_type, "id": ident, "name": name, "metadata": {}, **fields}

    def data_edge(self, source: dict[str, Any], output: str, dest: dict[str, Any], input_: str) -> dict[str, Any]:
        return self.component(
            "DataFlowEdge",
            f"{source['name']}.{output} -> {dest['name']}.{input_}",
            source_node=_ref(source),
            source_output=output,
            destination_node=_ref(dest),
            destination_input=input_,
        )


def _flatten(seq: list[Item]) -> list[str]:
    out: list[str] = []
    for item in seq:
        out.extend([item] if isinstance(item, str) else [s for b in item.branches for s in _flatten(b)])
    return out


def _ref(component: dict[str, Any]) -> dict[str, str]:
    return {"$component_ref": component["id"]}


def _array(schema: Schema) -> Schema:
    return {"type": "array", "items": _plain(schema)}


def _llm_config(model: str | None, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
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


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        return dict(getattr(fn, "__annotations__", {}) or {})


def _schema(hint: Any) -> Schema:
    """The JSON schema of a type hint; ``{}`` (any value) when there is none or it has none."""
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    try:
        schema = TypeAdapter(hint).json_schema()
    except Exception:  # not a type pydantic knows: any value
        return {}
    return _plain(schema)


def _plain(schema: Schema) -> Schema:
    return {k: v for k, v in schema.items() if k not in ("title", "default")}


def _typed(schema: Schema) -> bool:
    return "type" in schema or "anyOf" in schema


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
