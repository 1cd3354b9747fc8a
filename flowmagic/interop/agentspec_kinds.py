"""What each kind of Agent Spec node becomes in flowmagic's DSL.

- ``ToolNode``: a call of the tool of that name from ``tools`` (nowhere else);
- ``LlmNode``: ``llm("...")`` with the file's model, or none when ``model=`` is given (a system
  prompt flowmagic's export put at the head of the template, ``metadata.flowmagic.system``,
  comes back as ``system=``); one whose outputs are not one string asks for JSON, read as WayFlow
  reads it (``agentspec_structured``);
- ``ParallelFlowNode`` and WayFlow's ``ExtendedParallelFlowNode`` (its ``max_workers`` becomes
  ``workers=``): a ``parallel`` group, one branch per subflow;
- ``ParallelMapNode``, ``MapNode`` and WayFlow's ``ExtendedParallelMapNode`` and
  ``ExtendedMapNode`` whose subflow is one tool or prompt: a map (see ``agentspec_maps``);
- ``OutputMessageNode`` and WayFlow's ``PluginOutputMessageNode``: the message, rendered;
- ``InputMessageNode`` and WayFlow's ``PluginInputMessageNode``: what the user answers, an input
  of the flow named after the node's output (a run without it is an error naming it);
- ``FlowNode``: its subflow, inline.

A node's ``input_mapping`` and ``output_mapping`` rename what it reads and gives
(``agentspec_renames``). Each output is a step named after it (:class:`~.agentspec_text.Names`),
unless the flow's translation chose its name beforehand (:attr:`NodeKinds.forced`).
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Callable
from typing import Any

from .agentspec import AgentSpecError
from .agentspec_components import INPUT_NODES, LLM_NODES, MAP_NODES, MESSAGE_NODES, PARALLEL_NODES, TOOL_NODES
from .agentspec_maps import translate_map
from .agentspec_renames import inside, outside, reading, renames
from .agentspec_structured import answer_schema, is_structured
from .agentspec_text import Component, Group, Item, Line, Names, Translated, describe, template, titles

# servers flowmagic reaches with its OpenAI-compatible client
LLM_CONFIGS = ("OpenAiConfig", "OpenAiCompatibleConfig", "VllmConfig", "OllamaConfig")
_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "retries": int,
    "backoff": (int, float),
    "timeout": (int, float),
    "cache": bool,
}
_ASKED = {"InputMessageNode": "user_input", "PluginInputMessageNode": "user_provided_input"}  # default outputs


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
        self.inputs: set[str] = set()  # the DSL names that are inputs of the flow

    def flow(
        self, flow: Component, env: dict[str, str] | None, want: dict[str, str] | None = None
    ) -> tuple[list[Item], dict[str, str]]:
        raise NotImplementedError  # pragma: no cover - the translator's

    def output_name(self, title: str) -> str:
        """The DSL name of the node's output ``title``: the one chosen beforehand, or a fresh one."""
        return self.forced.pop(title, None) or self.names.new(title)

    def node(self, node: Component, value: Callable[[str], str]) -> Translated:
        kind = node.get("component_type")
        decorators = self.decorators(node)
        self.check_mappings(node)
        if kind in PARALLEL_NODES:
            return self.parallel(node, value)
        if kind == "FlowNode":
            items, outputs = self.flow(node["subflow"], self.subflow_inputs(node, value), self.wanted(node))
            return Translated(items, self.subflow_outputs(node, outputs))
        if kind in MAP_NODES:
            return translate_map(self, node, value, decorators)
        if kind in INPUT_NODES:
            return self.asked(node)
        expr, outs, whole = self.expression(node, value)
        return self.assign(node, expr, outs, decorators, whole)

    def subflow_inputs(self, node: Component, value: Callable[[str], str]) -> dict[str, str]:
        """The DSL names of the inputs of a node's subflows, by the subflows' own titles."""
        return {inside(node, "input_mapping", t): value(t) for t in titles(node.get("inputs"))}

    def wanted(self, node: Component) -> dict[str, str]:
        """The names chosen for the node's outputs, by its subflows' titles: the subflows write them."""
        return {inside(node, "output_mapping", t): name for t, name in self.forced.items()}

    def subflow_outputs(self, node: Component, outputs: dict[str, str]) -> dict[str, str]:
        """The outputs of a node's subflows (title -> DSL name) by the node's titles, those it declares."""
        mapped = {outside(node, "output_mapping", t): name for t, name in outputs.items()}
        declared = titles(node.get("outputs"))
        return {t: mapped[t] for t in declared if t in mapped} if node.get("outputs") is not None else mapped

    def asked(self, node: Component) -> Translated:
        """What the user answers: an input of the flow, no step; or, when the flow chose a name for it
        (it gives the answer as one of its outputs, as WayFlow's do), a step of that name that passes
        on the input ``<name>_answer``."""
        title = (titles(node.get("outputs")) or [_ASKED[str(node.get("component_type"))]])[0]
        chosen = self.forced.pop(title, None)
        wanted = title if title not in vars(builtins) else f"{title}_"
        name = self.names.new(f"{chosen}_answer" if chosen else wanted)
        self.inputs.add(name)
        self.schemas.setdefault(name, {"type": "string"})
        if chosen is None:
            return Translated([], {title: name})
        return Translated([Line(f"{chosen} = {name}")], {title: chosen})

    def expression(self, node: Component, value: Callable[[str], str]) -> tuple[str, list[tuple[str, str]], bool]:
        """The DSL expression of a tool, prompt or message node, its outputs (title, the key of the
        result that gives it), and whether the result is a dict of them even for one output."""
        kind = node.get("component_type")
        if kind in TOOL_NODES:
            return (*self.tool_call(node, value), False)
        # what a prompt or message reads, by the placeholders' names
        values = {inside(node, "input_mapping", t): value(t) for t in titles(node.get("inputs"))}
        if kind in LLM_NODES:
            if node.get("prompt_template_object"):
                raise AgentSpecError(f"{describe(node)}: only prompt_template is supported, not its object")
            text = node.get("prompt_template")
            system = self.options(node).get("system")
            settings = ""
            if isinstance(system, str) and isinstance(text, str) and text.startswith(system + "\n\n"):
                rendered, _ = template(system, node, values)  # flowmagic's export: the system prompt, then the prompt
                settings, text = f", system={rendered!r}", text[len(system) + 2 :]
            prompt, _ = template(text, node, values)
            default = outside(node, "output_mapping", "output" if kind == "ExtendedLlmNode" else "generated_text")
            outputs = node.get("outputs") or [{"title": default, "type": "string"}]
            keys = [(t, inside(node, "output_mapping", t)) for t in titles(outputs)]
            structured = is_structured(outputs)
            if structured:  # JSON, read as WayFlow reads it: a dict of the outputs (agentspec_structured)
                asked = [{**p, "title": key} for p, (_, key) in zip(outputs, keys, strict=True)]
                schema = self.names.new(f"{node.get('name')}_answer")
                self.namespace[schema] = answer_schema(schema, asked)
                settings += f", schema={schema}"
            return f"llm({prompt!r}{settings}{self.llm_settings(node)})", keys, structured
        if kind in MESSAGE_NODES:
            if node.get("rephrase"):
                raise AgentSpecError(f"{describe(node)}: rephrasing a message with an LLM is not supported")
            message = node.get("message", node.get("message_template"))
            text, used = template(message, node, values)
            expr = f"{text!r}.format({', '.join(f'{n}={n}' for n in used)})"
            return expr, [(t, t) for t in titles(node.get("outputs"))], False
        raise AgentSpecError(f"{describe(node)} is not supported")  # pragma: no cover - checked in flow()

    def tool_call(self, node: Component, value: Callable[[str], str]) -> tuple[str, list[tuple[str, str]]]:
        tool = node.get("tool") or {}
        if tool.get("component_type") != "ServerTool":
            raise AgentSpecError(
                f"{describe(node)} uses a {tool.get('component_type')!r}: flowmagic runs "
                "ServerTool tools, from the tools it is given"
            )
        name = str(tool.get("name"))
        if name not in self.tools:
            given = ", ".join(sorted(self.tools)) or "none"
            raise AgentSpecError(f"tool '{name}' of {describe(node)} is not among the tools given (tools=...: {given})")
        if name not in self.aliases:
            self.aliases[name] = alias = self.names.new(name)
            self.namespace[alias] = self.tools[name]
        read = reading(node, value)
        if node.get("inputs"):
            params = [inside(node, "input_mapping", t) for t in titles(node.get("inputs"))]
        else:
            params = titles(tool.get("inputs"))
        args = []
        for title in params:
            arg = read(title)
            args.append(
                f"{title}={arg}" if title.isidentifier() and not keyword.iskeyword(title) else f"**{{{title!r}: {arg}}}"
            )
        if node.get("outputs"):
            outs = [(t, inside(node, "output_mapping", t)) for t in titles(node.get("outputs"))]
        else:
            outs = [(outside(node, "output_mapping", t), t) for t in titles(tool.get("outputs"))]
        return f"{self.aliases[name]}({', '.join(args)})", outs

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

    def assign(
        self, node: Component, expr: str, outs: list[tuple[str, str]], decorators: str, whole: bool = False
    ) -> Translated:
        if len(outs) == 1 and not whole:
            name = self.output_name(outs[0][0])
            return Translated([Line(f"{name} = {expr}", decorators)], {outs[0][0]: name})
        result = self.names.new(str(node.get("name")) if not outs else f"{node.get('name')}_result")
        items: list[Item] = [Line(f"{result} = {expr}", decorators)]
        outputs: dict[str, str] = {}
        for title, key in outs:  # a tool with several outputs returns a dict of them
            outputs[title] = self.output_name(title)
            items.append(Line(f"{outputs[title]} = {result}[{key!r}]"))
        return Translated(items, outputs)

    def parallel(self, node: Component, value: Callable[[str], str]) -> Translated:
        subflows = node.get("subflows") if node.get("component_type") == "ParallelFlowNode" else node.get("flows")
        workers = node.get("max_workers") or self.options(node).get("workers")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise AgentSpecError(f"{describe(node)}: max_workers must be a whole number of at least 1")
        inputs, want = self.subflow_inputs(node, value), self.wanted(node)
        branches: list[tuple[str, list[Item]]] = []
        outputs: dict[str, str] = {}
        for sub in subflows or []:
            items, outs = self.flow(sub, inputs, want)
            outputs.update(outs)
            if items:
                branches.append((self.names.new(str(sub.get("name"))), items))
        outputs = self.subflow_outputs(node, outputs)
        if len(branches) < 2:  # nothing runs side by side: no group
            return Translated([i for _, b in branches for i in b], outputs)
        return Translated([Group(self.names.new(str(node.get("name"))), workers, branches)], outputs)

    def options(self, node: Component) -> dict[str, Any]:
        """What flowmagic's export keeps in the node's ``metadata.flowmagic``."""
        metadata = node.get("metadata")
        ours = metadata.get("flowmagic") if isinstance(metadata, dict) else None
        return ours if isinstance(ours, dict) else {}

    def check_mappings(self, node: Component) -> None:
        renames(node, "input_mapping")
        renames(node, "output_mapping")

    def decorators(self, node: Component) -> str:
        """``@retries(..)`` and friends from the flowmagic options an export keeps in metadata."""
        options = self.options(node)
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

