"""The cases the corpus of Agent Spec how-tos and examples showed, each in a flow written here.

``agentspec_corpus.py`` runs a directory of Agent Spec files (such as the flows of Agent Spec's and
WayFlow's how-tos) in WayFlow and here; these flows, written here with ``pyagentspec`` or as plain
documents (for WayFlow's own nodes), keep what it found in CI without the corpus: a flow with an
empty list of data edges wires values by name; a template loses one newline at its end; an answer
the flow gives back is a step; after a loop, what its last round's body gave is the value; an LLM
node with structured outputs asks for JSON and reads it as WayFlow does; a map runs a subflow of
several nodes for each element; WayFlow's map over a dict unpacks its keys and values. Each is
checked here, then run in WayFlow with the same stub tools and local LLM server: the same outputs.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from agentspec_corpus import answer, check, server_tools, stub
from llm_server import LLMServer
from pyagentspec.flows.edges import ControlFlowEdge, DataFlowEdge
from pyagentspec.flows.flow import Flow as SpecFlow
from pyagentspec.flows.nodes import EndNode, InputMessageNode, LlmNode, MapNode, OutputMessageNode, StartNode, ToolNode
from pyagentspec.llms import OpenAiConfig
from pyagentspec.property import BooleanProperty, ListProperty, Property, StringProperty
from pyagentspec.serialization import AgentSpecSerializer
from pyagentspec.tools import ServerTool
from test_agentspec import wayflow_python as wayflow_python  # a fixture

from flowmagic import Flow
from flowmagic.errors import FlowDefinitionError
from flowmagic.interop.agentspec_structured import read

LLM = OpenAiConfig(name="model", model_id="gpt-4o-mini")
Edges = list[tuple[Any, str, Any, str]]


def chain(name: str, nodes: list[Any], data: Edges | None) -> SpecFlow:
    """A pyagentspec flow of ``nodes`` one after another, with these data edges (None: none given)."""
    pairs = itertools.pairwise(nodes)
    edges = None if data is None else [
        DataFlowEdge(name=f"d{i}", source_node=a, source_output=o, destination_node=b, destination_input=d)
        for i, (a, o, b, d) in enumerate(data)
    ]  # fmt: skip
    control = [ControlFlowEdge(name=f"c{i}", from_node=a, to_node=b) for i, (a, b) in enumerate(pairs)]
    return SpecFlow(
        name=name, start_node=nodes[0], nodes=nodes, control_flow_connections=control, data_flow_connections=edges
    )


def spec(name: str, nodes: list[Any], data: Edges | None) -> str:
    return AgentSpecSerializer().to_json(chain(name, nodes, data))


def tools_of(text: str) -> dict[str, Any]:
    return {name: stub(name, outputs) for name, outputs in server_tools(json.loads(text)).items()}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    with LLMServer(answer=answer) as local:
        monkeypatch.setenv("OPENAI_BASE_URL", local.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
        yield local


# -- the flows -------------------------------------------------------------------------------------
def by_name() -> str:
    """Two prompts that both give ``generated_text``, the end reading it, and an empty list of data edges."""
    first = LlmNode(name="fruit", llm_config=LLM, prompt_template="Name a fruit")
    second = LlmNode(name="tree", llm_config=LLM, prompt_template="Name a tree")
    start, end = StartNode(name="start"), EndNode(name="end", outputs=[StringProperty(title="generated_text")])
    return spec("by name", [start, first, second, end], [])


def trailing_newlines() -> str:
    name, text = StringProperty(title="name"), StringProperty(title="generated_text")
    start, end = StartNode(name="start", inputs=[name]), EndNode(name="end", outputs=[text])
    greet = LlmNode(name="greet", llm_config=LLM, prompt_template="Greet {{name}}\n")
    data = [(start, "name", greet, "name"), (greet, "generated_text", end, "generated_text")]
    return spec("newlines", [start, greet, end], data)


def answer_given_back() -> str:
    """A question, a message that uses the answer, and the end reading both."""
    ask = InputMessageNode(name="ask", message="Your name?")
    hello = OutputMessageNode(name="hello", message="Hello {{user_input}}")
    document = json.loads(spec("ask", [StartNode(name="start"), ask, hello, EndNode(name="end")], None))
    answer_out = {"title": "user_input", "type": "string"}
    for component in document["$referenced_components"].values():
        if component["component_type"] == "EndNode":
            component["inputs"] = component["outputs"] = [answer_out]
    document["outputs"] = [answer_out]
    return json.dumps(document)


def message(ident: str, template: str, inputs: list[str]) -> dict[str, Any]:
    """WayFlow's output message node, giving the message as ``output_message``."""
    return {
        "component_type": "PluginOutputMessageNode", "id": ident, "name": ident, "metadata": {},
        "inputs": [{"title": t, "type": "string", "default": ""} for t in inputs],
        "outputs": [{"title": "output_message", "type": "string"}], "branches": ["next"], "message": template,
        "input_mapping": {}, "output_mapping": {},
        "message_type": "AGENT", "rephrase": False, "llm_config": None, "expose_message_as_output": True,
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1",
    }  # fmt: skip


