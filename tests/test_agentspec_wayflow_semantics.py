"""Agent Spec files run here as WayFlow runs them, and exports keep their worker limits in WayFlow.

Each kind of node and rename comes in a file written by someone else: built with ``pyagentspec``,
or built and exported by ``wayflowcore`` itself (its map steps, its flow builder's how-to, its
map-reduce how-to with a renamed prompt, a renamed tool step, a flow that asks the user, a flow
with a context provider, a step alone, a plain map node it loads and exports again). WayFlow runs
each file it exports, and flowmagic imports the same file and runs it to the same outputs, with
the same concurrency: how many elements or branches ran at once, counted from the recorded start
and end of each (flowmagic's step records; in WayFlow, the tools' own records, or the arrival of
each request at the local LLM server, which answers each after the same delay). Prompts go to that
server in both, which echoes the text of the last user message, so LLM outputs compare too.

The other way, flowmagic's exports with a ``parallel (workers=N)`` limit around a group or a map,
and the README's soundtrack and marketing flows, load in ``pyagentspec`` and run in WayFlow with
the limits they have here. WayFlow runs in its own virtual environment (see ``test_agentspec``).
"""

from __future__ import annotations

import itertools
import json
import runpy
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer
from pyagentspec.flows.edges import ControlFlowEdge, DataFlowEdge
from pyagentspec.flows.flow import Flow as SpecFlow
from pyagentspec.flows.nodes import (
    EndNode,
    InputMessageNode,
    LlmNode,
    MapNode,
    ParallelFlowNode,
    ParallelMapNode,
    StartNode,
    ToolNode,
)
from pyagentspec.llms import OpenAiConfig
from pyagentspec.property import ListProperty, StringProperty
from pyagentspec.serialization import AgentSpecSerializer
from pyagentspec.tools import ServerTool
from test_agentspec import components, load, nodes_of, wayflow
from test_agentspec import wayflow_python as wayflow_python  # a fixture

from flowmagic import Flow, Run
from flowmagic.errors import FlowDefinitionError
from flowmagic.interop.agentspec import AgentSpecError

ROOT = Path(__file__).resolve().parents[1]
SHOUT_SECONDS = 0.2
WORDS = ["tea", "cake", "jam", "scone", "milk", "honey"]


def shout(word: str) -> str:
    """Shout a word (slowly, so that what runs at once shows)."""
    time.sleep(SHOUT_SECONDS)
    return word.upper()


def at_once(spans: Iterable[tuple[float, float]]) -> int:
    """The most spans running at the same time (each from its start up to its end)."""
    spans = sorted(spans)
    return max((sum(1 for start, end in spans if start <= t < end) for t, _ in spans), default=0)


def steps_at_once(run: Run, names: Iterable[str]) -> int:
    return at_once((run.steps[n].started or 0, run.steps[n].finished or 0) for n in names)


def elements_at_once(run: Run, step: str) -> int:
    """How many elements of the map ``step`` ran at once."""
    return steps_at_once(run, [n for n, record in run.steps.items() if record.map == step])


def echo(body: dict[str, Any]) -> str:
    """The local server's answer: the text of the last user message (WayFlow sends it in parts)."""
    user = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = user[-1].get("content", "") if user else ""
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return f"echo: {content}"


def kinds(text: str) -> set[str]:
    return {c["component_type"] for c in components(json.loads(text))}


def chain(name: str, nodes: list[Any], data: list[tuple[Any, str, Any, str]]) -> SpecFlow:
    """A pyagentspec flow of ``nodes`` one after another, with these data edges."""
    return SpecFlow(
        name=name,
        start_node=nodes[0],
        nodes=nodes,
        control_flow_connections=[
            ControlFlowEdge(name=f"{a.name} -> {b.name}", from_node=a, to_node=b) for a, b in itertools.pairwise(nodes)
        ],
        data_flow_connections=[
            DataFlowEdge(name=f"{o} -> {i}", source_node=a, source_output=o, destination_node=b, destination_input=i)
            for a, o, b, i in data
        ],
    )


