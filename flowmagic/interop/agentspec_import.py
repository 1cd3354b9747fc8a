"""An Agent Spec flow as flowmagic DSL text plus a namespace.

The translation walks the flow's control-flow path from its ``StartNode`` and
writes one DSL step per node output, named after the output (``user_info``,
``current_time``, ...), so the Run reads like the file. Each node reads what its
data-flow edges bring (or, in a flow without data-flow edges, the latest output
of the same name). flowmagic then runs every step as soon as what it reads is
ready: nodes that only follow each other on the control-flow path, with no data
between them, may overlap.

- ``ToolNode``: a call of the tool of that name from ``tools`` (nowhere else);
- ``LlmNode``: ``llm("...")`` with the file's model, or none when ``model=`` is given;
- ``ParallelFlowNode`` and WayFlow's ``ExtendedParallelFlowNode`` (its
  ``max_workers`` becomes ``workers=``): a ``parallel`` group, one branch per subflow;
- ``ParallelMapNode``, ``MapNode`` and WayFlow's ``ExtendedParallelMapNode`` whose
  subflow is one tool or prompt: a map, ``[tool(x=x) for x in xs]``;
- ``OutputMessageNode`` and WayFlow's ``PluginOutputMessageNode``: the message, rendered;
- ``FlowNode``: its subflow, inline.

Anything else is an :class:`AgentSpecError` naming the component. Text from the
file reaches the DSL only as identifiers (checked) and ``repr()`` string literals;
values (input defaults) go into the namespace, never into the text.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

from .agentspec import AgentSpecError
from .agentspec_bounds import resolve

Component = dict[str, Any]

RESERVED = frozenset({"llm", "parallel", "branch", "zip"})  # DSL keywords, and the builtin maps may use
TOOL_NODES = ("ToolNode", "ExtendedToolNode")
LLM_NODES = ("LlmNode", "ExtendedLlmNode")
PARALLEL_NODES = ("ParallelFlowNode", "ExtendedParallelFlowNode")
MAP_NODES = ("ParallelMapNode", "MapNode", "ExtendedParallelMapNode")
MESSAGE_NODES = ("OutputMessageNode", "PluginOutputMessageNode")
NODES = (*TOOL_NODES, *LLM_NODES, *PARALLEL_NODES, *MAP_NODES, *MESSAGE_NODES, "FlowNode", "StartNode", "EndNode")
# servers flowmagic reaches with its OpenAI-compatible client
LLM_CONFIGS = ("OpenAiConfig", "OpenAiCompatibleConfig", "VllmConfig", "OllamaConfig")
_PLACEHOLDER = re.compile(r"{{\s*(\w+)\s*}}")
_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "retries": int,
    "backoff": (int, float),
    "timeout": (int, float),
    "cache": bool,
}


@dataclass
class _Line:
    text: str
    decorators: str = ""


@dataclass
class _Group:
    name: str
    workers: int | None
    branches: list[tuple[str, list[Item]]]


Item = Union[_Line, _Group]  # noqa: UP007 - a runtime alias, Python 3.10 too


def translate(
    document: Component, tools: dict[str, Callable[..., Any]], model: str | None
) -> tuple[str, dict[str, Any], str]:
    root = resolve(document)
    if root.get("component_type") != "Flow":
        raise AgentSpecError(
            f"flowmagic imports Agent Spec flows, not a {root.get('component_type')!r} ('{root.get('name')}')"
        )
    translator = _Translator(tools, model)
    try:
        items, _ = translator.flow(root, env=None)
    except (KeyError, TypeError, AttributeError) as exc:  # a field missing or of the wrong kind
        raise AgentSpecError(f"malformed Agent Spec document ({type(exc).__name__}: {exc})") from exc
    if not items:
        raise AgentSpecError(f"Agent Spec flow '{root.get('name')}' has no node flowmagic can run")
    return "\n".join(_render(items, 0)) + "\n", translator.namespace, str(root.get("name") or "flow")


# -- names ------------------------------------------------------------------------------------
@dataclass
class _Names:
    used: set[str] = field(default_factory=set)
    tried: dict[str, int] = field(default_factory=dict)  # base -> the last suffix tried for it

    def new(self, wanted: str) -> str:
        """A fresh DSL identifier as close to ``wanted`` as possible."""
        base = re.sub(r"\W", "_", wanted.strip(), flags=re.ASCII).strip("_") or "value"
        if base[0].isdigit():
            base = "_" + base
        if keyword.iskeyword(base) or base in RESERVED:
            base += "_"
        # go on from the last suffix tried, so a thousand outputs of one name do not retry 1, 2, 3...
        name, n = base, self.tried.get(base, 1)
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.tried[base] = n
        self.used.add(name)
        return name


def _describe(component: Component) -> str:
    return f"{component.get('component_type')} '{component.get('name')}'"


def _titles(properties: Any) -> list[str]:
    return [str(p.get("title")) for p in properties or [] if isinstance(p, dict)]


def _template(text: Any, node: Component, values: dict[str, str]) -> tuple[str, list[str]]:
    """An Agent Spec template (``{{name}}``) in flowmagic's syntax (``{name}``), and the DSL names it reads."""
    if not isinstance(text, str):
        raise AgentSpecError(f"{_describe(node)}: its template is not a string")
    out: list[str] = []
    used: dict[str, None] = {}
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        out.append(_literal(text[pos : match.start()], node))
        title = match.group(1)
        if title not in values:
            raise AgentSpecError(f"{_describe(node)}: no value for placeholder '{title}'")
        out.append("{" + values[title] + "}")
        used[values[title]] = None
        pos = match.end()
    out.append(_literal(text[pos:], node))
    return "".join(out), list(used)


