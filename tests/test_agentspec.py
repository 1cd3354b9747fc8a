"""Agent Spec interop, checked with the peers' own code.

Every export is loaded by pyagentspec's deserializer. WayFlow (wayflowcore) builds and
exports its parallel how-to flow, which flowmagic imports and runs, and runs a flowmagic
export against the local OpenAI-compatible server. wayflowcore lives in its own virtual
environment (its litellm dependency caps openai below 3, which flowmagic's test
environment must not be held to); set FLOWMAGIC_WAYFLOW_PYTHON to a Python that has it,
or the first test that needs it creates one in pytest's cache directory.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell
from llm_server import LLMServer
from pyagentspec.flows.edges import ControlFlowEdge, DataFlowEdge
from pyagentspec.flows.flow import Flow as SpecFlow
from pyagentspec.flows.nodes import (
    EndNode,
    FlowNode,
    LlmNode,
    MapNode,
    ParallelFlowNode,
    ParallelMapNode,
    StartNode,
    ToolNode,
)
from pyagentspec.llms import OpenAiConfig
from pyagentspec.property import ListProperty, StringProperty
from pyagentspec.serialization import AgentSpecDeserializer, AgentSpecSerializer
from pyagentspec.tools import ServerTool
from test_design_examples import MARKETING as MARKETING_CELL

from flowmagic import Flow, Run
from flowmagic.interop.agentspec import AgentSpecError
from flowmagic.interop.agentspec_export import Item, _Par, stages

ROOT = Path(__file__).resolve().parents[1]
WAYFLOW = "wayflowcore>=26.3,<27"
LOOKUP_SECONDS = 0.2

# -- the marketing example of DESIGN.md, with typed tools ----------------------------------------
MARKETING = "\n" + MARKETING_CELL.split("\n", 1)[1]  # DESIGN.md's cell; its %%flow line left blank

TOOLS_SOURCE = '''
import time


def get_current_time() -> str:
    """The current time."""
    time.sleep(LOOKUP_SECONDS)
    return "2025/10/01 22:30"


def get_user_information(username: str) -> dict[str, str]:
    """Who the user is."""
    time.sleep(LOOKUP_SECONDS)
    return {"name": username.title(), "email": username + "@email.com"}


def get_user_last_purchases(username: str) -> list[dict[str, str]]:
    """What the user bought before."""
    time.sleep(LOOKUP_SECONDS)
    return [{"title": "Arkanoid", "item_type": "videogame"}]


def get_items_on_sale() -> list[dict[str, str]]:
    """What is on sale today."""
    time.sleep(LOOKUP_SECONDS)
    return [{"title": "Metroid", "item_type": "videogame"}, {"title": "Broom", "item_type": "household"}]
'''

LOOKUPS = ["current_time", "user_info", "user_purchases", "items_on_sale"]


def shout_word(word: str) -> str:
    return word.upper()


def marketing_tools() -> dict[str, Any]:
    namespace: dict[str, Any] = {"LOOKUP_SECONDS": LOOKUP_SECONDS}
    exec(TOOLS_SOURCE, namespace)
    return {
        name: namespace[name]
        for name in ("get_current_time", "get_user_information", "get_user_last_purchases", "get_items_on_sale")
    }


def load(text: str, format: str = "json") -> SpecFlow:
    """pyagentspec's own deserializer: the export is valid Agent Spec or this raises."""
    loader = AgentSpecDeserializer()
    component = loader.from_json(text) if format == "json" else loader.from_yaml(text)
    assert isinstance(component, SpecFlow)
    return component


def nodes_of(flow: SpecFlow) -> Iterator[Any]:
    for node in flow.nodes:
        yield node
        for sub in getattr(node, "subflows", None) or []:
            yield from nodes_of(sub)
        if isinstance(node, ParallelMapNode):
            yield from nodes_of(node.subflow)


def overlap(run: Run, names: list[str]) -> float:
    """How long all of ``names`` were running at once (negative: they never all were)."""
    return min(run.steps[n].finished or 0 for n in names) - max(run.steps[n].started or 0 for n in names)