def ends(props: list[dict[str, Any]], outputs: list[dict[str, Any]], at: str = "") -> list[dict[str, Any]]:
    """A StartNode ``<at>start`` giving ``props`` and an EndNode ``<at>end`` reading ``outputs``."""
    return [
        {"component_type": "StartNode", "id": f"{at}start", "name": "start", "inputs": props, "outputs": props,
         "branches": ["next"]},
        {"component_type": "EndNode", "id": f"{at}end", "name": "end", "inputs": outputs, "outputs": outputs,
         "branches": []},
    ]  # fmt: skip


def document(
    ident: str, nodes: list[dict[str, Any]], control: list[tuple[str, ...]], data: list[tuple[str, ...]]
) -> Any:
    """A flow of these nodes (the first starts it), control edges (from, to[, branch]) and data edges
    (from, output, to, input), its edges' ids starting with ``ident``."""
    start, end = nodes[0], next(n for n in nodes if n["component_type"] == "EndNode")

    def ref(ident: str) -> dict[str, str]:
        return {"$component_ref": ident}

    return {
        "component_type": "Flow", "id": ident, "name": ident, "inputs": start["inputs"], "outputs": end["outputs"],
        "start_node": ref(start["id"]), "nodes": [ref(n["id"]) for n in nodes],
        "control_flow_connections": [
            {"component_type": "ControlFlowEdge", "id": f"{ident}c{i}", "name": f"c{i}", "from_node": ref(e[0]),
             "to_node": ref(e[1]), "from_branch": e[2] if len(e) > 2 else None} for i, e in enumerate(control)],
        "data_flow_connections": [
            {"component_type": "DataFlowEdge", "id": f"{ident}d{i}", "name": f"d{i}", "source_node": ref(a),
             "source_output": o, "destination_node": ref(b), "destination_input": i_}
            for i, (a, o, b, i_) in enumerate(data)],
        "$referenced_components": {n["id"]: n for n in nodes},
    }  # fmt: skip


def loop_back() -> str:
    """``brew`` gives "tea" then, once ``milk`` has run on the way back, "teamilk", which leaves the loop:
    both give ``output_message``, and the end reads the one the last round's body gave."""
    out = [{"title": "output_message", "type": "string"}]
    choose = {
        "component_type": "BranchingNode", "id": "choose", "name": "choose", "metadata": {}, "inputs": out,
        "outputs": [], "branches": ["again", "default", "done"], "mapping": {"tea": "again", "teamilk": "done"},
    }  # fmt: skip
    start, end = ends([], out)
    nodes = [start, message("brew", "tea{{extra}}", ["extra"]), choose, message("milk", "milk", []), end]
    control = [("start", "brew"), ("brew", "choose"), ("choose", "milk", "again"), ("choose", "end", "done"),
               ("choose", "end", "default"), ("milk", "brew")]  # fmt: skip
    said = "output_message"
    data = [("brew", said, "choose", said), ("milk", said, "brew", "extra"), ("brew", said, "end", said),
            ("milk", said, "end", said)]  # fmt: skip
    return json.dumps({**document("tea", nodes, control, data), "agentspec_version": "26.1.0"})


