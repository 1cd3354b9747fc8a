"""Run a directory of Agent Spec files in WayFlow and in flowmagic, and compare what they give.

    python tests/agentspec_corpus.py DIR [--wayflow-python PY] [--markdown]

DIR holds Agent Spec documents (``.json``, ``.yaml``, ``.yml``, in subdirectories too), e.g. the
flows of Agent Spec's and WayFlow's how-tos and examples; a ``MANIFEST.json`` there may name each
file's source (``{"files": {"relative/path": {"repo": ..., "path": ...}}}``). For each document
whose root is a flow or a node:

- WayFlow (in its own Python, ``--wayflow-python`` or ``FLOWMAGIC_WAYFLOW_PYTHON``) loads and runs it;
- flowmagic imports it (``Flow.from_agentspec``) and runs it;
- both runs get the same inputs, the same stub server tools (each returns a value of its declared
  type derived from its name and arguments), their LLM nodes the same local OpenAI-compatible
  server (``llm_server``: JSON for a schema asked for, in the request or in the prompt as WayFlow
  asks, else an echo of the prompt), and the same answer whenever the flow asks the user;
- WayFlow's outputs (what the flow's EndNode reads) must be what flowmagic's run gives under
  those names (a flowmagic run also holds the value of every other step).

One row per file: source, WayFlow runs?, flowmagic imports?, runs?, same outputs?, and why not
(the error, or the components outside those flowmagic imports).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANSWER = "Ada"  # what the user answers when a flow asks
ASKED_IN_PROMPT = r"valid against this JSON schema:\s*(\{.*\})\s*$"
SUFFIXES = (".json", ".yaml", ".yml")
# the nodes this check is about (flowmagic imports these and the components they use below)
NODES = {
    *("Flow", "ExtendedFlow", "StartNode", "EndNode", "LlmNode", "ExtendedLlmNode", "ToolNode", "ExtendedToolNode"),
    *("ParallelFlowNode", "ExtendedParallelFlowNode", "MapNode", "ParallelMapNode", "ExtendedMapNode"),
    *("ExtendedParallelMapNode", "FlowNode", "BranchingNode", "InputMessageNode", "PluginInputMessageNode"),
    *("OutputMessageNode", "PluginOutputMessageNode"),
}
PARTS = {"ControlFlowEdge", "DataFlowEdge", "ServerTool", "PluginConstantContextProvider"}
LLM_CONFIGS = {"OpenAiConfig", "OpenAiCompatibleConfig", "VllmConfig", "OllamaConfig", "OciGenAiConfig"}


# -- shared by both runtimes (stdlib only: this file also runs in WayFlow's Python) -------------------
def sample(schema: dict[str, Any], seed: str) -> Any:
    """A value of the JSON ``schema``'s type, derived from ``seed``."""
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if "anyOf" in schema:
        return sample(next(s for s in schema["anyOf"] if s.get("type") != "null"), seed)
    if kind == "array":
        return [sample(schema.get("items") or {}, f"{seed}[{i}]") for i in range(2)]
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: sample(v, f"{seed}.{k}") for k, v in props.items()} if props else {"value": seed}
    scalars: dict[str, Any] = {"integer": len(seed), "number": len(seed) / 2, "boolean": True, "null": None}
    return scalars.get(str(kind), seed)


def stub(name: str, outputs: list[dict[str, Any]]) -> Callable[..., Any]:
    """A server tool that returns values of its outputs' types derived from its name and arguments."""

    def tool(**kwargs: Any) -> Any:
        args = (f"{k}={json.dumps(v, sort_keys=True, default=str)}" for k, v in sorted(kwargs.items()))
        seed = f"{name}({', '.join(args)})"
        if len(outputs) == 1:
            return sample(outputs[0], seed)
        return {str(o.get("title")): sample(o, f"{seed}.{o.get('title')}") for o in outputs}

    tool.__name__ = name
    return tool