# -- export ----------------------------------------------------------------------------------------
def test_the_marketing_cell_exports_to_json_that_pyagentspec_loads() -> None:
    tools = marketing_tools()
    flow = Flow.from_source(MARKETING, name="marketing", namespace=tools)
    spec = load(flow.to_agentspec())
    kinds = [type(n).__name__ for n in spec.nodes]
    assert kinds == ["StartNode", "ParallelFlowNode", "LlmNode", "EndNode"]
    parallel, llm = spec.nodes[1], spec.nodes[2]
    assert isinstance(parallel, ParallelFlowNode) and isinstance(llm, LlmNode)
    assert parallel.name == "lookup" and len(parallel.subflows) == 4
    tools_run = sorted(n.tool.name for s in parallel.subflows for n in s.nodes if isinstance(n, ToolNode))
    assert tools_run == sorted(tools)
    # inputs and outputs typed from the hints; the prompt in Agent Spec's placeholder syntax
    user_info = next(n for s in parallel.subflows for n in s.nodes if n.name == "user_info")
    assert user_info.tool.inputs[0].json_schema == {"title": "username", "type": "string"}
    assert user_info.tool.outputs[0].json_schema["type"] == "object"
    assert "Welcome {{user_info}} ..." in llm.prompt_template and "{{items_on_sale}}" in llm.prompt_template
    assert [p.title for p in spec.inputs or []] == ["username"]
    assert [p.title for p in spec.outputs or []] == ["message"]
    # the YAML form is the same document
    assert load(flow.to_agentspec("yaml"), "yaml").name == "marketing"


RESEARCH = """
question_text = clean(question)
parallel:
    branch web:
        hits  = web_search(question_text)
        notes = llm("Summarize {hits}", temperature=0)
    branch docs:
        pages  = search_docs(question_text)
        quotes = llm("Quote the relevant lines of {pages}")
@cache(False)
scores = [score(hit, question_text) for hit in hits]
critiques = [llm("Critique {page} for {question}") for page in pages]
answer = llm("Answer {question} from {notes} and {quotes}")
both = combine(notes, quotes)
review = combine(quotes, critiques)
"""


RESEARCH_TOOLS_SOURCE = """
import time


def clean(text: str) -> str:
    return text.strip().lower()


def web_search(question: str) -> list[str]:
    time.sleep(0.05)
    return [f"a web page about {question}", "a forum thread"]


def search_docs(question: str) -> list[str]:
    time.sleep(0.05)
    return [f"the manual's page on {question}"]


def score(hit: str, question: str) -> int:
    return len(hit) * 100 + len(question)


def combine(a, b):  # untyped: the tool's inputs take the types of what they receive
    return f"{a} | {b}"
"""
RESEARCH_TOOLS = ("clean", "web_search", "search_docs", "score", "combine")


def research_tools() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(RESEARCH_TOOLS_SOURCE, namespace)
    return {name: namespace[name] for name in RESEARCH_TOOLS}


def test_export_import_and_run_give_the_same_outputs_offline() -> None:
    tools = research_tools()
    flow = Flow.from_source(RESEARCH, name="research", namespace=tools, model="offline")
    original = flow.run(question="  What Is A DAG? ")
    assert original.status == "succeeded"
    for format in ("json", "yaml"):
        text = flow.to_agentspec(format)  # type: ignore[arg-type]
        spec = load(text, format)
        maps = [n for n in nodes_of(spec) if isinstance(n, ParallelMapNode)]
        assert sorted(m.name for m in maps) == ["critiques", "scores"]
        again = Flow.from_agentspec(text, tools=tools, model="offline")
        rerun = again.run(question="  What Is A DAG? ")
        assert rerun.status == "succeeded"
        assert rerun.outputs == original.outputs
        assert set(rerun.outputs) == set(flow.steps)
        # step options and the prompt's temperature travel in the document
        assert again.steps["scores"].options.cache is False
        assert "temperature=0" in again.steps["notes"].source
        assert again.steps["scores"].kind == again.steps["critiques"].kind == "map"