def shouting(map_kind: type[MapNode] | type[ParallelMapNode]) -> str:
    """A flow that shouts each of its ``words`` in a map node of ``map_kind``, written with pyagentspec."""
    word, loud = StringProperty(title="word"), StringProperty(title="loud")
    start, end = StartNode(name="start", inputs=[word]), EndNode(name="end", outputs=[loud])
    tool = ToolNode(name="shout", tool=ServerTool(name="shout", inputs=[word], outputs=[loud]))
    one = chain("one word", [start, tool, end], [(start, "word", tool, "word"), (tool, "loud", end, "loud")])
    each = map_kind(name="each", subflow=one)
    words, louds = ListProperty(title="words", item_type=word), ListProperty(title="collected_loud", item_type=loud)
    start, end = StartNode(name="start", inputs=[words]), EndNode(name="end", outputs=[louds])
    top = chain(
        "shouting",
        [start, each, end],
        [(start, "words", each, "iterated_word"), (each, "collected_loud", end, "collected_loud")],
    )
    return AgentSpecSerializer().to_json(top)


# -- files written with pyagentspec --------------------------------------------------------------
def test_a_map_node_runs_one_element_at_a_time_and_a_parallel_map_node_all_at_once() -> None:
    sequential = Flow.from_agentspec(shouting(MapNode), tools={"shout": shout})
    assert sequential.source.splitlines() == [
        "parallel (workers=1):",
        "    collected_loud = [shout(word=word) for word in words]",
    ]
    run = sequential.run(words=WORDS)
    assert run["collected_loud"] == [w.upper() for w in WORDS]
    assert elements_at_once(run, "collected_loud") == 1
    side_by_side = Flow.from_agentspec(shouting(ParallelMapNode), tools={"shout": shout})
    run = side_by_side.run(words=WORDS)
    assert run["collected_loud"] == [w.upper() for w in WORDS]
    assert elements_at_once(run, "collected_loud") == len(WORDS)


def test_the_output_of_a_flow_is_what_its_end_node_reads() -> None:
    # two tools give "message"; the EndNode reads the second's, or the first's
    message = StringProperty(title="message")
    first = ToolNode(name="greet", tool=ServerTool(name="say_hello", inputs=[], outputs=[message]))
    second = ToolNode(name="reply", tool=ServerTool(name="say_world", inputs=[], outputs=[message]))
    tools = {"say_hello": lambda: "Say hello", "say_world": lambda: "Say world"}
    for source, said in ((second, "Say world"), (first, "Say hello")):
        start, end = StartNode(name="start"), EndNode(name="end", outputs=[message])
        spec = chain("two messages", [start, first, second, end], [(source, "message", end, "message")])
        flow = Flow.from_agentspec(AgentSpecSerializer().to_json(spec), tools=tools)
        assert flow.run()["message"] == said


def test_an_input_message_node_is_an_input_of_the_flow_named_in_the_error_when_missing() -> None:
    ask = InputMessageNode(name="ask", message="Which word?")
    word, loud = StringProperty(title="word"), StringProperty(title="loud")
    tool = ToolNode(name="shout", tool=ServerTool(name="shout", inputs=[word], outputs=[loud]))
    start, end = StartNode(name="start"), EndNode(name="end", outputs=[loud])
    spec = chain("asking", [start, ask, tool, end], [(ask, "user_input", tool, "word"), (tool, "loud", end, "loud")])
    flow = Flow.from_agentspec(AgentSpecSerializer().to_json(spec), tools={"shout": shout})
    assert [n for n in flow.inputs if n != "shout"] == ["user_input"]  # the tool is read too
    with pytest.raises(FlowDefinitionError, match="name 'user_input' is not defined"):
        flow.run()
    assert flow.run(user_input="tea")["loud"] == "TEA"


def test_a_single_node_imports_as_a_flow_of_one_step() -> None:
    llm = LlmNode(
        name="hello", llm_config=OpenAiConfig(name="m", model_id="gpt-4o-mini"), prompt_template="Say hi to {{name}}"
    )
    flow = Flow.from_agentspec(AgentSpecSerializer().to_json(llm), model="offline")
    assert flow.source == "generated_text = llm('Say hi to {name}')\n"
    run = flow.run(name="Ada")
    assert run.steps["generated_text"].llm["prompt"] == "Say hi to Ada"
    word, loud = StringProperty(title="word"), StringProperty(title="loud")
    tool = ToolNode(name="shout", tool=ServerTool(name="shout", inputs=[word], outputs=[loud]))
    assert (
        Flow.from_agentspec(AgentSpecSerializer().to_json(tool), tools={"shout": shout}).run(word="tea")["loud"]
        == "TEA"
    )