def wayflow_worker() -> None:
    """Run one job (JSON on stdin) in WayFlow and print its outputs, or its error, as JSON."""
    job = json.loads(sys.stdin.read())
    try:
        from wayflowcore.agentspec import AgentSpecLoader
        from wayflowcore.executors.executionstatus import FinishedStatus, UserMessageRequestStatus
        from wayflowcore.flow import Flow
        from wayflowcore.steps.step import Step

        tools = {name: stub(name, outputs) for name, outputs in job["tools"].items()}
        loader = AgentSpecLoader(tool_registry=tools)
        text = job["text"]
        component = loader.load_json(text) if text.lstrip().startswith("{") else loader.load_yaml(text)
        if isinstance(component, Step):
            component = Flow.from_steps([component])
        conversation = component.start_conversation(inputs=job["inputs"])
        status = conversation.execute()
        for _ in range(10):
            if not isinstance(status, UserMessageRequestStatus):
                break
            conversation.append_user_message(ANSWER)
            status = conversation.execute()
        if not isinstance(status, FinishedStatus):
            raise RuntimeError(f"the conversation ended with {type(status).__name__}")
        print(json.dumps({"outputs": status.output_values}, default=str))
    except Exception as exc:  # the row says why
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))


# -- the document --------------------------------------------------------------------------------------
def components(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict) and "component_type" in value:
        yield value
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else []:
        yield from components(item)


def outside(document: dict[str, Any]) -> list[str]:
    """The components of the document outside those this check is about."""
    kinds = {str(c["component_type"]) for c in components(document)}
    return sorted(k for k in kinds - NODES - PARTS - LLM_CONFIGS if not k.endswith("Property"))


def pointed_at(document: Any, url: str) -> Any:
    """The document with every LLM configuration an OpenAI-compatible one on ``url`` (same model name)."""
    if isinstance(document, list):
        return [pointed_at(item, url) for item in document]
    if not isinstance(document, dict):
        return document
    if document.get("component_type") in LLM_CONFIGS:
        keep = ("id", "name", "description", "metadata", "default_generation_parameters")
        return {"component_type": "OpenAiCompatibleConfig", **{k: document.get(k) for k in keep}, "url": url,
                "model_id": document.get("model_id") or "model"}  # fmt: skip
    return {key: pointed_at(item, url) for key, item in document.items()}


def root_inputs(document: dict[str, Any]) -> dict[str, Any]:
    """A value for each input of the flow (or node) that has no default."""
    return {str(p["title"]): sample(p, str(p["title"])) for p in document.get("inputs") or [] if "default" not in p}