def _is_list_of(outer: dict[str, Any], inner: dict[str, Any]) -> bool:
    """Is a value of schema ``outer`` a list of ``inner`` values (so a map iterates over it)?"""
    if outer.get("type") != "array":
        return False
    return inner.get("type") != "array" or outer.get("items", {}).get("type") == "array"


def _literal(text: str, node: Component) -> str:
    for tag in ("{{", "{%", "{#"):
        if tag in text:
            where = text.index(tag)
            raise AgentSpecError(
                f"{_describe(node)}: its template uses {text[where : where + 24]!r}; flowmagic renders "
                "plain {{name}} placeholders only (no filters, attributes or control tags)"
            )
    return text.replace("{", "{{").replace("}", "}}")


class _Translator:
    def __init__(self, tools: dict[str, Callable[..., Any]], model: str | None) -> None:
        self.tools = tools
        self.model = model
        self.names = _Names()
        self.namespace: dict[str, Any] = {}
        self.aliases: dict[str, str] = {}  # tool name -> DSL name
        self.schemas: dict[str, dict[str, Any]] = {}  # DSL name -> the JSON schema of its value

    # -- a flow --------------------------------------------------------------------------------
    def flow(self, flow: Component, env: dict[str, str] | None) -> tuple[list[Item], dict[str, str]]:
        """The items of ``flow`` and its outputs (title -> DSL name).

        ``env`` gives the DSL names of its inputs; ``None`` for the top flow, whose
        inputs become the flow's inputs (named as in the file).
        """
        start = flow.get("start_node")
        if not isinstance(start, dict) or start.get("component_type") != "StartNode":
            raise AgentSpecError(f"{_describe(flow)} has no StartNode")
        nodes = [n for n in flow.get("nodes") or [] if isinstance(n, dict)]
        for node in nodes:
            if node.get("component_type") not in NODES:
                raise AgentSpecError(
                    f"{_describe(node)} in flow '{flow.get('name')}' is not supported: flowmagic imports "
                    f"{', '.join(NODES)}"
                )
        chain = self.chain(flow, start)
        edges = flow.get("data_flow_connections")
        incoming: dict[tuple[str, str], tuple[str, str]] = {}
        for edge in edges or []:
            if edge.get("component_type") != "DataFlowEdge":
                raise AgentSpecError(f"{_describe(edge)} is not supported as a data-flow connection")
            key = (edge["destination_node"]["id"], str(edge["destination_input"]))
            incoming[key] = (edge["source_node"]["id"], str(edge["source_output"]))
        produced: dict[tuple[str, str], str] = {}
        for prop in [*(start.get("outputs") or []), *(start.get("inputs") or [])]:
            title = str(prop.get("title"))
            if (start["id"], title) in produced:
                continue
            if env is not None and title in env:
                name = env[title]
            elif env is None:
                name = self.names.new(title)
                if "default" in prop:
                    self.namespace[name] = prop["default"]
            elif "default" in prop:
                name = self.constant(title, prop["default"])
            else:
                raise AgentSpecError(f"flow '{flow.get('name')}' needs input '{title}', which nothing gives it")
            produced[(start["id"], title)] = name
            self.schemas.setdefault(name, prop)
        items: list[Item] = []
        outputs: dict[str, str] = {}
        # title -> the (node id, title) that gave it last: no rescan of the nodes before for each input
        latest = {title: (node_id, title) for node_id, title in produced}
        for node in chain:
            declared: dict[Any, Any] = {}  # its inputs by title, the first of each
            for p in node.get("inputs") or []:
                if isinstance(p, dict):
                    declared.setdefault(p.get("title"), p)

            def value(title: str, node: Component = node, declared: dict[Any, Any] = declared) -> str:
                source = incoming.get((node["id"], title))
                if source is None and edges is None:  # no data-flow edges: match names, latest first
                    source = latest.get(title)
                if source is not None:
                    if source not in produced:
                        raise AgentSpecError(
                            f"{_describe(node)} reads '{source[1]}' from a node that has not run before it"
                        )
                    return produced[source]
                prop: dict[str, Any] = declared.get(title, {})
                if "default" in prop:
                    return self.constant(title, prop["default"])
                raise AgentSpecError(f"{_describe(node)}: nothing gives its input '{title}'")

            kind = node.get("component_type")
            if kind == "EndNode":
                outputs.update({t: value(t) for t in _titles(node.get("inputs") or node.get("outputs"))})
                break
            new = self.node(node, value)
            items.extend(new.items)
            props = {p.get("title"): p for p in node.get("outputs") or [] if isinstance(p, dict)}
            for title, name in new.outputs.items():
                produced[(node["id"], title)] = name
                latest[title] = (node["id"], title)
                self.schemas.setdefault(name, props.get(title, {}))
        return items, outputs

    def chain(self, flow: Component, start: Component) -> list[Component]:
        """The nodes after ``start``, in control-flow order (one path: no branching).

        Each is taken from the flow's ``nodes`` by its id, not from the edge: the
        bounds on the document count an edge's ends for their id only.
        """
        by_id = {n.get("id"): n for n in flow.get("nodes") or [] if isinstance(n, dict)}
        after: dict[str, Component] = {}
        for edge in flow.get("control_flow_connections") or []:
            source = edge["from_node"]
            if edge.get("from_branch") not in (None, "next"):
                raise AgentSpecError(
                    f"{_describe(source)} branches ('{edge['from_branch']}'): flowmagic imports "
                    "flows without BranchingNode"
                )
            if source["id"] in after and after[source["id"]]["id"] != edge["to_node"]["id"]:
                raise AgentSpecError(
                    f"{_describe(source)} has several next nodes: flowmagic imports one path "
                    "(with parallel nodes for what runs side by side)"
                )
            after[source["id"]] = edge["to_node"]
        chain: list[Component] = []
        visited = {start["id"]}
        node = after.get(start["id"])
        while node is not None:
            if node["id"] in visited:
                raise AgentSpecError(f"the control flow loops back to {_describe(node)}")
            if node["id"] not in by_id:
                raise AgentSpecError(f"{_describe(node)} is not one of the nodes of flow '{flow.get('name')}'")
            visited.add(node["id"])
            chain.append(by_id[node["id"]])
            node = after.get(node["id"])
        return chain

    # -- nodes -----------------------------------------------------------------------------------
    def node(self, node: Component, value: Callable[[str], str]) -> _Translated:
        kind = node.get("component_type")
        decorators = self.decorators(node)
        if kind in PARALLEL_NODES:
            return self.parallel(node, value)
        if kind == "FlowNode":
            inputs = {t: value(t) for t in _titles(node.get("inputs"))}
            items, outputs = self.flow(node["subflow"], inputs)
            return _Translated(items, {t: outputs[t] for t in _titles(node.get("outputs")) if t in outputs})
        if kind in MAP_NODES:
            return self.map(node, value, decorators)
        expr, titles = self.expression(node, value)
        return self.assign(node, expr, titles, decorators)

    def expression(self, node: Component, value: Callable[[str], str]) -> tuple[str, list[str]]:
        """The DSL expression of a tool, prompt or message node, and the titles of its outputs."""
        kind = node.get("component_type")
        self.no_mapping(node)
        if kind in TOOL_NODES:
            tool = node.get("tool") or {}
            if tool.get("component_type") != "ServerTool":
                raise AgentSpecError(
                    f"{_describe(node)} uses a {tool.get('component_type')!r}: flowmagic runs "
                    "ServerTool tools, from the tools it is given"
                )
            name = str(tool.get("name"))
            if name not in self.tools:
                given = ", ".join(sorted(self.tools)) or "none"
                raise AgentSpecError(
                    f"tool '{name}' of {_describe(node)} is not among the tools given (tools=...: {given})"
                )
            if name not in self.aliases:
                self.aliases[name] = alias = self.names.new(name)
                self.namespace[alias] = self.tools[name]
            args = []
            for title in _titles(node.get("inputs") or tool.get("inputs")):
                arg = value(title)
                args.append(
                    f"{title}={arg}"
                    if title.isidentifier() and not keyword.iskeyword(title)
                    else f"**{{{title!r}: {arg}}}"
                )
            return f"{self.aliases[name]}({', '.join(args)})", _titles(node.get("outputs") or tool.get("outputs"))
        if kind in LLM_NODES:
            if node.get("prompt_template_object"):
                raise AgentSpecError(f"{_describe(node)}: only prompt_template is supported, not its object")
            values = {t: value(t) for t in _titles(node.get("inputs"))}
            prompt, _ = _template(node.get("prompt_template"), node, values)
            outputs = node.get("outputs") or [{"title": "generated_text", "type": "string"}]
            if len(outputs) != 1 or outputs[0].get("type", "string") != "string":
                raise AgentSpecError(f"{_describe(node)}: structured output is not supported, only text")
            return f"llm({prompt!r}{self.llm_settings(node)})", _titles(outputs)
        if kind in MESSAGE_NODES:
            if node.get("rephrase"):
                raise AgentSpecError(f"{_describe(node)}: rephrasing a message with an LLM is not supported")
            template = node.get("message", node.get("message_template"))
            values = {t: value(t) for t in _titles(node.get("inputs"))}
            text, used = _template(template, node, values)
            return f"{text!r}.format({', '.join(f'{n}={n}' for n in used)})", _titles(node.get("outputs"))
        raise AgentSpecError(f"{_describe(node)} is not supported")  # pragma: no cover - checked in flow()

    def llm_settings(self, node: Component) -> str:
        """``, model='...', temperature=...`` from the node's LLM configuration (no model if one is given)."""
        config = node.get("llm_config") or {}
        out = ""
        if self.model is None:
            if config.get("component_type") not in LLM_CONFIGS:
                raise AgentSpecError(
                    f"{_describe(node)} uses a {config.get('component_type')!r} model configuration; flowmagic "
                    f"reaches {', '.join(LLM_CONFIGS)} (or pass model=... to use another model)"
                )
            model = config.get("model_id")
            if not isinstance(model, str) or not model:
                raise AgentSpecError(f"{_describe(node)}: its LLM configuration has no model_id")
            out = f", model={model!r}"
        generation = config.get("default_generation_parameters") or {}
        for key in ("temperature", "max_tokens"):
            setting = generation.get(key)
            if setting is not None:
                if isinstance(setting, bool) or not isinstance(setting, (int, float)):
                    raise AgentSpecError(f"{_describe(node)}: {key} must be a number, not {setting!r}")
                out += f", {key}={setting!r}"
        return out

    def assign(self, node: Component, expr: str, titles: list[str], decorators: str) -> _Translated:
        if len(titles) == 1:
            name = self.names.new(titles[0])
            return _Translated([_Line(f"{name} = {expr}", decorators)], {titles[0]: name})
        whole = self.names.new(str(node.get("name")) if not titles else f"{node.get('name')}_result")
        items: list[Item] = [_Line(f"{whole} = {expr}", decorators)]
        outputs: dict[str, str] = {}
        for title in titles:  # a tool with several outputs returns a dict of them
            outputs[title] = self.names.new(title)
            items.append(_Line(f"{outputs[title]} = {whole}[{title!r}]"))
        return _Translated(items, outputs)

    def parallel(self, node: Component, value: Callable[[str], str]) -> _Translated:
        self.no_mapping(node)
        subflows = node.get("subflows") if node.get("component_type") == "ParallelFlowNode" else node.get("flows")
        workers = node.get("max_workers") or (node.get("metadata") or {}).get("flowmagic", {}).get("workers")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise AgentSpecError(f"{_describe(node)}: max_workers must be a whole number of at least 1")
        inputs = {t: value(t) for t in _titles(node.get("inputs"))}
        branches: list[tuple[str, list[Item]]] = []
        outputs: dict[str, str] = {}
        for sub in subflows or []:
            items, outs = self.flow(sub, inputs)
            outputs.update(outs)
            if items:
                branches.append((self.names.new(str(sub.get("name"))), items))
        if len(branches) < 2:  # nothing runs side by side: no group
            return _Translated([i for _, b in branches for i in b], outputs)
        return _Translated([_Group(self.names.new(str(node.get("name"))), workers, branches)], outputs)

    def map(self, node: Component, value: Callable[[str], str], decorators: str) -> _Translated:
        self.no_mapping(node)
        extended = node.get("component_type") == "ExtendedParallelMapNode"
        sub = node.get("flow") if extended else node.get("subflow")
        if not isinstance(sub, dict) or not isinstance(sub.get("start_node"), dict):
            raise AgentSpecError(f"{_describe(node)} has no subflow")
        for method in (node.get("reducers") or {}).values():
            if method != "append":
                raise AgentSpecError(f"{_describe(node)}: the '{method}' reducer is not supported, only 'append'")
        inner = [n for n in sub.get("nodes") or [] if n.get("component_type") not in ("StartNode", "EndNode")]
        if len(inner) != 1 or inner[0].get("component_type") not in (*TOOL_NODES, *LLM_NODES):
            raise AgentSpecError(f"{_describe(node)}: flowmagic imports maps whose subflow is one tool or prompt")
        start = sub["start_node"]
        titles = _titles(start.get("inputs") or start.get("outputs"))
        loops: dict[str, str] = {}  # loop variable -> the DSL name of the list it runs over
        env: dict[str, str] = {}
        if extended:  # WayFlow: one list, "iterated_input"; unpack_input says which inner inputs get each element
            unpack = node.get("unpack_input") or {}
            over = value("iterated_input")
            for title in titles:
                if title not in unpack:
                    env[title] = value(title)
                    continue
                if unpack[title] != ".":
                    raise AgentSpecError(
                        f"{_describe(node)}: unpack_input {title!r}: {unpack[title]!r} is a query flowmagic "
                        "does not run; only '.' (the whole element) is supported"
                    )
                env[title] = loop = next(iter(loops), None) or self.names.new(title)
                loops[loop] = over
        else:  # Agent Spec: inputs "iterated_<name>"; lists are iterated (zipped), other values passed whole
            outer = {title: value(f"iterated_{title}") for title in titles}
            inner_props = {p.get("title"): p for p in start.get("inputs") or []}
            iterated = [t for t in titles if _is_list_of(self.schemas.get(outer[t], {}), inner_props.get(t, {}))]
            if not iterated and len(titles) == 1:  # untyped: the one input must be the list
                iterated = titles
            for title in titles:
                if title in iterated:
                    env[title] = loop = self.names.new(title)
                    loops[loop] = outer[title]
                else:
                    env[title] = outer[title]
        if not loops:
            raise AgentSpecError(f"{_describe(node)}: none of its inputs is a list to iterate over")
        body, outs = self.flow(sub, env)
        if len(body) != 1 or not isinstance(body[0], _Line) or len(outs) != 1:
            raise AgentSpecError(f"{_describe(node)}: flowmagic imports maps with one output")
        element_name, expr = body[0].text.split(" = ", 1)
        self.names.used.discard(element_name)
        (inner_title,) = outs
        title = inner_title if extended else f"collected_{inner_title}"
        name = self.names.new(inner_title)
        source = next(iter(loops.values())) if len(loops) == 1 else f"zip({', '.join(loops.values())})"
        line = _Line(f"{name} = [{expr} for {', '.join(loops)} in {source}]", decorators or body[0].decorators)
        return _Translated([line], {title: name})

    def no_mapping(self, node: Component) -> None:
        for key in ("input_mapping", "output_mapping"):
            if node.get(key):
                raise AgentSpecError(f"{_describe(node)}: a non-empty {key} is not supported")

    def decorators(self, node: Component) -> str:
        """``@retries(..)`` and friends from the flowmagic options an export keeps in metadata."""
        options = (node.get("metadata") or {}).get("flowmagic") or {}
        parts = []
        for key, setting in options.items():
            types = _OPTION_TYPES.get(key)
            if types is None:
                continue
            if not isinstance(setting, types) or (types is not bool and isinstance(setting, bool)):
                raise AgentSpecError(f"{_describe(node)}: flowmagic option {key}={setting!r} is not valid")
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


@dataclass
class _Translated:
    items: list[Item]
    outputs: dict[str, str]  # output title -> DSL name


def _render(items: list[Item], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if isinstance(item, _Line):
            if item.decorators:
                lines.append(pad + item.decorators)
            lines.append(pad + item.text)
            continue
        workers = f" (workers={item.workers})" if item.workers else ""
        lines.append(f"{pad}parallel {item.name}{workers}:")
        for name, body in item.branches:
            if len(body) == 1:
                lines.extend(_render(body, indent + 4))
            else:
                lines.append(f"{pad}    branch {name}:")
                lines.extend(_render(body, indent + 8))
    return lines