def test_independent_chains_stay_side_by_side_in_the_export() -> None:
    # the DAG is not series-parallel (answer reads both chains, review only one): the export must
    # still keep the web chain and the docs chain in separate branches of one parallel node
    flow = Flow.from_source(RESEARCH, name="research", namespace=research_tools())
    spec = load(flow.to_agentspec())
    top = [n.name for n in spec.nodes]
    assert top[:2] == ["start", "question_text"]
    first = spec.nodes[2]
    assert isinstance(first, ParallelFlowNode)
    branches = [{n.name for n in nodes_of(s)} for s in first.subflows]
    web = next(b for b in branches if "hits" in b)
    docs = next(b for b in branches if "pages" in b)
    assert {"hits", "notes", "scores"} <= web and {"pages", "quotes", "critiques"} <= docs
    assert not web & {"pages", "quotes"} and not docs & {"hits", "notes"}


def _before(items: list[Item]) -> tuple[set[str], set[tuple[str, str]]]:
    """The steps of a staged structure, and the pairs (a, b) in which a finishes before b starts."""
    steps: set[str] = set()
    order: set[tuple[str, str]] = set()
    for item in items:
        if isinstance(item, str):
            inner, inner_order = {item}, set()
        else:
            parts = [_before(b) for b in item.branches]
            inner = set().union(*(p[0] for p in parts))
            inner_order = set().union(*(p[1] for p in parts))
        order |= {(a, b) for a in steps for b in inner} | inner_order
        steps |= inner
    return steps, order


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 12).flatmap(
        lambda n: st.tuples(
            st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n)
        )
    )
)
def test_staging_keeps_every_dependency_of_any_dag(dag: tuple[int, list[tuple[int, int]]]) -> None:
    n, pairs = dag
    names = [f"s{i}" for i in range(n)]
    deps = {names[b]: tuple(sorted({names[a] for a, c in pairs if c == b and a < b})) for b in range(n)}
    items = stages(names, deps)
    steps, before = _before(items)
    assert steps == set(names)
    for step, reads in deps.items():
        for read in reads:
            assert (read, step) in before, (read, step, items)
    # steps that share no path are never forced apart when the DAG splits into independent parts
    if all(not reads for reads in deps.values()):
        assert len(items) == 1 and isinstance(items[0], _Par) and len(items[0].branches) == n


