"""What each kind of Agent Spec node becomes in flowmagic's DSL.

- ``ToolNode``: a call of the tool of that name from ``tools`` (nowhere else);
- ``LlmNode``: ``llm("...")`` with the file's model, or none when ``model=`` is given;
- ``ParallelFlowNode`` and WayFlow's ``ExtendedParallelFlowNode`` (its
  ``max_workers`` becomes ``workers=``): a ``parallel`` group, one branch per subflow;
- ``ParallelMapNode``, ``MapNode`` and WayFlow's ``ExtendedParallelMapNode`` whose
  subflow is one tool or prompt: a map, ``[tool(x=x) for x in xs]``;
- ``OutputMessageNode`` and WayFlow's ``PluginOutputMessageNode``: the message, rendered;
- ``FlowNode``: its subflow, inline.

Each output is a step named after it (:class:`~.agentspec_text.Names`), unless the flow's
translation chose its name beforehand (:attr:`NodeKinds.forced`).
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .agentspec import AgentSpecError
from .agentspec_text import Component, Group, Item, Line, Names, describe, is_list_of, template, titles

TOOL_NODES = ("ToolNode", "ExtendedToolNode")
LLM_NODES = ("LlmNode", "ExtendedLlmNode")
PARALLEL_NODES = ("ParallelFlowNode", "ExtendedParallelFlowNode")
MAP_NODES = ("ParallelMapNode", "MapNode", "ExtendedParallelMapNode")
MESSAGE_NODES = ("OutputMessageNode", "PluginOutputMessageNode")
# servers flowmagic reaches with its OpenAI-compatible client
LLM_CONFIGS = ("OpenAiConfig", "OpenAiCompatibleConfig", "VllmConfig", "OllamaConfig")
_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "retries": int,
    "backoff": (int, float),
    "timeout": (int, float),
    "cache": bool,
}


@dataclass
class Translated:
    items: list[Item]
    outputs: dict[str, str]  # output title -> DSL name


class NodeKinds:
    """The DSL statements of one node; :meth:`flow` (the translator's) translates a subflow."""

    def __init__(self, tools: dict[str, Callable[..., Any]], model: str | None) -> None:
        self.tools = tools
        self.model = model
        self.names = Names()
        self.namespace: dict[str, Any] = {}
        self.aliases: dict[str, str] = {}  # tool name -> DSL name
        self.schemas: dict[str, dict[str, Any]] = {}  # DSL name -> the JSON schema of its value
        self.forced: dict[str, str] = {}  # the node being translated: output title -> the name chosen for it

    def flow(self, flow: Component, env: dict[str, str] | None) -> tuple[list[Item], dict[str, str]]:
        raise NotImplementedError  # pragma: no cover - the translator's

    def output_name(self, title: str) -> str:
        """The DSL name of the node's output ``title``: the one chosen beforehand, or a fresh one."""
        return self.forced.pop(title, None) or self.names.new(title)

    def node(self, node: Component, value: Callable[[str], str]) -> Translated:
        kind = node.get("component_type")
        decorators = self.decorators(node)
        if kind in PARALLEL_NODES:
            return self.parallel(node, value)
        if kind == "FlowNode":
            inputs = {t: value(t) for t in titles(node.get("inputs"))}
            items, outputs = self.flow(node["subflow"], inputs)
            return Translated(items, {t: outputs[t] for t in titles(node.get("outputs")) if t in outputs})
        if kind in MAP_NODES:
            return self.map(node, value, decorators)
        expr, outs = self.expression(node, value)
        return self.assign(node, expr, outs, decorators)

    def expression(self, node: Component, value: Callable[[str], str]) -> tuple[str, list[str]]:
        """The DSL expression of a tool, prompt or message node, and the titles of its outputs."""
        kind = node.get("component_type")
        self.no_mapping(node)
        if kind in TOOL_NODES:
            tool = node.get("tool") or {}
            if tool.get("component_type") != "ServerTool":
                raise AgentSpecError(
                    f"{describe(node)} uses a {tool.get('component_type')!r}: flowmagic runs "
                    "ServerTool tools, from the tools it is given"
                )
            name = str(tool.get("name"))
            if name not in self.tools:
                given = ", ".join(sorted(self.tools)) or "none"
                raise AgentSpecError(
                    f"tool '{name}' of {describe(node)} is not among the tools given (tools=...: {given})"
                )
            if name not in self.aliases:
                self.aliases[name] = alias = self.names.new(name)
                self.namespace[alias] = self.tools[name]
            args = []
            for title in titles(node.get("inputs") or tool.get("inputs")):
                arg = value(title)
                args.append(
                    f"{title}={arg}"
                    if title.isidentifier() and not keyword.iskeyword(title)
                    else f"**{{{title!r}: {arg}}}"
                )
            return f"{self.aliases[name]}({', '.join(args)})", titles(node.get("outputs") or tool.get("outputs"))
        if kind in LLM_NODES:
            if node.get("prompt_template_object"):
                raise AgentSpecError(f"{describe(node)}: only prompt_template is supported, not its object")
            values = {t: value(t) for t in titles(node.get("inputs"))}
            prompt, _ = template(node.get("prompt_template"), node, values)
            outputs = node.get("outputs") or [{"title": "generated_text", "type": "string"}]
            if len(outputs) != 1 or outputs[0].get("type", "string") != "string":
                raise AgentSpecError(f"{describe(node)}: structured output is not supported, only text")
            return f"llm({prompt!r}{self.llm_settings(node)})", titles(outputs)
        if kind in MESSAGE_NODES:
            if node.get("rephrase"):
                raise AgentSpecError(f"{describe(node)}: rephrasing a message with an LLM is not supported")
            message = node.get("message", node.get("message_template"))
            values = {t: value(t) for t in titles(node.get("inputs"))}
            text, used = template(message, node, values)
            return f"{text!r}.format({', '.join(f'{n}={n}' for n in used)})", titles(node.get("outputs"))
        raise AgentSpecError(f"{describe(node)} is not supported")  # pragma: no cover - checked in flow()

    def llm_settings(self, node: Component) -> str:
        """``, model='...', temperature=...`` from the node's LLM configuration (no model if one is given)."""
        config = node.get("llm_config") or {}
        out = ""
        if self.model is None:
            if config.get("component_type") not in LLM_CONFIGS:
                raise AgentSpecError(
                    f"{describe(node)} uses a {config.get('component_type')!r} model configuration; flowmagic "
                    f"reaches {', '.join(LLM_CONFIGS)} (or pass model=... to use another model)"
                )
            model = config.get("model_id")
            if not isinstance(model, str) or not model:
                raise AgentSpecError(f"{describe(node)}: its LLM configuration has no model_id")
            out = f", model={model!r}"
        generation = config.get("default_generation_parameters") or {}
        for key in ("temperature", "max_tokens"):
            setting = generation.get(key)
            if setting is not None:
                if isinstance(setting, bool) or not isinstance(setting, (int, float)):
                    raise AgentSpecError(f"{describe(node)}: {key} must be a number, not {setting!r}")
                out += f", {key}={setting!r}"
        return out

    def assign(self, node: Component, expr: str, outs: list[str], decorators: str) -> Translated:
        if len(outs) == 1:
            name = self.output_name(outs[0])
            return Translated([Line(f"{name} = {expr}", decorators)], {outs[0]: name})
        whole = self.names.new(str(node.get("name")) if not outs else f"{node.get('name')}_result")
        items: list[Item] = [Line(f"{whole} = {expr}", decorators)]
        outputs: dict[str, str] = {}
        for title in outs:  # a tool with several outputs returns a dict of them
            outputs[title] = self.output_name(title)
            items.append(Line(f"{outputs[title]} = {whole}[{title!r}]"))
        return Translated(items, outputs)

    def parallel(self, node: Component, value: Callable[[str], str]) -> Translated:
        self.no_mapping(node)
        subflows = node.get("subflows") if node.get("component_type") == "ParallelFlowNode" else node.get("flows")
        workers = node.get("max_workers") or (node.get("metadata") or {}).get("flowmagic", {}).get("workers")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise AgentSpecError(f"{describe(node)}: max_workers must be a whole number of at least 1")
        inputs = {t: value(t) for t in titles(node.get("inputs"))}
        branches: list[tuple[str, list[Item]]] = []
        outputs: dict[str, str] = {}
        for sub in subflows or []:
            items, outs = self.flow(sub, inputs)
            outputs.update(outs)
            if items:
                branches.append((self.names.new(str(sub.get("name"))), items))
        if len(branches) < 2:  # nothing runs side by side: no group
            return Translated([i for _, b in branches for i in b], outputs)
        return Translated([Group(self.names.new(str(node.get("name"))), workers, branches)], outputs)

    def map(self, node: Component, value: Callable[[str], str], decorators: str) -> Translated:
        self.no_mapping(node)
        extended = node.get("component_type") == "ExtendedParallelMapNode"
        sub = node.get("flow") if extended else node.get("subflow")
        if not isinstance(sub, dict) or not isinstance(sub.get("start_node"), dict):
            raise AgentSpecError(f"{describe(node)} has no subflow")
        for method in (node.get("reducers") or {}).values():
            if method != "append":
                raise AgentSpecError(f"{describe(node)}: the '{method}' reducer is not supported, only 'append'")
        work = [n for n in sub.get("nodes") or [] if n.get("component_type") not in ("StartNode", "EndNode")]
        if len(work) != 1 or work[0].get("component_type") not in (*TOOL_NODES, *LLM_NODES):
            raise AgentSpecError(f"{describe(node)}: flowmagic imports maps whose subflow is one tool or prompt")
        start = sub["start_node"]
        inner = titles(start.get("inputs") or start.get("outputs"))
        loops: dict[str, str] = {}  # loop variable -> the DSL name of the list it runs over
        env: dict[str, str] = {}
        if extended:  # WayFlow: one list, "iterated_input"; unpack_input says which inner inputs get each element
            unpack = node.get("unpack_input") or {}
            over = value("iterated_input")
            for title in inner:
                if title not in unpack:
                    env[title] = value(title)
                    continue
                if unpack[title] != ".":
                    raise AgentSpecError(
                        f"{describe(node)}: unpack_input {title!r}: {unpack[title]!r} is a query flowmagic "
                        "does not run; only '.' (the whole element) is supported"
                    )
                env[title] = loop = next(iter(loops), None) or self.names.new(title)
                loops[loop] = over
        else:  # Agent Spec: inputs "iterated_<name>"; lists are iterated (zipped), other values passed whole
            outer = {title: value(f"iterated_{title}") for title in inner}
            inner_props = {p.get("title"): p for p in start.get("inputs") or []}
            iterated = [t for t in inner if is_list_of(self.schemas.get(outer[t], {}), inner_props.get(t, {}))]
            if not iterated and len(inner) == 1:  # untyped: the one input must be the list
                iterated = inner
            for title in inner:
                if title in iterated:
                    env[title] = loop = self.names.new(title)
                    loops[loop] = outer[title]
                else:
                    env[title] = outer[title]
        if not loops:
            raise AgentSpecError(f"{describe(node)}: none of its inputs is a list to iterate over")
        body, outs = self.flow(sub, env)
        if len(body) != 1 or not isinstance(body[0], Line) or len(outs) != 1:
            raise AgentSpecError(f"{describe(node)}: flowmagic imports maps with one output")
        element_name, expr = body[0].text.split(" = ", 1)
        self.names.used.discard(element_name)
        (inner_title,) = outs
        title = inner_title if extended else f"collected_{inner_title}"
        name = self.forced.pop(title, None) or self.names.new(inner_title)
        source = next(iter(loops.values())) if len(loops) == 1 else f"zip({', '.join(loops.values())})"
        line = Line(f"{name} = [{expr} for {', '.join(loops)} in {source}]", decorators or body[0].decorators)
        return Translated([line], {title: name})

    def no_mapping(self, node: Component) -> None:
        for key in ("input_mapping", "output_mapping"):
            if node.get(key):
                raise AgentSpecError(f"{describe(node)}: a non-empty {key} is not supported")

    def decorators(self, node: Component) -> str:
        """``@retries(..)`` and friends from the flowmagic options an export keeps in metadata."""
        options = (node.get("metadata") or {}).get("flowmagic") or {}
        parts = []
        for key, setting in options.items():
            types = _OPTION_TYPES.get(key)
            if types is None:
                continue
            if not isinstance(setting, types) or (types is not bool and isinstance(setting, bool)):
                raise AgentSpecError(f"{describe(node)}: flowmagic option {key}={setting!r} is not valid")
            if key == "retries":
                parts.append(f"@retries({setting!r}, backoff={options.get('backoff', 0.5)!r})")
            elif key in ("timeout", "cache"):
                parts.append(f"@{key}({setting!r})")
        return " ".join(parts)

    def constant(self, title: str, value: Any) -> str:
        """A name in the namespace holding ``value`` (a default from the file)."""
        name = self.names.new(f"{title}_default")
        self.namespace[name] = value
        return name

