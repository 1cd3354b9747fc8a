"""A flowmagic flow as an Agent Spec document (plain dicts).

Each step becomes a node (see ``agentspec_nodes``). Agent Spec runs nodes one after
another and allows parallelism only inside a ``ParallelFlowNode``, so the DAG is cut
into stages (``agentspec_stages``): independent parts become the subflows of a
parallel node, dependent parts a sequence. An ``if`` block is one unit of that cut: a
``BranchingNode`` whose branches run the arms' stages and meet again at the node after
the block, which reads a name assigned in every arm through one data edge from each
arm (see ``agentspec_blocks``). A ``for`` loop is one unit too: its body's nodes and a
``BranchingNode`` that goes back to them (see ``agentspec_loops``). A subflow call
becomes a ``FlowNode`` whose subflow is the called flow, exported the same way.

Agent Spec has no bound on what runs at once: a group with ``workers=N`` becomes WayFlow's
``ExtendedParallelFlowNode`` with ``max_workers=N`` (and a map inside such a group a node
that keeps the bound, see ``agentspec_mapnodes``), which WayFlow and flowmagic honour;
without one, the nodes are Agent Spec's own.
"""

from __future__ import annotations

import ast
import typing
from collections.abc import Mapping
from typing import Any

from ..flow.model import StepOptions
from .agentspec import AGENTSPEC_VERSION
from .agentspec_blocks import DEFAULT_BRANCH, Block, Refused
from .agentspec_graph import Component, Graph, Ids, Sources, Tail, named, ref
from .agentspec_loops import LoopPlan, body_flow, emit_loop, loop_node, loop_plan, pick_schemas
from .agentspec_mapnodes import extended, map_component, map_output
from .agentspec_nodes import STRING, Node, Schema, StepNodes, element_schema, plain, typed
from .agentspec_stages import Item, _Par, flatten, stages
from .agentspec_subflows import subflow_node
from .agentspec_types import value_schemas

if typing.TYPE_CHECKING:
    from ..flow.flow import Flow
    from ..flow.model import Step

__all__ = ["Item", "_Par", "export", "stages"]


def export(flow: Flow, namespace: Mapping[str, Any]) -> dict[str, Any]:
    doc = _Exporter(flow, namespace).flow_document()
    doc["agentspec_version"] = AGENTSPEC_VERSION
    return doc