def structured() -> str:
    """Three prompts that ask for JSON: three outputs, one boolean with a default, one object."""
    topic = StringProperty(title="topic")
    city, sights = StringProperty(title="city"), ListProperty(title="sights", item_type=StringProperty(title="sight"))
    coastal = BooleanProperty(title="coastal", default=False)
    trip = Property(json_schema={"title": "trip", "type": "object", "properties": {
        "days": {"type": "integer"}, "season": {"type": "string", "default": "spring"}}})  # fmt: skip
    start, end = StartNode(name="start", inputs=[topic]), EndNode(name="end", outputs=[city, sights, coastal, trip])
    pick = LlmNode(name="pick", llm_config=LLM, prompt_template="A city for {{topic}}", outputs=[city, sights])
    coast = LlmNode(name="coast", llm_config=LLM, prompt_template="Is {{city}} on the coast?", outputs=[coastal])
    plan = LlmNode(name="plan", llm_config=LLM, prompt_template="Plan a trip to {{city}}", outputs=[trip])
    data = [(start, "topic", pick, "topic"), (pick, "city", coast, "city"), (pick, "city", plan, "city")]
    data += [(pick, "city", end, "city"), (pick, "sights", end, "sights"), (coast, "coastal", end, "coastal")]
    return spec("trip", [start, pick, coast, plan, end], [*data, (plan, "trip", end, "trip")])


def map_of_a_subflow() -> str:
    """A map whose subflow shouts a word, then asks for a rhyme with it."""
    word, loud, rhyme = StringProperty(title="word"), StringProperty(title="loud"), StringProperty(title="rhyme")
    start, end = StartNode(name="start", inputs=[word]), EndNode(name="end", outputs=[rhyme])
    shout = ToolNode(name="shout", tool=ServerTool(name="shout", inputs=[word], outputs=[loud]))
    rhymes = LlmNode(name="rhymes", llm_config=LLM, prompt_template="A rhyme with {{loud}}", outputs=[rhyme])
    data = [(start, "word", shout, "word"), (shout, "loud", rhymes, "loud"), (rhymes, "rhyme", end, "rhyme")]
    each = MapNode(name="each", subflow=chain("one word", [start, shout, rhymes, end], data))
    words, rhymed = ListProperty(title="words", item_type=word), ListProperty(title="collected_rhyme", item_type=rhyme)
    top_start, top_end = StartNode(name="start", inputs=[words]), EndNode(name="end", outputs=[rhymed])
    data = [(top_start, "words", each, "iterated_word"), (each, "collected_rhyme", top_end, "collected_rhyme")]
    return spec("rhymes", [top_start, each, top_end], data)


def map_of_a_dict() -> str:
    """WayFlow's map over a dict of prices: each item's key and value go to a tool."""
    key, value, line = ({"title": t, "type": "string"} for t in ("item", "price", "line"))
    tool = {"component_type": "ServerTool", "id": "label", "name": "label", "inputs": [key, value], "outputs": [line]}
    label = {"component_type": "ToolNode", "id": "t", "name": "t", "inputs": [key, value], "outputs": [line],
             "branches": ["next"], "tool": tool}  # fmt: skip
    start, end = ends([key, value], [line], at="each_")
    data = [
        ("each_start", "item", "t", "item"),
        ("each_start", "price", "t", "price"),
        ("t", "line", "each_end", "line"),
    ]
    each = document("each", [start, label, end], [("each_start", "t"), ("t", "each_end")], data)
    prices = {"title": "prices", "type": "object", "additionalProperties": {"type": "string"}}
    lines = {"title": "line", "type": "array", "items": {"type": "string"}}
    node = {
        "component_type": "ExtendedMapNode", "id": "map", "name": "map", "metadata": {},
        "inputs": [{**prices, "title": "iterated_input"}], "outputs": [lines], "branches": ["next"],
        "flow": each, "unpack_input": {"item": "._key", "price": "._value"}, "parallel_execution": False,
        "max_workers": None, "input_mapping": {}, "output_mapping": {},
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1",
    }  # fmt: skip
    start, end = ends([prices], [lines])
    data = [("start", "prices", "map", "iterated_input"), ("map", "line", "end", "line")]
    menu = document("menu", [start, node, end], [("start", "map"), ("map", "end")], data)
    return json.dumps({**menu, "agentspec_version": "26.1.0"})


CASES = {
    "by name": by_name,
    "newlines": trailing_newlines,
    "answer given back": answer_given_back,
    "loop": loop_back,
    "structured": structured,
    "map of a subflow": map_of_a_subflow,
    "map of a dict": map_of_a_dict,
}