def server_tools(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {str(c["name"]): c.get("outputs") or [] for c in components(document) if c["component_type"] == "ServerTool"}


# -- the two runs ------------------------------------------------------------------------------------
@dataclass
class Row:
    source: str
    wayflow: str = "-"
    imports: str = "-"
    runs: str = "-"
    same: str = "-"
    why: str = ""
    outside: tuple[str, ...] = ()  # the components outside those this check is about


def yes(true: bool) -> str:
    return "yes" if true else "no"


def short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def in_wayflow(python: str, job: dict[str, Any]) -> dict[str, Any]:
    command = [python, __file__, "--wayflow-worker"]
    try:
        done = subprocess.run(command, input=json.dumps(job), capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return {"error": "no answer within 180 s"}
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {"error": short(done.stderr[-600:]) or "no output"}


def in_flowmagic(text: str, tools: dict[str, list[dict[str, Any]]], inputs: dict[str, Any]) -> dict[str, Any]:
    from flowmagic import Flow
    from flowmagic.interop.agentspec import import_source

    given = {name: stub(name, outputs) for name, outputs in tools.items()}
    try:
        flow = Flow.from_agentspec(text, tools=given, cache=False)
    except Exception as exc:
        return {"refused": f"{type(exc).__name__}: {exc}"}
    _, namespace, _ = import_source(text, given)
    asked = {n: ANSWER for n in flow.inputs if n not in inputs and n not in namespace}  # the user's answers
    try:
        run = flow.run(**inputs, **asked)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    if run.status != "succeeded":
        return {"error": short(run.summary(), 400)}
    return {"outputs": dict(run.outputs)}


def difference(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """The first of WayFlow's outputs (what its EndNode reads) that flowmagic's run does not give the
    same under that name (a flowmagic run holds every step's value)."""
    ours, theirs = (json.loads(json.dumps(d, sort_keys=True, default=str)) for d in (ours, theirs))
    for key in sorted(theirs):
        if key not in ours or ours[key] != theirs[key]:
            return f"{key}: WayFlow {short(json.dumps(theirs[key]), 90)}, here {short(json.dumps(ours.get(key)), 90)}"
    return ""


def check(path: Path, source: str, document: dict[str, Any], python: str, url: str) -> Row:
    """The row of one document: WayFlow runs it (its LLMs pointed at ``url``), then flowmagic."""
    tools, inputs = server_tools(document), root_inputs(document)
    theirs = in_wayflow(python, {"text": json.dumps(pointed_at(document, url)), "tools": tools, "inputs": inputs})
    ours = in_flowmagic(path.read_text(), tools, inputs)
    row = Row(source, yes("error" not in theirs), yes("refused" not in ours), outside=tuple(outside(document)))
    reasons = [f"uses {', '.join(row.outside)}"] if row.outside else []
    reasons += [f"WayFlow: {short(theirs['error'])}"] if "error" in theirs else []
    if "refused" not in ours:
        row.runs = yes("outputs" in ours)
    if "outputs" not in ours:
        reasons.append(f"flowmagic: {short(ours.get('refused') or ours.get('error') or '')}")
    elif "outputs" in theirs:
        mismatch = difference(ours["outputs"], theirs["outputs"])
        row.same = yes(not mismatch)
        reasons += [mismatch] if mismatch else []
    row.why = "; ".join(reasons)
    return row


def answer(body: dict[str, Any]) -> str:
    """The local server's answer: JSON for a requested schema, else an echo of the last user message's text."""
    from llm_server import example_for

    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return json.dumps(example_for(response_format["json_schema"]["schema"]))
    user = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = user[-1].get("content", "") if user else ""
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    asked = re.search(ASKED_IN_PROMPT, content, re.DOTALL)  # a schema asked for in the prompt (WayFlow's way)
    if asked:
        return f"<final_answer>{json.dumps(example_for(json.loads(asked.group(1))))}</final_answer>"
    return f"echo: {content}"


# -- the table ----------------------------------------------------------------------------------------
def documents(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    import yaml

    for path in sorted(p for p in folder.rglob("*") if p.suffix in SUFFIXES and p.name != "MANIFEST.json"):
        text = path.read_text()
        try:
            document = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError):
            document = None
        yield path, document if isinstance(document, dict) and "component_type" in document else {}


def sources(folder: Path) -> dict[str, str]:
    manifest = folder / "MANIFEST.json"
    if not manifest.exists():
        return {}
    files = json.loads(manifest.read_text()).get("files", {})
    return {name: f"{entry.get('repo', '')}:{entry.get('path', name)}" for name, entry in files.items()}


def table(rows: list[Row], markdown: bool) -> str:
    head = ("source", "WayFlow runs", "flowmagic imports", "runs", "same outputs", "why not")
    cells = [head, *[(r.source, r.wayflow, r.imports, r.runs, r.same, r.why) for r in rows]]
    if markdown:
        lines = ["| " + " | ".join(c.replace("|", "\\|") for c in cell) + " |" for cell in cells]
        return "\n".join([lines[0], "|" + "---|" * len(head), *lines[1:]])
    return "\n".join("\t".join(cell) for cell in cells)


def summary(rows: list[Row]) -> str:
    runs = [r for r in rows if r.wayflow == "yes"]
    named = [r for r in runs if not r.outside]
    n = {column: sum(getattr(r, column) == "yes" for r in named) for column in ("imports", "runs", "same")}
    return (
        f"{len(rows)} files; WayFlow runs {len(runs)}; {len(named)} of those use only the named components: "
        f"flowmagic imports {n['imports']}, runs {n['runs']}, gives WayFlow's outputs for {n['same']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, metavar="DIR", help="a directory of Agent Spec files")
    parser.add_argument("--wayflow-python", default=os.environ.get("FLOWMAGIC_WAYFLOW_PYTHON"))
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    if not args.wayflow_python:
        parser.error("name a Python that has wayflowcore: --wayflow-python PY (or FLOWMAGIC_WAYFLOW_PYTHON)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from llm_server import LLMServer

    names = sources(args.folder)
    rows: list[Row] = []
    with LLMServer(answer=answer) as server:
        os.environ.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="sk-local")
        for path, document in documents(args.folder):
            source = names.get(path.relative_to(args.folder).as_posix(), path.name)
            if not document:
                rows.append(Row(source, why="not an Agent Spec document whose root is a component"))
                continue
            rows.append(check(path, source, document, args.wayflow_python, server.base_url.removesuffix("/v1")))
            print(f"{source}: {rows[-1].why or 'same outputs'}", file=sys.stderr)
    print(table(rows, args.markdown))
    print("\n" + summary(rows))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--wayflow-worker"]:
        wayflow_worker()
    else:
        sys.exit(main())