class _Exporter(StepNodes):
    def __init__(
        self,
        flow: Flow,
        namespace: Mapping[str, Any],
        ids: Ids | None = None,
        callers: tuple[Flow, ...] = (),
        enclosing: tuple[_Exporter, Step] | None = None,
    ) -> None:
        super().__init__(flow, namespace)
        self.enclosing = enclosing  # a loop's body: the loop's exporter and step
        self.ids = ids or Ids()  # shared with the subflows' exporters: ids are unique in the document
        self.callers = (*callers, flow)  # the flows being exported, this one last
        self.loops: dict[str, tuple[LoopPlan, _Exporter]] = {}  # each loop: its plan and its body's exporter
        self.partial: set[str] = set()  # names after a loop that a loop stopping in its first round does not give
        self.nodes = self.nodes_of_steps()
        self.schemas = value_schemas(self.nodes, list(flow.steps), flow.compiled.joins)
        self.schemas.update({v: {"type": "array", "items": element_schema(d)} for v, d in self.literals.items()})
        self.schemas.update(pick_schemas(flow.compiled, {n: body for n, (_, body) in self.loops.items()}))
        self.check_keys()
        self.finals = {n for n in flow.final_steps if n not in self.nesting.arm_step and n not in self.partial}
        self.readers: dict[str, set[str]] = {}
        for name in flow.steps:
            for value in self.node_reads(name):
                self.readers.setdefault(value, set()).add(name)
        for name, (_, variants) in flow.compiled.joins.items():  # a name after a block reads its arms' steps
            for value in variants:
                self.readers.setdefault(value, set()).add(name)

    # -- subflows ---------------------------------------------------------------------
    def flow_node(self, step: Step, expr: ast.expr, callee: Flow) -> Node:
        """A call of another flow: a FlowNode whose subflow is that flow, exported here."""
        if any(f is callee or f.name == callee.name for f in self.callers):
            raise self.error(step, f"flow '{callee.name}' calls itself, through '{self.flow.name}'")
        names = callee._namespace or {}
        try:
            return subflow_node(expr, callee, lambda: _Exporter(callee, names, self.ids, self.callers))
        except Refused as exc:
            raise self.error(step, str(exc)) from None

    # -- loops ----------------------------------------------------------------------------
    def loop_node(self, step: Step) -> Node:
        """A loop: its body exported here (see ``agentspec_loops``)."""
        try:
            plan = loop_plan(self.flow.compiled, step.name)
            body = _Exporter(body_flow(self.flow, step.name), self.namespace, self.ids, self.callers, (self, step))
            node, partial = loop_node(self.flow.compiled, step.name, body)
        except Refused as exc:
            raise self.error(step, str(exc)) from None
        self.loops[step.name] = (plan, body)
        self.partial.update(partial)
        self.literals.update(body.literals)  # a map's list in the body: an input of this flow too
        return node

    # -- value types ----------------------------------------------------------------------
    def check_keys(self) -> None:
        """The value each BranchingNode reads is a string."""
        for cond, found in self.blocks.items():
            schema = self.schemas.get(self.nodes[cond].args[found.key], {})
            if typed(schema) and schema.get("type") != "string":
                raise self.error(
                    self.flow.steps[cond],
                    f"'{found.key}' is not a string ({schema}); a BranchingNode compares strings",
                )

    # -- the document ---------------------------------------------------------------------
    def flow_document(self) -> Component:
        level, deps = self.nesting.level(self.flow.steps, None)
        seq = self.staged(level, deps)
        return self.flow_dict(self.flow.name, seq, self.reads(list(self.flow.steps)), self.outputs())

    def outputs(self) -> list[str]:
        return [n for n in self.flow.steps if n in self.finals]

    def node_reads(self, step: str) -> list[str]:
        node = self.nodes[step]
        reads = [node.args[t] for t, _ in node.inputs if t in node.args]
        return [r for r in [*reads, *filter(None, [node.over])] if r != node.loop]

    def reads(self, steps: list[str]) -> list[str]:
        """The values steps (and the blocks among them) read that they do not produce, in the order first read."""
        mine = set(self.nesting.expand(steps))
        found: dict[str, None] = {}
        for s in sorted(mine, key=self.index):
            found.update(dict.fromkeys(r for r in self.node_reads(s) if r not in mine))
        return list(found)

    def flow_dict(self, name: str, seq: list[Item], inputs: list[str], outputs: list[str]) -> Component:
        props_in = [self.prop(v) for v in inputs]
        props_out = [self.prop(v) for v in outputs]
        start = self.component("StartNode", "start", inputs=props_in, outputs=props_in, branches=["next"])
        graph = Graph([start])
        producer: dict[str, Sources] = {v: [(start, v)] for v in inputs}
        tails = self.emit(seq, [(start, None)], producer, graph)
        end = self.component("EndNode", "end", inputs=props_out, outputs=props_out, branches=[])
        self.add(graph, end, tails)
        for value in outputs:
            graph.data.extend(self.data_edge(source, title, end, value) for source, title in producer[value])
        return self.flow_component(name, props_in, props_out, graph)

    def flow_component(self, name: str, props_in: list[Schema], props_out: list[Schema], graph: Graph) -> Component:
        """A Flow of the nodes of ``graph``, the first its StartNode."""
        return self.component(
            "Flow",
            name,
            inputs=props_in,
            outputs=props_out,
            start_node=ref(graph.nodes[0]),
            nodes=[ref(n) for n in graph.nodes],
            control_flow_connections=graph.control,
            data_flow_connections=graph.data,
            **{"$referenced_components": {n["id"]: n for n in graph.nodes}},
        )

    def emit(
        self,
        seq: list[Item],
        tails: list[Tail],
        producer: dict[str, Sources],
        graph: Graph,
    ) -> list[Tail]:
        """Lay out ``seq`` after ``tails``; where the control flow leaves it. ``producer`` gives each value's
        node and output (several for a name after a block: one per arm) and learns the new ones."""
        for item in seq:
            if isinstance(item, str) and item in self.blocks:
                tails = self.emit_block(self.blocks[item], tails, producer, graph)
                continue
            if isinstance(item, str) and item in self.loops:
                plan, body = self.loops[item]
                tails = emit_loop(self, body, plan, tails, producer, graph)
                continue
            if isinstance(item, str) and self.nodes[item].kind == "copy":  # given by what gives the value it copies
                self.make(graph, producer, item, producer[self.nodes[item].args["value"]])
                continue
            if isinstance(item, str):
                node, reads = self.step_component(item)
                produced = {item: self.output_title(item)}
            else:
                node, reads, produced = self.parallel_component(item)
            self.add(graph, node, tails)
            for title, value in reads:
                self.feed(graph, producer[value], value, node, title)
            for value, title in produced.items():
                self.make(graph, producer, value, [(node, title)])
            tails = [(node, None)]
        return tails

    def emit_block(
        self,
        found: Block,
        tails: list[Tail],
        producer: dict[str, Sources],
        graph: Graph,
    ) -> list[Tail]:
        """A BranchingNode, then each arm on its branch; all of them go on to what follows the block."""
        node = self.branching(found, tails, producer, graph)
        ends: list[Tail] = [] if found.has_else else [(node, DEFAULT_BRANCH)]
        arms: list[dict[str, list[tuple[Component, str]]]] = []
        for arm in found.arms:
            level, deps = self.nesting.level(arm.steps, found.cond)
            inside = dict(producer)
            ends.extend(self.emit(self.staged(level, deps), [(node, arm.branch)], inside, graph))
            arms.append(inside)
        for name, variants in found.joins.items():
            self.make(graph, producer, name, [p for inside, v in zip(arms, variants, strict=True) for p in inside[v]])
        return ends

    def branching(self, found: Block, tails: list[Tail], producer: dict[str, Sources], graph: Graph) -> Component:
        """The BranchingNode of a block, after ``tails``, reading the value its tests read."""
        node = self.component(
            "BranchingNode",
            found.cond,
            inputs=[{"title": found.key, **STRING}],
            outputs=[],
            branches=found.branches,
            mapping=found.mapping,
        )
        self.add(graph, node, tails)
        value = self.nodes[found.cond].args[found.key]
        self.feed(graph, producer[value], value, node, found.key)
        return node

    def feed(self, graph: Graph, sources: Sources, value: str, node: Component, title: str) -> None:
        """Input ``title`` of ``node`` reads ``value``: a data edge from each of its ``sources``."""
        graph.data.extend(self.data_edge(source, out, node, title) for source, out in sources)
        graph.reads.append((value, node, title))

    def make(self, graph: Graph, producer: dict[str, Sources], value: str, sources: Sources) -> None:
        """``value`` is given by ``sources`` from now on."""
        producer[value] = sources
        graph.made.setdefault(value, []).extend(sources)

    def add(self, graph: Graph, node: Component, tails: list[Tail]) -> None:
        graph.nodes.append(node)
        self.link(graph, node, tails)

    def link(self, graph: Graph, node: Component, tails: list[Tail]) -> None:
        """Control-flow edges from ``tails`` to ``node``."""
        for source, branch in tails:
            graph.control.append(
                self.component(
                    "ControlFlowEdge",
                    f"{source['name']} -> {node['name']}" + (f" ({branch})" if branch else ""),
                    from_node=ref(source),
                    from_branch=branch,
                    to_node=ref(node),
                )
            )

    def output_title(self, step: str) -> str:
        """The output of a step's node that holds the step's value."""
        node = self.nodes[step]
        if node.kind == "flow":
            return str(node.result)
        return map_output(self.flow, step) if node.over else named(step)

    def step_component(self, name: str) -> tuple[Component, list[tuple[str, str]]]:
        """The node of one step, and what it reads: (input title, value name)."""
        node = self.nodes[name]
        options = self.flow.steps[name].options
        if node.over is None:
            component = self.call_component(name, node, name, {v: self.schemas[v] for v in node.args.values()})
            return self.with_options(component, options), [(t, node.args[t]) for t, _ in node.inputs if t in node.args]
        component, reads = map_component(self, name)  # a map: the element runs in a subflow (agentspec_mapnodes)
        return self.with_options(component, options), reads

    def call_component(self, step: str, node: Node, name: str, schemas: dict[str, Schema]) -> Component:
        """A ToolNode, LlmNode or FlowNode named ``name`` whose output is ``step``; ``schemas`` types what it reads."""
        if node.kind == "llm":
            assert node.llm_config is not None
            config = self.component(**node.llm_config)
            prompt = node.prompt if node.system is None else f"{node.system}\n\n{node.prompt}"  # one prompt
            component = self.component(
                "LlmNode",
                name,
                inputs=[{"title": t, **_text(schemas.get(node.args.get(t, t), {}))} for t, _ in node.inputs],
                outputs=[{"title": named(step), **STRING}],
                branches=["next"],
                llm_config=config,
                prompt_template=prompt,
            )
            if node.system is not None:
                component["metadata"] = {"flowmagic": {"system": node.system}}
            return component
        inputs = []
        for title, schema in node.inputs:
            # an untyped parameter takes the type of the value it receives, so the edge's two ends agree
            kind = plain(schema) if typed(schema) or title not in node.args else schemas[node.args[title]]
            inputs.append({"title": title, **kind, **({"default": schema["default"]} if "default" in schema else {})})
        if node.kind == "flow":
            outputs = [{"title": node.result, **self.element_schema(step)}]
            fields = {"inputs": inputs, "outputs": outputs, "branches": ["next"], "subflow": node.subflow}
            return self.component("FlowNode", name, **fields)
        assert node.tool is not None
        outputs = [{"title": named(step), **self.element_schema(step)}]
        tool = self.component("ServerTool", **node.tool, inputs=inputs, outputs=outputs)
        return self.component("ToolNode", name, inputs=inputs, outputs=outputs, branches=["next"], tool=tool)

    def element_schema(self, step: str) -> Schema:
        """The type of what one call of the step returns (for a map: one element)."""
        node = self.nodes[step]
        if node.kind == "llm":
            return dict(STRING)
        if node.output is not None and typed(node.output):
            return plain(node.output)
        schema = self.schemas.get(step, {})
        return plain(schema.get("items", {})) if node.over else schema

    def parallel_component(self, par: _Par) -> tuple[Component, list[tuple[str, str]], dict[str, str]]:
        members = [self.nesting.expand(flatten(b)) for b in par.branches]
        everything = {s for m in members for s in m}
        group = next((g for g in self.flow.groups.values() if set(g.members) == everything), None)
        known = {frozenset(b.steps): b.name for b in group.branches} if group is not None else {}
        subflows: list[Component] = []
        reads: list[tuple[str, str]] = []
        produced: dict[str, str] = {}
        for branch, steps in zip(par.branches, members, strict=True):
            inputs = self.reads(steps)
            inside = set(steps)
            outputs = [
                s
                for s in sorted(steps, key=self.index)
                if s not in self.blocks and s not in self.loops and (s in self.finals or self.read_outside(s, inside))
            ]
            label = known.get(frozenset(steps)) or (steps[0] if len(steps) == 1 else f"branch {steps[0]}")
            subflows.append(self.flow_dict(label, branch, inputs, outputs))
            reads.extend((v, v) for v in inputs)
            produced.update({v: v for v in outputs})
        reads = list(dict.fromkeys(reads))
        label = group.name if group is not None else f"parallel {min(everything, key=self.index)}"
        fields: dict[str, Any] = {
            "inputs": [self.prop(v) for v, _ in reads],
            "outputs": [self.prop(v) for v in produced],
        }
        if group is not None and group.workers:  # a bound: WayFlow's node that keeps it (Agent Spec's has none)
            fields.update(branches=["next"], flows=subflows, max_workers=group.workers)
            component = self.component("ExtendedParallelFlowNode", label, **extended(fields))
            component["metadata"] = {"flowmagic": {"workers": group.workers}}
        else:
            component = self.component("ParallelFlowNode", label, **fields, branches=["next"], subflows=subflows)
        return component, reads, produced

    # -- small parts --------------------------------------------------------------------
    def staged(self, level: list[str], deps: Mapping[str, tuple[str, ...]]) -> list[Item]:
        """The units of ``level`` as stages; in a loop's body, one after another (see ``agentspec_loops``)."""
        if self.enclosing is not None:
            return list(level)
        return stages(level, deps) if level else []

    def index(self, step: str) -> int:
        return self.flow.steps[step].index

    def read_outside(self, value: str, inside: set[str]) -> bool:
        return bool(self.readers.get(value, set()) - inside)

    def prop(self, value: str) -> Schema:
        """The property of ``value``; an input made for a map's literal list has that list as its default."""
        default = {"default": self.literals[value]} if value in self.literals else {}
        return {"title": value, **self.schemas.get(value, {}), **default}

    def with_options(self, component: Component, options: StepOptions) -> Component:
        changed = {k: v for k, v in options.model_dump().items() if v != StepOptions.model_fields[k].default}
        changed.pop("temperature", None)  # written in the LLM configuration
        if changed:
            component["metadata"] = {"flowmagic": {**component["metadata"].get("flowmagic", {}), **changed}}
        return component

    def component(self, component_type: str, name: str, **fields: Any) -> Component:
        ident = self.ids.new(f"{component_type}:{name}")
        return {"component_type": component_type, "id": ident, "name": name, "metadata": {}, **fields}

    def data_edge(self, source: Component, output: str, dest: Component, input_: str) -> Component:
        return self.component(
            "DataFlowEdge",
            f"{source['name']}.{output} -> {dest['name']}.{input_}",
            source_node=ref(source),
            source_output=output,
            destination_node=ref(dest),
            destination_input=input_,
        )


def _text(schema: Schema) -> Schema:
    """An LlmNode's input: a string, or a value of another scalar type it renders into the prompt."""
    kind = schema.get("type")
    return {"type": kind} if kind in ("integer", "number", "boolean") else dict(STRING)