def test_an_unsupported_node_is_named_before_a_reference_the_file_leaves_to_its_runtime() -> None:
    document = json.loads(shouting(ParallelMapNode))
    query = {
        "component_type": "PluginDatastoreQueryNode",
        "id": "query",
        "name": "look up",
        "datastore": {"component_type": "PluginOracleDatabaseDatastore", "id": "db", "name": "db",
                      "connection_config": {"$component_ref": "oracle_user"}},
    }  # fmt: skip
    document["$referenced_components"]["query"] = query
    document["nodes"].append({"$component_ref": "query"})
    with pytest.raises(AgentSpecError, match="PluginDatastoreQueryNode 'look up' in flow 'shouting' is not supported"):
        Flow.from_agentspec(json.dumps(document), tools={"shout": shout})
    document["nodes"].pop()
    del document["$referenced_components"]["query"]
    document["nodes"].append({"$component_ref": "oracle_user"})  # no unsupported node: the reference is the error
    with pytest.raises(AgentSpecError, match="refers to component 'oracle_user', which it does not define"):
        Flow.from_agentspec(json.dumps(document), tools={"shout": shout})


def test_renames_on_a_node_read_and_give_the_flows_names() -> None:
    # a ToolNode written with pyagentspec, given WayFlow's renames: it reads "text", gives "shouted"
    word, loud = StringProperty(title="word"), StringProperty(title="loud")
    tool = ToolNode(name="shout", tool=ServerTool(name="shout", inputs=[word], outputs=[loud]))
    document = json.loads(AgentSpecSerializer().to_json(tool))
    document.update(
        input_mapping={"word": "text"},
        output_mapping={"loud": "shouted"},
        inputs=[{"title": "text", "type": "string"}],
        outputs=[{"title": "shouted", "type": "string"}],
    )
    flow = Flow.from_agentspec(json.dumps(document), tools={"shout": shout})
    assert flow.source == "shouted = shout(word=text)\n"
    assert flow.run(text="tea")["shouted"] == "TEA"
    document["output_mapping"] = {"loud": 3}
    with pytest.raises(AgentSpecError, match="its output_mapping must map names to names"):
        Flow.from_agentspec(json.dumps(document), tools={"shout": shout})