def test_no_api_key_or_password_ever_appears_in_an_export(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key, password, signature = "sk-planted-0123456789abcdef", "pw-planted-secret", "sig-planted-secret"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://user:{password}@127.0.0.1:9/v1?sig={signature}")
    flow = Flow.from_source(MARKETING, name="marketing", namespace=marketing_tools())
    for format in ("json", "yaml"):
        text = flow.to_agentspec(format)  # type: ignore[arg-type]
        assert key not in text and password not in text and "planted" not in text
        llm = next(n for n in load(text, format).nodes if isinstance(n, LlmNode))
        config = llm.llm_config
        assert type(config).__name__ == "OpenAiCompatibleConfig"
        # no userinfo at all, and the query's names without their values
        assert config.url == "http://127.0.0.1:9/v1?sig=***" and config.api_key is None  # type: ignore[attr-defined]
    # the command line too, with the key in its environment
    (tmp_path / "marketing.flow").write_text(MARKETING)
    (tmp_path / "tools.py").write_text(f"LOOKUP_SECONDS = 0\n{TOOLS_SOURCE}")
    result = cli(
        "export", "marketing.flow", "-o", "out.yaml", "--tools", "tools.py", cwd=tmp_path, env={"OPENAI_API_KEY": key}
    )
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out.yaml").read_text()
    assert key not in text and load(text, "yaml").name == "marketing"


@pytest.mark.parametrize(
    ("body", "step", "why"),
    [
        ("a = f(x)\nb = f(x)\ntotal = a + b\n", "total", "not Python expressions"),
        ("reviews = [llm('Review #{i}') for i in range(n)]\n", "reviews", "make 'range(n)' a step or an input"),
        ("s = llm('Hi {name}', schema=Kind)\n", "s", "llm(schema=...) has no Agent Spec equivalent"),
        ("parallel both:\n    a = f(x)\n    b = f(x)\nsummary = f(both)\n", "summary", "reads group 'both' as a dict"),
        ("a = f(x, 3)\n", "a", "argument '3' is not a name"),
        ("a = g(x)\n", "a", "no function 'g' is known here"),
        ("a = llm('Hi {user.name}')\n", "a", "Agent Spec prompts take plain names"),
    ],
)
def test_a_step_agent_spec_cannot_express_is_an_error_naming_it(body: str, step: str, why: str) -> None:
    def f(x: int) -> int:
        return x

    flow = Flow.from_source(body, name="bad", namespace={"f": f})
    with pytest.raises(AgentSpecError) as info:
        flow.to_agentspec()
    message = str(info.value)
    assert f"step '{step}' (line {flow.steps[step].line}) cannot be exported" in message
    assert why in message


# -- import ---------------------------------------------------------------------------------------
def marketing_document() -> dict[str, Any]:
    flow = Flow.from_source(MARKETING, name="marketing", namespace=marketing_tools())
    return json.loads(flow.to_agentspec())


def components(document: Any) -> Iterator[dict[str, Any]]:
    if isinstance(document, dict):
        if "component_type" in document:
            yield document
        for value in document.values():
            yield from components(value)
    elif isinstance(document, list):
        for value in document:
            yield from components(value)


def test_unknown_components_are_errors_naming_them() -> None:
    document = marketing_document()
    llm = next(c for c in components(document) if c["component_type"] == "LlmNode")
    llm["component_type"] = "AgentNode"
    with pytest.raises(AgentSpecError, match="AgentNode 'message' in flow 'marketing' is not supported"):
        Flow.from_agentspec(json.dumps(document), tools=marketing_tools())
    llm["component_type"] = "LlmNode"
    llm["llm_config"]["component_type"] = "OciGenAiConfig"
    with pytest.raises(AgentSpecError, match="LlmNode 'message' uses a 'OciGenAiConfig' model configuration"):
        Flow.from_agentspec(json.dumps(document), tools=marketing_tools())
    # with model= the file's model configuration does not matter
    flow = Flow.from_agentspec(json.dumps(document), tools=marketing_tools(), model="offline")
    assert flow.steps["message"].kind == "llm"
    document["component_type"] = "Agent"
    with pytest.raises(AgentSpecError, match="imports Agent Spec flows, not a 'Agent'"):
        Flow.from_agentspec(json.dumps(document), tools=marketing_tools())


def test_tools_come_only_from_the_mapping_and_nothing_in_the_file_runs(tmp_path: Path) -> None:
    document = marketing_document()
    tools = marketing_tools()
    # a tool that exists everywhere (a builtin, the notebook) but not in the mapping is refused
    server_tool = next(c for c in components(document) if c["component_type"] == "ServerTool")
    server_tool["name"] = "eval"
    with pytest.raises(AgentSpecError, match=r"tool 'eval' of ToolNode '\w+' is not among the tools given"):
        Flow.from_agentspec(json.dumps(document), tools=tools)
    # names and text from the file never become code: a planted command stays a string and a name
    planted = tmp_path / "planted"
    attack = f"__import__('os').system('touch {planted}')"
    server_tool["name"] = attack
    start = document["$referenced_components"][document["start_node"]["$component_ref"]]
    for prop in (*start["inputs"], *start["outputs"], *document["inputs"]):
        prop.update(title=f"x) or {attack} or (x", default="alice")
    for edge in document["data_flow_connections"]:
        if edge["source_output"] == "username":
            edge["source_output"] = f"x) or {attack} or (x"
    llm = next(c for c in components(document) if c["component_type"] == "LlmNode")
    llm["prompt_template"] = "{{current_time}} {" + attack + "} {{ '{{' }}"
    with pytest.raises(AgentSpecError, match="no filters, attributes or control tags"):
        Flow.from_agentspec(json.dumps(document), tools={**tools, attack: tools["get_current_time"]})
    llm["prompt_template"] = "{{current_time}} {" + attack + "}"
    llm["inputs"] = [{"title": "current_time", "type": "string"}]
    flow = Flow.from_agentspec(
        json.dumps(document), tools={**tools, attack: tools["get_current_time"]}, model="offline"
    )
    assert all(name.isidentifier() for name in flow.inputs)
    run = flow.run()
    assert run.status == "succeeded", run.summary()
    assert run["current_time"] == "2025/10/01 22:30"  # the tool given under that name ran
    assert run["user_info"]["name"] == "Alice"  # the input's default reached the tools as a value
    assert attack in run.steps["message"].llm["prompt"]  # the text went to the model as text
    assert not planted.exists()


def test_input_defaults_and_flows_without_data_edges() -> None:
    document = marketing_document()
    start = next(c for c in components(document) if c["component_type"] == "StartNode")
    start["inputs"][0]["default"] = start["outputs"][0]["default"] = "bob"
    # Agent Spec connects same-named outputs and inputs when a flow has no data-flow edges
    for flow_component in [c for c in components(document) if c["component_type"] == "Flow"]:
        flow_component["data_flow_connections"] = None
    flow = Flow.from_agentspec(json.dumps(document), tools=marketing_tools(), model="offline")
    run = flow.run()
    assert run["user_info"] == {"name": "Bob", "email": "bob@email.com"}
    assert '"name": "Bob"' in run.steps["message"].llm["prompt"]  # a dict reads as JSON, as in WayFlow


def test_a_flow_serialized_by_pyagentspec_with_a_map_node_and_a_flow_node_imports_and_runs() -> None:
    def chain(name: str, nodes: list[Any], data: list[tuple[Any, str, Any, str]]) -> SpecFlow:
        return SpecFlow(
            name=name,
            start_node=nodes[0],
            nodes=nodes,
            control_flow_connections=[
                ControlFlowEdge(name=f"{a.name}->{b.name}", from_node=a, to_node=b)
                for a, b in itertools.pairwise(nodes)
            ],
            data_flow_connections=[
                DataFlowEdge(name=f"{o}->{i}", source_node=a, source_output=o, destination_node=b, destination_input=i)
                for a, o, b, i in data
            ],
        )

    word, loud, summary = StringProperty(title="word"), StringProperty(title="loud"), StringProperty(title="summary")
    start, end = StartNode(name="start", inputs=[word]), EndNode(name="end", outputs=[loud])
    shout = ToolNode(name="shout", tool=ServerTool(name="shout", inputs=[word], outputs=[loud]))
    one_word = chain("one word", [start, shout, end], [(start, "word", shout, "word"), (shout, "loud", end, "loud")])
    each = MapNode(name="shout each", subflow=one_word)  # a sequential map: one element at a time here too
    louds = ListProperty(title="collected_loud", item_type=loud)
    start, end = StartNode(name="start", inputs=[louds]), EndNode(name="end", outputs=[summary])
    llm = LlmNode(
        name="sum",
        llm_config=OpenAiConfig(name="gpt", model_id="gpt-4o-mini"),
        prompt_template="Summarize {{collected_loud}}",
        outputs=[summary],
    )
    summarize = chain(
        "summarize",
        [start, llm, end],
        [(start, "collected_loud", llm, "collected_loud"), (llm, "summary", end, "summary")],
    )
    inline = FlowNode(name="summarize it", subflow=summarize)
    start, end = (
        StartNode(name="start", inputs=[ListProperty(title="words", item_type=word)]),
        EndNode(name="end", outputs=[summary]),
    )
    top = chain(
        "shouting",
        [start, each, inline, end],
        [
            (start, "words", each, "iterated_word"),
            (each, "collected_loud", inline, "collected_loud"),
            (inline, "summary", end, "summary"),
        ],
    )
    flow = Flow.from_agentspec(AgentSpecSerializer().to_json(top), tools={"shout": shout_word}, model="offline")
    assert flow.source.splitlines() == [  # the map is named after its node's output, as Agent Spec names it
        "parallel (workers=1):",
        "    collected_loud = [shout(word=word) for word in words]",
        "summary = llm('Summarize {collected_loud}')",
    ]
    run = flow.run(words=["tea", "cake"])
    assert run["collected_loud"] == ["TEA", "CAKE"]
    assert run.steps["summary"].llm["prompt"] == 'Summarize ["TEA", "CAKE"]'


# -- with WayFlow ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def wayflow_python(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python with wayflowcore, in a virtual environment of its own (see the module docstring)."""
    given_python = os.environ.get("FLOWMAGIC_WAYFLOW_PYTHON")
    if given_python:
        return given_python
    cache = getattr(pytestconfig, "cache", None)  # None under -p no:cacheprovider
    venv = Path(cache.mkdir("wayflow-venv")) if cache is not None else tmp_path_factory.mktemp("wayflow-venv")
    python = venv / "bin" / "python"
    marker = venv / "flowmagic-installed"
    if not marker.exists() or marker.read_text() != WAYFLOW:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", WAYFLOW], check=True, timeout=1200)
        marker.write_text(WAYFLOW)
    return str(python)


def wayflow(python: str, script: str, stdin: str = "", env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [python, "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


# WayFlow's how-to "run multiple flows in parallel", built with its own API: four tools, each in a
# flow of one ToolExecutionStep, run by a ParallelFlowExecutionStep, then a prompt and an output message
WAYFLOW_HOWTO = '''
import json
from wayflowcore.agentspec import AgentSpecExporter
from wayflowcore.flow import Flow
from wayflowcore.models import VllmModel
from wayflowcore.property import DictProperty, ListProperty, StringProperty
from wayflowcore.steps import (
    OutputMessageStep, ParallelFlowExecutionStep, ParallelMapStep, PromptExecutionStep, ToolExecutionStep,
)
from wayflowcore.tools.toolhelpers import DescriptionMode, tool

@tool(description_mode=DescriptionMode.ONLY_DOCSTRING,
      output_descriptors=[DictProperty(name="user_info", value_type=StringProperty())])
def get_user_information(username: str) -> dict[str, str]:
    """Retrieve information about a user"""
    return {}

@tool(description_mode=DescriptionMode.ONLY_DOCSTRING, output_descriptors=[StringProperty(name="current_time")])
def get_current_time() -> str:
    """Return current time"""
    return ""

@tool(description_mode=DescriptionMode.ONLY_DOCSTRING,
      output_descriptors=[ListProperty(name="user_purchases", item_type=DictProperty(value_type=StringProperty()))])
def get_user_last_purchases(username: str) -> list[dict[str, str]]:
    """Retrieve the list of purchases made by a user"""
    return []

@tool(description_mode=DescriptionMode.ONLY_DOCSTRING,
      output_descriptors=[ListProperty(name="items_on_sale", item_type=DictProperty(value_type=StringProperty()))])
def get_items_on_sale() -> list[dict[str, str]]:
    """Retrieve the list of items currently on sale"""
    return []

lookups = [get_current_time, get_user_information, get_user_last_purchases, get_items_on_sale]
parallel = ParallelFlowExecutionStep(
    name="parallel_flow_step",
    flows=[Flow.from_steps([ToolExecutionStep(name=f"{t.name}_step", tool=t)]) for t in lookups],
    max_workers=4,
)
prompt = PromptExecutionStep(
    name="prepare_marketing_message",
    prompt_template="""You write marketing messages. Greet the user and propose one item on sale.
User: {{user_info}}
Time: {{current_time}}
Purchases: {{user_purchases}}
On sale: {{items_on_sale}}""",
    llm=VllmModel(model_id="model-id", host_port="127.0.0.1:9"),
)
output = OutputMessageStep(name="output_message_step", message_template="{{output}}")
howto = Flow.from_steps([parallel, prompt, output])

# and a ParallelMapStep, which WayFlow exports as its ExtendedParallelMapNode
@tool(description_mode=DescriptionMode.ONLY_DOCSTRING)
def shout(word: str) -> str:
    """Shout a word"""
    return word

mapped = ParallelMapStep(
    name="shout_all",
    flow=Flow.from_steps([ToolExecutionStep(name="shout_step", tool=shout)]),
    unpack_input={"word": "."},
    output_descriptors=[ListProperty(name="tool_output", item_type=StringProperty())],
    max_workers=3,
)
exporter = AgentSpecExporter()
print(json.dumps({"howto": exporter.to_json(howto), "map": exporter.to_json(Flow.from_steps([mapped]))}))
'''


@pytest.mark.timeout(1500)  # the first use creates wayflowcore's environment
def test_wayflow_parallel_howto_imports_and_runs_offline_with_its_tools_overlapping(wayflow_python: str) -> None:
    documents = json.loads(wayflow(wayflow_python, WAYFLOW_HOWTO))
    exported = documents["howto"]
    kinds = {c["component_type"] for c in components(json.loads(exported))}
    assert {"ExtendedParallelFlowNode", "PluginOutputMessageNode", "LlmNode", "ToolNode"} <= kinds
    flow = Flow.from_agentspec(exported, tools=marketing_tools(), model="offline")
    (group,) = flow.groups.values()
    assert group.workers == 4 and sorted(group.members) == sorted(LOOKUPS)  # max_workers became workers
    run = flow.run(username="alice")
    assert run.status == "succeeded", run.summary()
    # the four tools ran at the same time: each one started before any of them finished
    times = {n: (run.steps[n].started, run.steps[n].finished) for n in LOOKUPS}
    assert overlap(run, LOOKUPS) > 0, times
    prompt = run.steps["output"].llm["prompt"]
    assert "Metroid" in prompt and '"name": "Alice"' in prompt and "2025/10/01 22:30" in prompt
    assert run.steps["output"].llm["offline"] is True
    assert run["output_message"] == run["output"]
    # without model=, the file's model name is kept for each prompt
    assert "model='model-id'" in Flow.from_agentspec(exported, tools=marketing_tools()).steps["output"].source
    # WayFlow's parallel map: its list input is "iterated_input", unpack_input says where each element goes
    assert "ExtendedParallelMapNode" in {c["component_type"] for c in components(json.loads(documents["map"]))}
    shouting = Flow.from_agentspec(documents["map"], tools={"shout": shout_word})
    assert shouting.steps["tool_output"].kind == "map"
    assert shouting.run(iterated_input=["a", "b", "c"])["tool_output"] == ["A", "B", "C"]


WAYFLOW_RUN = "\n".join(
    [
        "import json, sys",
        "from wayflowcore.agentspec import AgentSpecLoader",
        "LOOKUP_SECONDS = 0.01",
        TOOLS_SOURCE,
        RESEARCH_TOOLS_SOURCE,
        f"tools = {{name: globals()[name] for name in {[*marketing_tools(), *RESEARCH_TOOLS]!r}}}",
        """
outputs = {}
for name, (text, inputs) in json.loads(sys.stdin.read()).items():
    conversation = AgentSpecLoader(tool_registry=tools).load_json(text).start_conversation(inputs=inputs)
    outputs[name] = conversation.execute().output_values
print(json.dumps(outputs, default=str))
""",
    ]
)


@pytest.mark.timeout(1500)  # the first use creates wayflowcore's environment
def test_wayflow_runs_flowmagic_exports_against_the_local_server(
    wayflow_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LLMServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # the export points WayFlow at this server
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")  # WayFlow's client reads it; the export never does
        marketing = Flow.from_source(MARKETING, name="marketing", namespace=marketing_tools()).to_agentspec()
        research = Flow.from_source(RESEARCH, name="research", namespace=research_tools())
        exports = {
            "marketing": (marketing, {"username": "alice"}),
            "research": (research.to_agentspec(), {"question": "  What Is A DAG? "}),
        }
        outputs = json.loads(wayflow(wayflow_python, WAYFLOW_RUN, stdin=json.dumps(exports)))
        (request,) = [r for r in server.chat_requests if "You are a marketing expert" in r.prompt]
        research_prompts = [r.prompt for r in server.chat_requests if r is not request]
    for value in ("Alice", "alice@email.com", "2025/10/01 22:30", "Arkanoid", "Metroid"):
        assert value in request.prompt
    assert outputs["marketing"]["message"].startswith("echo: ")
    # the research flow's nested parallel nodes and maps ran in WayFlow as they run here
    ours = research.run(question="  What Is A DAG? ")
    assert outputs["research"]["scores"] == ours["scores"] == [3114, 1414]
    assert len(research_prompts) == 4  # notes, quotes, one critique per page, answer
    for prompt in ("Summarize", "Quote the relevant lines of", "Critique the manual", "Answer   What Is A DAG?"):
        assert any(prompt in p for p in research_prompts), prompt
    assert "Summarize" in outputs["research"]["both"] and "Quote" in outputs["research"]["both"]


# -- the command line and the cell ----------------------------------------------------------------
def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "flowmagic.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_cli_export_writes_json_or_yaml_and_names_what_it_cannot_export(tmp_path: Path) -> None:
    (tmp_path / "marketing.flow").write_text(MARKETING)
    (tmp_path / "tools.py").write_text(f"LOOKUP_SECONDS = 0\n{TOOLS_SOURCE}")
    done = cli("export", "marketing.flow", "--tools", "tools.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote marketing.json (Agent Spec json, 5 steps)" in done.stdout
    assert load((tmp_path / "marketing.json").read_text()).name == "marketing"
    piped = cli("export", "marketing.flow", "--tools", "tools.py", "--format", "yaml", "-o", "-", cwd=tmp_path)
    assert piped.returncode == 0 and load(piped.stdout, "yaml").name == "marketing"
    no_tools = cli("export", "marketing.flow", "-o", "out.json", cwd=tmp_path)
    assert no_tools.returncode == 2 and not (tmp_path / "out.json").exists()
    assert "step 'current_time' (line 3)" in no_tools.stderr and "--tools" in no_tools.stderr
    unknown = cli("export", "marketing.flow", "--tools", "tools.py", "-o", "out.txt", cwd=tmp_path)
    assert unknown.returncode != 0 and "name it .json, .yaml or .yml" in unknown.stderr


def test_cell_export_with_dry_run_only_writes_and_without_it_also_runs(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.user_ns.update(marketing_tools(), username="alice")
    path = tmp_path / "marketing.yaml"
    result = shell.run_cell(f"%%flow marketing --export {path} --dry-run --quiet\n{MARKETING}")
    assert result.success
    assert load(path.read_text(), "yaml").name == "marketing"
    assert shell.user_ns["marketing"].last is None  # written, not run
    path = tmp_path / "marketing.json"
    result = shell.run_cell(f"%%flow marketing --export {path}\n{MARKETING}")
    assert result.success
    assert f"wrote {path} (Agent Spec json, 5 steps)" in capsys.readouterr().out
    assert load(path.read_text()).name == "marketing"
    assert shell.user_ns["marketing"].last.status == "succeeded"
    # a step Agent Spec cannot express stops the cell before anything runs or is bound
    result = shell.run_cell(f"%%flow other --export {tmp_path / 'other.json'}\ntotal = 1 + 2\n")
    assert isinstance(result.error_in_exec, AgentSpecError) and "step 'total'" in str(result.error_in_exec)
    assert "other" not in shell.user_ns and not (tmp_path / "other.json").exists()


def test_the_interop_module_is_pure_and_needs_no_pyagentspec() -> None:
    # export and import in a fresh interpreter: no IPython, widgets, openai, pyagentspec or YAML loaded
    code = f"""
import sys
from flowmagic import Flow
namespace = {{"LOOKUP_SECONDS": 0}}
exec({TOOLS_SOURCE!r}, namespace)
tools = {{k: v for k, v in namespace.items() if k.startswith("get_")}}
flow = Flow.from_source({MARKETING!r}, namespace=tools)
again = Flow.from_agentspec(flow.to_agentspec(), tools=tools, model="offline")
run = again.run(username="ada")
assert run.status == "succeeded", run.summary()
heavy = [m for m in ("IPython", "ipywidgets", "openai", "pyagentspec", "yaml") if m in sys.modules]
print(heavy)
"""
    env = {**os.environ, "FLOWMAGIC_OFFLINE_LATENCY": "0"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