# -- here ------------------------------------------------------------------------------------------
def test_an_empty_list_of_data_edges_wires_values_by_name_as_wayflow_does(server: LLMServer) -> None:
    run = Flow.from_agentspec(by_name(), cache=False).run()
    assert run["generated_text"] == "echo: Name a tree"  # the end reads the last value of that name


def test_a_template_loses_one_newline_at_its_end_as_jinja_renders_it(server: LLMServer) -> None:
    run = Flow.from_agentspec(trailing_newlines(), cache=False).run(name="Ada")
    assert [r.prompt for r in server.chat_requests] == ["Greet Ada"]
    assert run["generated_text"] == "echo: Greet Ada"


def test_an_answer_the_flow_gives_back_is_a_step_reading_an_input_named_for_it() -> None:
    flow = Flow.from_agentspec(answer_given_back())
    assert "user_input_answer" in flow.inputs
    with pytest.raises(FlowDefinitionError, match="name 'user_input_answer' is not defined"):
        flow.run()
    run = flow.run(user_input_answer="Ada")
    assert (run["user_input"], run["hello"]) == ("Ada", "Hello Ada")


def test_after_a_loop_the_value_is_the_one_its_last_rounds_body_gave() -> None:
    flow = Flow.from_agentspec(loop_back())
    assert flow.run()["output_message"] == "teamilk"  # not "milk", given on the way back a round before


def test_an_llm_node_with_structured_outputs_asks_for_json_and_reads_it_as_wayflow(server: LLMServer) -> None:
    flow = Flow.from_agentspec(structured(), cache=False)
    run = flow.run(topic="the sea")
    assert (run["city"], run["sights"]) == ("example city", ["example sights", "example sights"])
    assert run["coastal"] is False  # the schema's default, which the local server answers
    assert run["trip"] == {"days": 42, "season": "spring"}
    asked = {r.prompt.split()[0]: r.body["response_format"]["json_schema"]["schema"] for r in server.chat_requests}
    assert asked["A"]["title"] == "expected_output" and asked["A"]["required"] == ["city", "sights"]
    assert asked["Is"]["required"] == []  # the boolean has a default
    assert set(asked["Plan"]["properties"]) == {"days", "season"} and asked["Plan"]["required"] == ["days"]
    # an answer is read leniently, as WayFlow reads it: missing or mistyped values are defaults or cast
    outputs = [{"title": "city", "type": "string"}, {"title": "n", "type": "integer", "default": 3}]
    assert read('{"city": 7}', outputs) == {"city": "7", "n": 3}
    assert read("not JSON", outputs) == {"city": "not JSON", "n": 3}
    assert read('{"ok": 1}', [{"title": "ok", "type": "boolean"}]) == {"ok": True}
    offline = Flow.from_agentspec(structured(), model="offline").run(topic="the sea")  # an empty answer: defaults
    assert (offline["coastal"], offline["trip"]) == (False, {"days": 0, "season": "spring"})


def test_a_map_runs_a_subflow_of_several_nodes_for_each_element(server: LLMServer) -> None:
    text = map_of_a_subflow()
    flow = Flow.from_agentspec(text, tools=tools_of(text), cache=False)
    run = flow.run(words=["tea", "jam"])
    assert run["collected_rhyme"] == [f'echo: A rhyme with shout(word="{w}")' for w in ("tea", "jam")]


def test_wayflows_map_over_a_dict_unpacks_each_items_key_and_value() -> None:
    text = map_of_a_dict()
    flow = Flow.from_agentspec(text, tools=tools_of(text))
    assert "for item, price in prices.items()" in flow.source
    assert flow.run(prices={"tea": "2", "jam": "3"})["line"] == [
        'label(item="tea", price="2")',
        'label(item="jam", price="3")',
    ]


# -- and in WayFlow ----------------------------------------------------------------------------------
@pytest.mark.timeout(1500)  # the first use creates wayflowcore's environment
@pytest.mark.parametrize("case", list(CASES))
def test_wayflow_runs_each_case_to_the_outputs_it_has_here(
    wayflow_python: str, server: LLMServer, tmp_path: Path, case: str
) -> None:
    path = tmp_path / "flow.json"
    path.write_text(CASES[case]())
    row = check(path, case, json.loads(path.read_text()), wayflow_python, server.base_url.removesuffix("/v1"))
    assert (row.wayflow, row.imports, row.runs, row.same) == ("yes", "yes", "yes", "yes"), row.why