# -- files built and exported by WayFlow ---------------------------------------------------------
# WayFlow's flows, built with its API: each exported, loaded from that export and run; its tools record
# when they ran (the map steps), a question to the user is answered "Ada"
WAYFLOW_BUILT = '''
import json, os, sys, time
from wayflowcore.agentspec import AgentSpecExporter, AgentSpecLoader
from wayflowcore.contextproviders import ConstantContextProvider
from wayflowcore.controlconnection import ControlFlowEdge
from wayflowcore.dataconnection import DataFlowEdge
from wayflowcore.executors.executionstatus import UserMessageRequestStatus
from wayflowcore.flow import Flow
from wayflowcore.flowbuilder import FlowBuilder
from wayflowcore.models import OpenAICompatibleModel
from wayflowcore.property import IntegerProperty, ListProperty, StringProperty
from wayflowcore.steps import (
    InputMessageStep, MapStep, OutputMessageStep, ParallelMapStep, PromptExecutionStep, StartStep, ToolExecutionStep,
)
from wayflowcore.tools.toolhelpers import DescriptionMode, tool
from wayflowcore.variable import Variable

SLEEP = float(os.environ["SHOUT_SECONDS"])
TIMES = []


def shout_word(word: str) -> str:
    began = time.time()
    time.sleep(SLEEP)
    TIMES.append((began, time.time()))
    return word.upper()


@tool(description_mode=DescriptionMode.ONLY_DOCSTRING, output_descriptors=[StringProperty(name="loud")])
def shout(word: str) -> str:
    """Shout a word"""
    return shout_word(word)


def shout_flow():
    return Flow.from_steps([ToolExecutionStep(name="shout_step", tool=shout)])


over = dict(
    unpack_input={"word": "."},
    output_descriptors=[ListProperty(name="loud", item_type=StringProperty())],
    input_descriptors=[ListProperty(MapStep.ITERATED_INPUT, item_type=StringProperty())],
)
WORDS = {"iterated_input": ["tea", "cake", "jam", "scone", "milk", "honey"]}
built = {
    "map_sequential": (Flow.from_steps([MapStep(name="each", flow=shout_flow(), **over)]), WORDS),
    "map_parallel_2": (
        Flow.from_steps([MapStep(name="each", flow=shout_flow(), parallel_execution=True, max_workers=2, **over)]),
        WORDS,
    ),
    "parallel_map_3": (
        Flow.from_steps([ParallelMapStep(name="each", flow=shout_flow(), max_workers=3, **over)]),
        WORDS,
    ),
}
# its how-to "build flows with the flow builder": two messages, both giving output_message
greet = OutputMessageStep(name="greet", message_template="Say hello")
reply = OutputMessageStep(name="reply", message_template="Say world")
built["flowbuilder"] = (FlowBuilder.build_linear_flow([greet, reply]), {})
# its how-to "map and reduce": a prompt renamed by output_mapping, mapped over articles in parallel
llm = OpenAICompatibleModel(model_id="echo-model", base_url=os.environ["LLM_URL"])
start = StartStep(name="start_step", input_descriptors=[StringProperty("article")])
summarize = PromptExecutionStep(
    name="summarize_step",
    llm=llm,
    prompt_template="Summarize this article in 10 words:\\n {{article}}",
    output_mapping={PromptExecutionStep.OUTPUT: "summary"},
)
summarize_flow = Flow(
    begin_step=start,
    control_flow_edges=[ControlFlowEdge(start, summarize), ControlFlowEdge(summarize, None)],
    data_flow_edges=[DataFlowEdge(start, "article", summarize, "article")],
)
articles = StartStep(name="start_step", input_descriptors=[ListProperty("articles", item_type=StringProperty())])
summaries = MapStep(
    name="map_step",
    flow=summarize_flow,
    unpack_input={"article": "."},
    output_descriptors=[ListProperty(name="summary", item_type=StringProperty())],
    input_descriptors=[ListProperty(MapStep.ITERATED_INPUT, item_type=StringProperty())],
    parallel_execution=True,
)
built["summaries"] = (
    Flow(
        begin_step=articles,
        control_flow_edges=[ControlFlowEdge(articles, summaries), ControlFlowEdge(summaries, None)],
        data_flow_edges=[DataFlowEdge(articles, "articles", summaries, MapStep.ITERATED_INPUT)],
    ),
    {"articles": ["Sea turtles are ancient reptiles.", "Dolphins live in pods."]},
)
# a tool step with its input and output renamed
renamed = ToolExecutionStep(
    name="shout_renamed", tool=shout, input_mapping={"word": "text"}, output_mapping={"loud": "shouted"}
)
built["tool_renamed"] = (Flow.from_steps([renamed]), {"text": "tea"})
# a flow that asks the user, then greets them
ask = InputMessageStep(name="ask", message_template="What is your name?")
hello = OutputMessageStep(name="hello", message_template="Hello {{user_provided_input}}")
built["ask"] = (Flow.from_steps([ask, hello]), {})
# a flow with a context provider and state: WayFlow exports it as an ExtendedFlow
greeting = ConstantContextProvider(value="Bonjour", output_description=StringProperty("greeting"), name="greeting")
start = StartStep(name="start", input_descriptors=[StringProperty("name")])
say = OutputMessageStep(name="say", message_template="{{greeting}}, {{name}}!")
built["extended_flow"] = (
    Flow(
        begin_step=start,
        control_flow_edges=[ControlFlowEdge(start, say), ControlFlowEdge(say, None)],
        data_flow_edges=[DataFlowEdge(start, "name", say, "name"), DataFlowEdge(greeting, "greeting", say, "greeting")],
        context_providers=[greeting],
        variables=[Variable(name="visits", type=IntegerProperty(), default_value=0)],
    ),
    {"name": "Ada"},
)

exporter = AgentSpecExporter()
loader = AgentSpecLoader(tool_registry={"shout": shout_word})
out = {}


def run(name, text, runnable, inputs):
    TIMES.clear()
    conversation = runnable.start_conversation(inputs=inputs)
    status = conversation.execute()
    if isinstance(status, UserMessageRequestStatus):  # the flow asks: answer it
        conversation.append_user_message("Ada")
        status = conversation.execute()
    spans = sorted(TIMES)
    at_once = max((sum(1 for s, e in spans if s <= t < e) for t, _ in spans), default=0)
    out[name] = {"text": text, "outputs": status.output_values, "at_once": at_once}


for name, (flow, inputs) in built.items():
    text = exporter.to_json(flow)
    run(name, text, loader.load_json(text), inputs)
# its parallel MapStep's export, made sequential by its parallel_execution
document = json.loads(out["map_parallel_2"]["text"])
for component in document["$referenced_components"].values():
    if component["component_type"] == "ExtendedMapNode":
        component.update(parallel_execution=False, max_workers=None)
text = json.dumps(document)
run("map_sequential_extended", text, loader.load_json(text), WORDS)
# one step alone: WayFlow exports the step itself, and runs it as a flow of that step
text = exporter.to_json(summarize)
run("prompt_root", text, Flow.from_steps([loader.load_json(text)]), {"article": "Manatees are sea cows."})
# a plain ParallelMapNode, written with pyagentspec (given on stdin), that WayFlow loads and exports again
text = exporter.to_json(loader.load_json(sys.stdin.read()))
run("reexported_map", text, loader.load_json(text), {"words": ["tea", "cake", "jam"]})
print(json.dumps(out, default=str))
'''


@pytest.fixture(scope="module")
def built(wayflow_python: str) -> Any:
    """WayFlow's own flows, exported by WayFlow and run by WayFlow from that export: text, outputs, at_once."""
    with LLMServer(answer=echo) as server:
        host, port = server.address
        env = {"SHOUT_SECONDS": str(SHOUT_SECONDS), "LLM_URL": f"http://{host}:{port}", "OPENAI_API_KEY": "sk-local"}
        plain_map = shouting(ParallelMapNode)
        yield json.loads(wayflow(wayflow_python, WAYFLOW_BUILT, stdin=plain_map, env=env)), server


def run_here(document: str, monkeypatch: pytest.MonkeyPatch, server: LLMServer, **inputs: Any) -> tuple[Flow, Run]:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # prompts go to the server WayFlow used
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    flow = Flow.from_agentspec(document, tools={"shout": shout}, cache=False)
    run = flow.run(**inputs)
    assert run.status == "succeeded", run.summary()
    return flow, run


@pytest.mark.timeout(1500)  # the first use creates wayflowcore's environment
@pytest.mark.parametrize(
    ("name", "kind", "workers"),
    [("map_sequential", "MapNode", 1), ("map_sequential_extended", "ExtendedMapNode", 1),
     ("map_parallel_2", "ExtendedMapNode", 2), ("parallel_map_3", "ExtendedParallelMapNode", 3)],
)  # fmt: skip
def test_wayflows_map_steps_run_as_many_elements_at_once_as_in_wayflow(
    built: Any, monkeypatch: pytest.MonkeyPatch, name: str, kind: str, workers: int
) -> None:
    documents, server = built
    wayflows = documents[name]
    assert kind in kinds(wayflows["text"])
    flow, run = run_here(wayflows["text"], monkeypatch, server, iterated_input=WORDS)
    assert run.outputs == wayflows["outputs"] == {"loud": [w.upper() for w in WORDS]}
    assert elements_at_once(run, "loud") == wayflows["at_once"] == workers
    (group,) = flow.groups.values()
    assert group.workers == workers


@pytest.mark.timeout(1500)
def test_wayflows_flow_builder_howto_gives_the_value_its_end_node_reads(
    built: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents, server = built
    wayflows = documents["flowbuilder"]
    _, run = run_here(wayflows["text"], monkeypatch, server)
    assert run["output_message"] == wayflows["outputs"]["output_message"] == "Say world"
    assert run["output_message_2"] == "Say hello"  # the first message, under a name of its own


@pytest.mark.timeout(1500)
def test_wayflows_renamed_prompt_tool_and_map_run_to_wayflows_outputs(
    built: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents, server = built
    # its map-reduce how-to: an ExtendedLlmNode whose "output" is renamed "summary", mapped in parallel
    wayflows = documents["summaries"]
    assert {"ExtendedMapNode", "ExtendedLlmNode"} <= kinds(wayflows["text"])
    articles = ["Sea turtles are ancient reptiles.", "Dolphins live in pods."]
    _, run = run_here(wayflows["text"], monkeypatch, server, articles=articles)
    assert run["summary"] == wayflows["outputs"]["summary"]
    assert run["summary"][0] == "echo: Summarize this article in 10 words:\n Sea turtles are ancient reptiles."
    # a tool step that reads "text" and gives "shouted"
    wayflows = documents["tool_renamed"]
    _, run = run_here(wayflows["text"], monkeypatch, server, text="tea")
    assert run["shouted"] == wayflows["outputs"]["shouted"] == "TEA"
    # a plain ParallelMapNode WayFlow loads and exports again, with input_mapping and output_mapping
    wayflows = documents["reexported_map"]
    mapping = next(c for c in components(json.loads(wayflows["text"])) if c["component_type"].endswith("MapNode"))
    assert mapping["input_mapping"] and mapping["output_mapping"]
    _, run = run_here(wayflows["text"], monkeypatch, server, words=WORDS[:3])
    assert run["collected_loud"] == wayflows["outputs"]["collected_loud"] == ["TEA", "CAKE", "JAM"]
    assert elements_at_once(run, "collected_loud") == wayflows["at_once"] == 3


@pytest.mark.timeout(1500)
def test_wayflows_extended_flow_a_step_alone_and_a_question_to_the_user(
    built: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents, server = built
    # a flow with a constant context provider and state: an ExtendedFlow at the root
    wayflows = documents["extended_flow"]
    assert json.loads(wayflows["text"])["component_type"] == "ExtendedFlow"
    _, run = run_here(wayflows["text"], monkeypatch, server, name="Ada")
    assert run["output_message"] == wayflows["outputs"]["output_message"] == "Bonjour, Ada!"
    # one step exported alone: its node at the root, a flow of one step
    wayflows = documents["prompt_root"]
    assert json.loads(wayflows["text"])["component_type"] == "ExtendedLlmNode"
    _, run = run_here(wayflows["text"], monkeypatch, server, article="Manatees are sea cows.")
    assert run["summary"] == wayflows["outputs"]["summary"]
    # WayFlow asks the user (answered "Ada"); here the answer is an input of the flow, which the flow gives
    # back (its EndNode reads it): a step of that name passes on the input named for it
    wayflows = documents["ask"]
    assert "PluginInputMessageNode" in kinds(wayflows["text"])
    flow = Flow.from_agentspec(wayflows["text"])
    with pytest.raises(FlowDefinitionError, match="name 'user_provided_input_answer' is not defined"):
        flow.run()
    run = flow.run(user_provided_input_answer="Ada")
    assert {name: run[name] for name in wayflows["outputs"]} == wayflows["outputs"]
    assert wayflows["outputs"] == {"user_provided_input": "Ada", "output_message": "Hello Ada"}


# -- exports WayFlow runs with flowmagic's limits -------------------------------------------------
MARKETING_FLOW = (ROOT / "examples" / "marketing.flow").read_text()
MARKETING_TOOLS = ROOT / "examples" / "marketing_tools.py"
SOUNDTRACK_FLOW = (ROOT / "examples" / "soundtrack.flow").read_text()
LOOKUPS = ["user_info", "current_time", "user_purchases", "items_on_sale"]


def marketing_tools() -> dict[str, Any]:
    found = runpy.run_path(str(MARKETING_TOOLS))
    return {name: fn for name, fn in found.items() if name.startswith("get_")}


LIMITED = {
    "group of 2": ("lookups", MARKETING_FLOW.replace("parallel lookups:", "parallel lookups (workers=2):")),
    "map of 2": ("loud", "parallel (workers=2):\n    loud = [shout(word) for word in words]\n"),
    "map of 1": ("loud", "parallel (workers=1):\n    loud = [shout(word) for word in words]\n"),
    "map": ("loud", "loud = [shout(word) for word in words]\n"),
}


def test_worker_limits_export_as_nodes_that_keep_them_and_come_back() -> None:
    tools = {**marketing_tools(), "shout": shout}
    expected = {
        "group of 2": ("ExtendedParallelFlowNode", 2),
        "map of 2": ("ExtendedParallelMapNode", 2),
        "map of 1": ("MapNode", 1),
        "map": ("ParallelMapNode", None),
    }
    for label, (_, source) in LIMITED.items():
        kind, workers = expected[label]
        text = Flow.from_source(source, name="limited", namespace=tools, model="offline").to_agentspec()
        node = next(c for c in components(json.loads(text)) if c["component_type"] == kind)
        assert node.get("max_workers") == (workers if kind.startswith("Extended") else None), label
        if not kind.startswith("Extended"):
            assert isinstance(load(text).nodes[1], MapNode if workers == 1 else ParallelMapNode)  # plain Agent Spec
        again = Flow.from_agentspec(text, tools=tools, model="offline")
        assert [g.workers for g in again.groups.values()] == ([workers] if workers else []), label
        run = again.run(**({"username": "alice"} if label == "group of 2" else {"words": WORDS}))
        assert run.status == "succeeded", run.summary()
        if label == "group of 2":
            assert steps_at_once(run, LOOKUPS) == 2
        else:
            assert run["loud"] == [w.upper() for w in WORDS]
            assert elements_at_once(run, "loud") == (workers or len(WORDS))


def test_a_system_prompt_and_a_map_over_a_literal_list_export_and_come_back() -> None:
    flow = Flow.from_source(SOUNDTRACK_FLOW, name="soundtrack", model="offline")
    text = flow.to_agentspec()
    spec = load(text)  # plain Agent Spec: pyagentspec loads it
    critic = next(n for n in nodes_of(spec) if isinstance(n, LlmNode) and n.name == "reviews element")
    assert critic.prompt_template == "You are music critic #{{i}}\n\nYour opinion on this song: {{lyrics}}"
    assert [(p.title, p.json_schema.get("default")) for p in spec.inputs or []] == [
        ("topic", None),
        ("i_values", [0, 1, 2, 3, 4]),
    ]
    again = Flow.from_agentspec(text, model="offline")
    assert "system='You are music critic #{i}'" in again.steps["reviews"].source
    ours, theirs = flow.run(topic="space cats"), again.run(topic="space cats")
    assert theirs.outputs == ours.outputs and len(theirs["reviews"]) == 5
    assert [theirs.steps[f"reviews[{i}]"].llm["system"] for i in range(5)] == [
        f"You are music critic #{i}" for i in range(5)
    ]
    literal = Flow.from_source("loud = [shout(word) for word in ['tea', 'cake']]\n", namespace={"shout": shout})
    assert Flow.from_agentspec(literal.to_agentspec(), tools={"shout": shout}).run()["loud"] == ["TEA", "CAKE"]


# In the WayFlow scripts below: TIMES holds when each tool call began and ended.
TIMED = """
TIMES = []

def timed(fn):
    def run(*args, **kwargs):
        began = time.time()
        value = fn(*args, **kwargs)
        TIMES.append((began, time.time()))
        return value
    return run
"""

# Their end: each flow on stdin ({name: [document, inputs]}) checked by the script's own check(text),
# then run with its tools; its outputs and how many tool calls ran at once, as JSON on stdout.
RUN_EACH = """
out = {}
for name, (text, inputs) in json.loads(sys.stdin.read()).items():
    check(text)
    TIMES.clear()
    status = AgentSpecLoader(tool_registry=tools).load_json(text).start_conversation(inputs=inputs).execute()
    spans = sorted(TIMES)
    at_once = max((sum(1 for s, e in spans if s <= t < e) for t, _ in spans), default=0)
    out[name] = {"outputs": status.output_values, "at_once": at_once}
print(json.dumps(out, default=str))
"""

WAYFLOW_RUN_LIMITED = (
    """
import json, runpy, sys, time
from pyagentspec.serialization import AgentSpecDeserializer
from wayflowcore.agentspec import AgentSpecLoader
from wayflowcore.agentspec.components import all_deserialization_plugin

"""
    + TIMED
    + """
def shout(word: str) -> str:
    time.sleep(%(seconds)r)
    return word.upper()

found = runpy.run_path(%(tools)r)
tools = {name: timed(fn) for name, fn in found.items() if name.startswith("get_")}
tools["shout"] = timed(shout)

def check(text):
    AgentSpecDeserializer(plugins=all_deserialization_plugin).from_json(text)  # pyagentspec, with WayFlow's nodes
"""
    + RUN_EACH
)


@pytest.mark.timeout(1500)
def test_wayflow_runs_exports_with_the_worker_limits_they_have_here(
    wayflow_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = {**marketing_tools(), "shout": shout}
    exports, ours = {}, {}
    with LLMServer(answer=echo) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
        for label, (step, source) in LIMITED.items():
            flow = Flow.from_source(source, name="limited", namespace=tools)
            inputs = {"username": "alice"} if step == "lookups" else {"words": WORDS}
            exports[label] = (flow.to_agentspec(), inputs)
            run = flow.run(**inputs)
            ours[label] = steps_at_once(run, LOOKUPS) if step == "lookups" else elements_at_once(run, step)
        literal = Flow.from_source("loud = [shout(word) for word in ['tea', 'cake']]\n", namespace=tools)
        exports["literal"] = (literal.to_agentspec(), {})
        script = WAYFLOW_RUN_LIMITED % {"seconds": SHOUT_SECONDS, "tools": str(MARKETING_TOOLS)}
        theirs = json.loads(wayflow(wayflow_python, script, stdin=json.dumps(exports)))
    assert ours == {"group of 2": 2, "map of 2": 2, "map of 1": 1, "map": len(WORDS)}
    assert {label: theirs[label]["at_once"] for label in LIMITED} == ours
    for label in ("map of 2", "map of 1", "map"):
        assert theirs[label]["outputs"]["loud"] == [w.upper() for w in WORDS]
    assert theirs["literal"]["outputs"]["loud"] == ["TEA", "CAKE"]  # the list is the input's default


WAYFLOW_RUN_EXAMPLES = (
    """
import json, runpy, sys, time
from wayflowcore.agentspec import AgentSpecLoader

"""
    + TIMED
    + """
tools = {name: timed(fn) for name, fn in runpy.run_path(%(tools)r).items() if name.startswith("get_")}

def check(text):
    pass  # (the test loads each in pyagentspec itself)
"""
    + RUN_EACH
)


@pytest.mark.timeout(1500)
def test_the_readme_soundtrack_and_marketing_flows_export_load_and_run_in_wayflow_as_here(
    wayflow_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    delay = 0.5  # the server answers each prompt after this long: prompts in flight together overlap
    tools = marketing_tools()
    with LLMServer(answer=echo, delay=delay) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
        soundtrack = Flow.from_source(SOUNDTRACK_FLOW, name="soundtrack", cache=False)
        marketing = Flow.from_source(MARKETING_FLOW, name="marketing", namespace=tools, cache=False)
        exports = {
            "soundtrack": (soundtrack.to_agentspec(), {"topic": "space cats"}),
            "marketing": (marketing.to_agentspec(), {"username": "alice"}),
        }
        for text, _ in exports.values():
            load(text)  # plain Agent Spec: no limit asks for WayFlow's nodes
        script = WAYFLOW_RUN_EXAMPLES % {"tools": str(MARKETING_TOOLS)}
        theirs = json.loads(wayflow(wayflow_python, script, stdin=json.dumps(exports)))
        critics = [r.at for r in server.chat_requests if "You are music critic" in r.prompt]
        ours = {"soundtrack": soundtrack.run(topic="space cats"), "marketing": marketing.run(username="alice")}
    assert len(critics) == 5 and at_once((t, t + delay) for t in critics) == 5  # WayFlow: the five critics at once
    assert elements_at_once(ours["soundtrack"], "reviews") == 5
    assert len(theirs["soundtrack"]["outputs"]["reviews"]) == len(ours["soundtrack"]["reviews"]) == 5
    assert [r.startswith("echo: You are music critic #") for r in theirs["soundtrack"]["outputs"]["reviews"]] == [
        True
    ] * 5
    assert theirs["marketing"]["at_once"] == steps_at_once(ours["marketing"], LOOKUPS) == 4
    assert theirs["marketing"]["outputs"]["message"].startswith("echo: You are a marketing expert.")
    assert ours["marketing"]["message"] == theirs["marketing"]["outputs"]["message"]  # the same prompt, dicts as JSON


def test_the_marketing_flow_with_a_limit_is_one_parallel_node_of_wayflows() -> None:
    # with a limit, the group is WayFlow's ExtendedParallelFlowNode (Agent Spec's ParallelFlowNode has none)
    text = Flow.from_source(LIMITED["group of 2"][1], name="marketing", namespace=marketing_tools()).to_agentspec()
    assert "ExtendedParallelFlowNode" in kinds(text) and "ParallelFlowNode" not in kinds(text)
    plain = Flow.from_source(MARKETING_FLOW, name="marketing", namespace=marketing_tools()).to_agentspec()
    assert isinstance(load(plain).nodes[1], ParallelFlowNode)
