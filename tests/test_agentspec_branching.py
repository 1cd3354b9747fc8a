"""``if/elif/else`` blocks and subflows in Agent Spec: ``BranchingNode`` and ``FlowNode``, both ways.

Every export is loaded by pyagentspec's own deserializer; routed flows go out and come back
and take the same arms; Agent Spec's own conditional-branches how-to (a generate/review loop
that a BranchingNode closes), written here with pyagentspec, imports and runs; WayFlow runs a
routed flow and a subflow exported from here (see ``test_agentspec`` for its environment).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from llm_server import LLMServer
from pyagentspec.flows.edges import ControlFlowEdge, DataFlowEdge
from pyagentspec.flows.flow import Flow as SpecFlow
from pyagentspec.flows.nodes import (
    BranchingNode,
    EndNode,
    FlowNode,
    LlmNode,
    ParallelFlowNode,
    StartNode,
    ToolNode,
)
from pyagentspec.llms import OpenAiConfig
from pyagentspec.property import StringProperty
from pyagentspec.serialization import AgentSpecSerializer
from pyagentspec.tools import ServerTool
from test_agentspec import load, nodes_of, wayflow
from test_agentspec import wayflow_python as wayflow_python  # a fixture

from flowmagic import Flow, Run
from flowmagic.interop.agentspec import AgentSpecError
from flowmagic.interop.agentspec_import import LOOP_ROUNDS

# -- DESIGN.md's support flow, with a tool that gives the label itself (a BranchingNode reads one value)
SUPPORT_TOOLS_SOURCE = '''
def classify(ticket: str) -> str:
    """Bug, feature or question."""
    return "bug" if "crash" in ticket else "feature" if "wish" in ticket else "question"


def reproduce(ticket: str) -> str:
    return "1. open it 2. watch it crash"


def thank(repro: str) -> str:
    return "Thanks, we can reproduce it: " + repro


def search_faq(ticket: str) -> str:
    return "See the FAQ on logging in"
'''
SUPPORT_TOOLS = ("classify", "reproduce", "thank", "search_faq")

SUPPORT = """
kind = classify(ticket)
if kind == "bug":
    repro = reproduce(ticket)
    reply = thank(repro)
elif kind in ("feature", "wish"):
    reply = llm("Thank them for the idea: {ticket}")
else:
    reply = search_faq(ticket)
summary = llm("One line for the log: {reply}")
"""

TICKETS = {"it crashes on start": 0, "a wish: dark mode": 1, "how do I log in?": 2}  # ticket -> the arm


def support_tools() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(SUPPORT_TOOLS_SOURCE, namespace)
    return {name: namespace[name] for name in SUPPORT_TOOLS}


def support() -> Flow:
    return Flow.from_source(SUPPORT, name="support", namespace=support_tools(), model="offline")


def arm(run: Run) -> int:
    """The arm the run's one if block chose."""
    (cond,) = [n for n in run.steps if n.startswith("if@")]
    value = run[cond]
    assert isinstance(value, int)
    return value


def skipped(run: Run) -> list[str]:
    """The names the skipped steps assign (``reply`` for ``reply@7``: the lines differ)."""
    return sorted(n.partition("@")[0] for n, s in run.steps.items() if s.status == "skipped")


def plain_outputs(run: Run) -> dict[str, Any]:
    """The values of the names a reader can read after the blocks (not the conditions, not the arms' steps)."""
    return {k: v for k, v in run.outputs.items() if "@" not in k}


# -- export ----------------------------------------------------------------------------------------
def test_an_if_block_exports_as_a_branching_node_that_pyagentspec_loads() -> None:
    flow = support()
    for format in ("json", "yaml"):
        spec = load(flow.to_agentspec(format), format)  # type: ignore[arg-type]
        assert [n.name for n in spec.nodes] == [
            "start", "kind", "if@3", "repro", "reply@5", "reply@7", "reply@9", "summary", "end",
        ]  # fmt: skip
    branching = next(n for n in spec.nodes if isinstance(n, BranchingNode))
    assert branching.mapping == {"bug": "bug", "feature": "feature | wish", "wish": "feature | wish"}
    assert [p.title for p in branching.inputs or []] == ["kind"]
    control = {(e.from_node.name, e.from_branch, e.to_node.name) for e in spec.control_flow_connections}
    assert {
        ("kind", None, "if@3"),
        ("if@3", "bug", "repro"),
        ("repro", None, "reply@5"),
        ("if@3", "feature | wish", "reply@7"),
        ("if@3", "default", "reply@9"),  # the else arm is the default branch
        ("reply@5", None, "summary"),  # the arms meet again at the node after the block
        ("reply@7", None, "summary"),
        ("reply@9", None, "summary"),
    } <= control
    data = {(e.source_node.name, e.source_output, e.destination_node.name, e.destination_input)
            for e in spec.data_flow_connections or []}  # fmt: skip
    # the tested value flows into the BranchingNode; 'reply' after the block comes from each arm
    assert ("kind", "kind", "if@3", "kind") in data
    assert {(f"reply@{line}", "reply", "summary", "reply") for line in (5, 7, 9)} <= data
    assert [p.title for p in spec.outputs or []] == ["summary"]


def test_the_support_flow_goes_out_and_comes_back_taking_the_same_arms() -> None:
    flow = support()
    again = Flow.from_agentspec(flow.to_agentspec(), tools=support_tools(), model="offline")
    assert again.source.splitlines() == [
        "kind = classify(ticket=ticket)",
        "if kind == 'bug':",
        "    repro = reproduce(ticket=ticket)",
        "    reply = thank(repro=repro)",
        "elif kind in ('feature', 'wish'):",
        "    reply = llm('Thank them for the idea: {ticket}')",
        "else:",
        "    reply = search_faq(ticket=ticket)",
        "summary = llm('One line for the log: {reply}')",
    ]
    for ticket, chosen in TICKETS.items():
        original, rerun = flow.run(ticket=ticket), again.run(ticket=ticket)
        assert original.status == rerun.status == "succeeded", rerun.summary()
        assert arm(original) == arm(rerun) == chosen
        assert plain_outputs(rerun) == plain_outputs(original)
        assert skipped(rerun) == skipped(original)


def up(x: str) -> str:
    return x.upper()


def low(x: str) -> str:
    return x.lower()


def pick(x: str) -> str:
    return "a" if "a" in x else "b" if "b" in x else "c"


def pair(x: str, y: str) -> str:
    return f"{x}+{y}"


TOOLS = {"up": up, "low": low, "pick": pick, "pair": pair}

BLOCKS = {
    "nested": """
k = pick(t)
if k == "a":
    k2 = pick(t)
    if k2 == "a":
        r = up(t)
    else:
        r = low(t)
elif k == "b":
    r = pair(t, k)
else:
    r = low(k)
out = pair(r, t)
""",
    "no else": """
k = pick(t)
if k == "a":
    r = up(t)
    s = pair(r, t)
out = low(t)
""",
    "in a group": """
k = pick(t)
parallel:
    if k == "a":
        r = up(t)
    else:
        r = low(t)
    other = up(t)
out = pair(r, other)
""",
    "a group in an arm": """
k = pick(t)
if k in ("a", "b"):
    parallel:
        x = up(t)
        y = low(t)
    r = pair(x, y)
else:
    r = up(k)
out = low(r)
""",
    "the tested value an input": """
if mode == "loud":
    r = up(t)
else:
    r = low(t)
""",
}


@pytest.mark.parametrize("body", list(BLOCKS))
def test_blocks_nested_in_blocks_and_groups_go_out_and_come_back(body: str) -> None:
    flow = Flow.from_source(BLOCKS[body], name="blocks", namespace=TOOLS)
    text = flow.to_agentspec()
    spec = load(text)
    assert any(isinstance(n, BranchingNode) for n in nodes_of(spec))
    again = Flow.from_agentspec(text, tools=TOOLS)
    for t in ("xa", "xb", "xc"):
        inputs = {"t": t, "mode": "loud" if t == "xa" else "quiet"}
        original, rerun = flow.run(**inputs), again.run(**inputs)
        assert rerun.status == "succeeded", rerun.summary()
        assert [arm for n, arm in rerun.outputs.items() if n.startswith("if@")] == [
            arm for n, arm in original.outputs.items() if n.startswith("if@")
        ]
        assert plain_outputs(rerun) == plain_outputs(original)
    if body == "nested":  # the same text comes back
        assert again.source.splitlines()[:9] == [
            "k = pick(x=t)",
            "if k == 'a':",
            "    k2 = pick(x=t)",
            "    if k2 == 'a':",
            "        r = up(x=t)",
            "    else:",
            "        r = low(x=t)",
            "elif k == 'b':",
            "    r = pair(x=t, y=k)",
        ]


def count(q: str) -> int:
    return len(q)


@pytest.mark.parametrize(
    ("body", "step", "why"),
    [
        ('k = pick(q)\nif k.label == "a":\n    r = up(q)\n', "if@2", "reads 'k.label', not a name"),
        ('k = pick(q)\nif k > "a":\n    r = up(q)\n', "if@2", "is not an equality with a string"),
        (
            'a = pick(q)\nb = pick(q)\nif a == "x":\n    r = up(q)\nelif b == "y":\n    r = low(q)\n',
            "if@3",
            "its tests read 'a' and 'b'",
        ),
        (
            'a = pick(q)\nif a == "x":\n    r = up(q)\nelif a in ("x",):\n    r = low(q)\n',
            "if@2",
            "its arm 'elif a in (\"x\",)' can never be chosen",
        ),
        ('n = count(q)\nif n == "3":\n    r = up(q)\n', "if@2", "'n' is not a string"),
        # a step inside an arm that Agent Spec cannot express: the error names the block, then the step
        ('k = pick(q)\nif k == "a":\n    r = up(q) + "!"\n', "if@2", "in its arm 'if k == \"a\"', step 'r' (line 3)"),
        # a loop without a break has no Agent Spec form (see test_agentspec_loops)
        ("d = up(q)\nfor i in range(3):\n    d = low(d)\n", "for@2", "a 'for' loop has no Agent Spec form"),
    ],
)
def test_a_block_agent_spec_cannot_express_is_an_error_naming_its_condition(body: str, step: str, why: str) -> None:
    flow = Flow.from_source(body, name="bad", namespace={**TOOLS, "count": count})
    with pytest.raises(AgentSpecError) as info:
        flow.to_agentspec()
    message = str(info.value)
    assert f"step '{step}' (line {flow.steps[step].line}) cannot be exported" in message
    assert why in message
    if step.startswith("if@"):
        assert 'write each test as kind == "bug"' in message or "not a string" in message or "arm" in message


def test_no_arm_step_leaks_out_of_the_block_in_the_document() -> None:
    # a step only one arm assigns is no output of the flow (it has no value on the other branches)
    flow = Flow.from_source(BLOCKS["no else"], name="blocks", namespace=TOOLS)
    spec = load(flow.to_agentspec())
    assert [p.title for p in spec.outputs or []] == ["out"]
    # the block and 'out' are independent: side by side; in the block's branch, without an else,
    # the default branch goes straight on (here, to the branch's end)
    (parallel,) = [n for n in spec.nodes if isinstance(n, ParallelFlowNode)]
    (branch,) = [s for s in parallel.subflows if any(isinstance(n, BranchingNode) for n in s.nodes)]
    assert [n.name for n in branch.nodes] == ["start", "k", "if@3", "r", "s", "end"]
    assert [p.title for p in branch.outputs or []] == []
    edges = {(e.from_node.name, e.from_branch, e.to_node.name) for e in branch.control_flow_connections}
    assert {("if@3", "a", "r"), ("r", None, "s"), ("s", None, "end"), ("if@3", "default", "end")} == edges - {
        ("start", None, "k"),
        ("k", None, "if@3"),
    }


# -- subflows --------------------------------------------------------------------------------------
SUB_TOOLS_SOURCE = """
def kind_of(question: str) -> str:
    return "animal" if question in ("cats", "dogs") else "other"


def zoo(question: str) -> str:
    return f"zoo facts on {question}"


def web(question: str) -> str:
    return f"web pages on {question}"


def compare(a: str, b: str) -> str:
    return f"{a} | {b}"
"""


def sub_tools() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(SUB_TOOLS_SOURCE, namespace)
    return {name: namespace[name] for name in ("kind_of", "zoo", "web", "compare")}


SUB_TOOLS = sub_tools()

RESEARCH = """
kind = kind_of(question)
if kind == "animal":
    notes = zoo(question)
else:
    notes = web(question)
"""

REPORT = """
parallel:
    cats = research(question="cats")      # research is a Flow: a subflow
    cars = research(question=other)
both = compare(cats, cars)
"""


def report() -> Flow:
    research = Flow.from_source(RESEARCH, name="research", namespace=SUB_TOOLS)
    return Flow.from_source(REPORT, name="report", namespace={**SUB_TOOLS, "research": research})


def test_a_subflow_exports_as_a_flow_node_whose_subflow_is_the_called_flow() -> None:
    flow = report()
    spec = load(flow.to_agentspec())
    calls = [n for n in nodes_of(spec) if isinstance(n, FlowNode)]
    assert sorted(n.name for n in calls) == ["cars", "cats"]
    for node in calls:
        assert node.subflow.name == "research"
        assert any(isinstance(n, BranchingNode) for n in node.subflow.nodes)  # the called flow's own if block
        assert [p.title for p in node.outputs or []] == ["notes"]  # its final step is the value
    cats = next(n for n in calls if n.name == "cats")
    assert [p.json_schema for p in cats.inputs or []] == [{"title": "question", "type": "string", "default": "cats"}]
    assert isinstance(spec.nodes[1], ParallelFlowNode)
    # and back: the subflow inline, once per call
    again = Flow.from_agentspec(flow.to_agentspec(), tools=SUB_TOOLS)
    rerun, original = again.run(other="cars"), flow.run(other="cars")
    assert rerun["both"] == original["both"] == "zoo facts on cats | web pages on cars"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("x = research(q)\n", "with its inputs by name: research(question=...)"),
        ("x = research(topic=q)\n", "'research' reads no input 'topic' (it reads question)"),
        ("x = two(question=q)\n", "its value is a dict of the final steps of 'two' (a, b)"),
        ("x = research(question=[q])\n", "input 'question' must be a name or a literal value"),
        ("x = compare(research(question=q), q)\n", "a subflow becomes a FlowNode: call it on its own"),
    ],
)
def test_a_subflow_call_agent_spec_cannot_express_is_an_error_naming_the_step(body: str, why: str) -> None:
    research = Flow.from_source(RESEARCH, name="research", namespace=SUB_TOOLS)
    two = Flow.from_source("a = zoo(question)\nb = web(question)\n", name="two", namespace=SUB_TOOLS)
    flow = Flow.from_source(body, name="bad", namespace={**SUB_TOOLS, "research": research, "two": two})
    with pytest.raises(AgentSpecError, match=r"step 'x' \(line 1\) cannot be exported") as info:
        flow.to_agentspec()
    assert why in str(info.value)


# -- import ------------------------------------------------------------------------------------------
def connect(a: Any, b: Any, branch: str | None = None) -> ControlFlowEdge:
    return ControlFlowEdge(name=f"{a.name} to {b.name}", from_node=a, from_branch=branch, to_node=b)


def feed(a: Any, output: str, b: Any, input_: str) -> DataFlowEdge:
    return DataFlowEdge(
        name=f"{a.name}.{output} to {b.name}.{input_}",
        source_node=a,
        source_output=output,
        destination_node=b,
        destination_input=input_,
    )


def tool_node(name: str, inputs: list[Any], output: Any) -> ToolNode:
    return ToolNode(name=name, tool=ServerTool(name=name, inputs=inputs, outputs=[output]))


def howto_conditional_branches() -> SpecFlow:
    """Agent Spec's how-to "flow with conditional branches", in our words: an LLM writes code for a
    request, another reviews it, a decision node says whether it is ready, and a BranchingNode
    ends the flow on "yes" or goes back to writing on "no" (the decision is a stub tool here)."""
    request = StringProperty(title="user_request")
    code = StringProperty(title="code", default="")
    review = StringProperty(title="review", default="")
    ready = StringProperty(title="is_code_ready", default="no")
    config = OpenAiConfig(name="coder", model_id="gpt-4o-mini")
    start = StartNode(name="Start node", inputs=[request])
    end = EndNode(name="End node", outputs=[code])
    write = LlmNode(
        name="Generate code node",
        llm_config=config,
        prompt_template="Write Python for: {{user_request}}\nYour last try:\n{{code}}\nIts review:\n{{review}}",
        inputs=[request, code, review],
        outputs=[code],
    )
    check = LlmNode(
        name="Review code node",
        llm_config=config,
        prompt_template="Review this Python code:\n{{code}}",
        inputs=[code],
        outputs=[review],
    )
    decide = tool_node("is_ready", [review], ready)
    branching = BranchingNode(
        name="Is code ready branching node", mapping={"yes": "yes", "no": "no"}, inputs=[ready], outputs=[]
    )
    return SpecFlow(
        name="Generate code and review flow",
        start_node=start,
        nodes=[start, write, check, decide, branching, end],
        control_flow_connections=[
            connect(start, write),
            connect(write, check),
            connect(check, decide),
            connect(decide, branching),
            connect(branching, end, "yes"),
            connect(branching, write, "no"),  # back: write again
        ],
        data_flow_connections=[
            feed(start, "user_request", write, "user_request"),
            feed(write, "code", end, "code"),
            feed(write, "code", write, "code"),  # the last try, "" the first time (its default)
            feed(write, "code", check, "code"),
            feed(check, "review", write, "review"),
            feed(check, "review", decide, "review"),
            feed(decide, "is_code_ready", branching, "is_code_ready"),
        ],
    )


def test_agent_specs_conditional_branches_howto_imports_as_a_loop_and_runs() -> None:
    text = AgentSpecSerializer().to_json(howto_conditional_branches())
    reviews: list[str] = []

    def is_ready(review: str) -> str:
        reviews.append(review)
        return "yes" if len(reviews) == 2 else "no"  # ready the second time

    flow = Flow.from_agentspec(text, tools={"is_ready": is_ready}, model="offline")
    assert flow.source.splitlines() == [
        "code = code_default",
        "review = review_default",
        f"for attempt in range({LOOP_ROUNDS}):",
        "    code = llm('Write Python for: {user_request}\\nYour last try:\\n{code}\\nIts review:\\n{review}')",
        "    review = llm('Review this Python code:\\n{code}')",
        "    is_code_ready = is_ready(review=review)",
        "    if is_code_ready != 'no':",
        "        break",
    ]
    run = flow.run(user_request="a function that sorts a list")
    assert run.status == "succeeded", run.summary()
    assert len(reviews) == 2 and "code#3" not in run.steps  # two rounds: "no", then "yes"
    first, second = run.steps["code#1"].llm["prompt"], run.steps["code#2"].llm["prompt"]
    assert first.endswith("Your last try:\n\nIts review:\n")  # the defaults, the first time
    assert reviews[0] in second  # the round before's review, carried
    assert run["code"] and run["is_code_ready"] == "yes"


def test_a_branching_node_whose_branches_end_at_their_own_end_nodes_imports_as_an_if_block() -> None:
    # as in pyagentspec's BranchingNode example: access granted or denied, each with its end
    password, message = StringProperty(title="password"), StringProperty(title="message")
    verdict = StringProperty(title="verdict")
    start = StartNode(name="start", inputs=[password])
    check = tool_node("check", [password], verdict)
    branching = BranchingNode(name="password check", mapping={"ok": "granted"}, inputs=[verdict])
    welcome, refuse = tool_node("welcome", [], message), tool_node("refuse", [], message)
    granted = EndNode(name="access granted end", branch_name="ACCESS_GRANTED", outputs=[message])
    denied = EndNode(name="access denied end", branch_name="ACCESS_DENIED", outputs=[message])
    spec = SpecFlow(
        name="check access",
        start_node=start,
        nodes=[start, check, branching, welcome, refuse, granted, denied],
        control_flow_connections=[
            connect(start, check),
            connect(check, branching),
            connect(branching, welcome, "granted"),
            connect(branching, refuse, "default"),
            connect(welcome, granted),
            connect(refuse, denied),
        ],
        data_flow_connections=[
            feed(start, "password", check, "password"),
            feed(check, "verdict", branching, "verdict"),
            feed(welcome, "message", granted, "message"),
            feed(refuse, "message", denied, "message"),
        ],
    )
    tools = {
        "check": lambda password: "ok" if password == "123456" else "wrong",
        "welcome": lambda: "welcome in",
        "refuse": lambda: "go away",
    }
    flow = Flow.from_agentspec(AgentSpecSerializer().to_json(spec), tools=tools)
    assert flow.source.splitlines() == [
        "verdict = check(password=password)",
        "if verdict == 'ok':",
        "    message = welcome()",
        "else:",
        "    message = refuse()",
    ]
    assert flow.run(password="123456")["message"] == "welcome in"
    assert flow.run(password="hunter2")["message"] == "go away"


def test_a_flow_node_whose_end_branch_is_named_after_its_end_node_imports() -> None:
    # WayFlow writes an EndNode's branch_name as its name ("end"), and the FlowNode's edge leaves by it
    word, loud = StringProperty(title="word"), StringProperty(title="loud")
    start, end = StartNode(name="start", inputs=[word]), EndNode(name="end", branch_name="end", outputs=[loud])
    shout = tool_node("shout", [word], loud)
    inner = SpecFlow(
        name="shouting",
        start_node=start,
        nodes=[start, shout, end],
        control_flow_connections=[connect(start, shout), connect(shout, end)],
        data_flow_connections=[feed(start, "word", shout, "word"), feed(shout, "loud", end, "loud")],
    )
    call = FlowNode(name="call", subflow=inner)
    assert call.branches == ["end"]
    start, end = StartNode(name="start", inputs=[word]), EndNode(name="end", outputs=[loud])
    outer = SpecFlow(
        name="outer",
        start_node=start,
        nodes=[start, call, end],
        control_flow_connections=[connect(start, call), connect(call, end, "end")],
        data_flow_connections=[feed(start, "word", call, "word"), feed(call, "loud", end, "loud")],
    )
    flow = Flow.from_agentspec(AgentSpecSerializer().to_json(outer), tools={"shout": lambda word: word.upper()})
    assert flow.source == "loud = shout(word=word)\n"
    assert flow.run(word="hi")["loud"] == "HI"


def spec_document(nodes: list[Any], control: list[ControlFlowEdge], data: list[DataFlowEdge]) -> str:
    spec = SpecFlow(
        name="shapes", start_node=nodes[0], nodes=nodes, control_flow_connections=control, data_flow_connections=data
    )
    return AgentSpecSerializer().to_json(spec)


def test_control_flows_flowmagic_cannot_import_are_errors_naming_a_node() -> None:
    x, y, key = StringProperty(title="x"), StringProperty(title="y"), StringProperty(title="key")
    start, end = StartNode(name="start", inputs=[x]), EndNode(name="end", outputs=[y])
    a, b = tool_node("a", [x], y), tool_node("b", [y], x)
    # a loop with no BranchingNode to leave it (pyagentspec refuses to build it: the file is edited)
    document = json.loads(
        spec_document(
            [start, a, b, end],
            [connect(start, a), connect(a, b), connect(b, end)],
            [feed(start, "x", a, "x"), feed(a, "y", b, "y")],
        )
    )
    (edge,) = [e for e in document["control_flow_connections"] if e["name"] == "b to end"]
    edge["to_node"] = {"$component_ref": a.id}
    with pytest.raises(AgentSpecError, match="loops back to ToolNode 'a' from ToolNode 'b', with no BranchingNode"):
        Flow.from_agentspec(json.dumps(document), tools={"a": up, "b": up})
    # a BranchingNode that goes back and leaves the loop for two different nodes
    decide = tool_node("decide", [y], key)
    branching = BranchingNode(name="again?", mapping={"again": "again", "stop": "stop"}, inputs=[key])
    c = tool_node("c", [y], x)
    text = spec_document(
        [start, a, decide, branching, c, end],
        [
            connect(start, a),
            connect(a, decide),
            connect(decide, branching),
            connect(branching, a, "again"),
            connect(branching, c, "stop"),
            connect(branching, end, "default"),
            connect(c, end),
        ],
        [feed(start, "x", a, "x"), feed(a, "y", decide, "y"), feed(decide, "key", branching, "key")],
    )
    with pytest.raises(AgentSpecError, match="BranchingNode 'again\\?' loops back to ToolNode 'a' and leaves the loop"):
        Flow.from_agentspec(text, tools={"a": up, "decide": up, "c": up})


# -- with WayFlow ---------------------------------------------------------------------------------
WAYFLOW_RUN_ROUTED = "\n".join(
    [
        "import json, sys",
        "from wayflowcore.agentspec import AgentSpecLoader",
        SUPPORT_TOOLS_SOURCE,
        SUB_TOOLS_SOURCE,
        f"tools = {{name: globals()[name] for name in {[*SUPPORT_TOOLS, *SUB_TOOLS]!r}}}",
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
def test_wayflow_runs_a_routed_flow_and_a_subflow_exported_from_here(
    wayflow_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LLMServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # the export points WayFlow at this server
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")  # WayFlow's client reads it; the export never does
        routed = Flow.from_source(SUPPORT, name="support", namespace=support_tools()).to_agentspec()
        exports = {ticket: (routed, {"ticket": ticket}) for ticket in TICKETS}
        exports["report"] = (report().to_agentspec(), {"other": "cars"})
        outputs = json.loads(wayflow(wayflow_python, WAYFLOW_RUN_ROUTED, stdin=json.dumps(exports)))
        prompts = [r.prompt for r in server.chat_requests]
    tools = support_tools()
    # each ticket took its arm in WayFlow: the log line reads that arm's reply
    bug, feature, question = (outputs[t]["summary"] for t in TICKETS)
    assert "One line for the log: " + tools["thank"](tools["reproduce"]("")) in bug
    assert "Thank them for the idea: a wish: dark mode" in feature
    assert "One line for the log: " + tools["search_faq"]("") in question
    # the arm's prompt ran for the one ticket that chose it; the log line ran for each ticket
    assert sum("Thank them for the idea" in p and "One line for the log" not in p for p in prompts) == 1
    assert sum("One line for the log" in p for p in prompts) == len(TICKETS)
    assert outputs["report"]["both"] == report().run(other="cars")["both"]


# WayFlow's own forms, built and exported by wayflowcore: a BranchingStep (its how-to "conditional
# transitions", with output messages), and a FlowExecutionStep whose subflow ends at a CompleteStep
# named "end" (WayFlow then names the FlowNode's branch "end")
WAYFLOW_BUILT = '''
import json
from wayflowcore.agentspec import AgentSpecExporter
from wayflowcore.controlconnection import ControlFlowEdge
from wayflowcore.dataconnection import DataFlowEdge
from wayflowcore.flow import Flow
from wayflowcore.property import StringProperty
from wayflowcore.steps import (
    BranchingStep, CompleteStep, FlowExecutionStep, OutputMessageStep, StartStep, ToolExecutionStep,
)
from wayflowcore.tools.toolhelpers import DescriptionMode, tool

start = StartStep(name="start", input_descriptors=[StringProperty(name="my_var")])
branching = BranchingStep(name="branch", branch_name_mapping={"[SUCCESS]": "success", "[FAILURE]": "failure"})
worked = OutputMessageStep(name="worked", message_template="It worked")
failed = OutputMessageStep(name="failed", message_template="It failed")
end = CompleteStep(name="end")
branches = Flow(
    begin_step=start,
    control_flow_edges=[
        ControlFlowEdge(start, branching),
        ControlFlowEdge(branching, worked, source_branch="success"),
        ControlFlowEdge(branching, failed, source_branch="failure"),
        ControlFlowEdge(branching, end, source_branch=BranchingStep.BRANCH_DEFAULT),
        ControlFlowEdge(worked, end),
        ControlFlowEdge(failed, end),
    ],
    data_flow_edges=[DataFlowEdge(start, "my_var", branching, BranchingStep.NEXT_BRANCH_NAME)],
)

@tool(description_mode=DescriptionMode.ONLY_DOCSTRING, output_descriptors=[StringProperty(name="loud")])
def shout(word: str) -> str:
    """Shout a word"""
    return word

start = StartStep(name="start", input_descriptors=[StringProperty(name="word")])
step = ToolExecutionStep(name="shout_step", tool=shout)
end = CompleteStep(name="end")
inner = Flow(
    begin_step=start,
    control_flow_edges=[ControlFlowEdge(start, step), ControlFlowEdge(step, end)],
    data_flow_edges=[DataFlowEdge(start, "word", step, "word")],
)
call = FlowExecutionStep(name="call", flow=inner)
start = StartStep(name="start", input_descriptors=[StringProperty(name="word")])
end = CompleteStep(name="end")
outer = Flow(
    begin_step=start,
    control_flow_edges=[ControlFlowEdge(start, call), ControlFlowEdge(call, end, source_branch=call.get_branches()[0])],
    data_flow_edges=[DataFlowEdge(start, "word", call, "word")],
)
exporter = AgentSpecExporter()
print(json.dumps({"branches": exporter.to_json(branches), "subflow": exporter.to_json(outer)}))
'''


@pytest.mark.timeout(1500)  # the first use creates wayflowcore's environment
def test_wayflows_own_branching_and_subflow_exports_import_and_run(wayflow_python: str) -> None:
    documents = json.loads(wayflow(wayflow_python, WAYFLOW_BUILT))
    branches = Flow.from_agentspec(documents["branches"])
    assert branches.source.splitlines()[:3] == [
        "if my_var == '[SUCCESS]':",
        "    output_message = 'It worked'.format()",
        "elif my_var == '[FAILURE]':",
    ]
    runs = {v: branches.run(my_var=v) for v in ("[SUCCESS]", "[FAILURE]", "anything else")}
    assert runs["[SUCCESS]"]["output_message"] == "It worked"
    assert "It failed" in runs["[FAILURE]"].outputs.values()
    assert [arm(r) for r in runs.values()] == [0, 1, 2]  # the default branch: past the last arm, nothing runs
    subflow = json.loads(documents["subflow"])
    # WayFlow's FlowNode leaves by its subflow's EndNode's name
    assert any(e.get("from_branch") == "end" for e in subflow["control_flow_connections"])
    flow = Flow.from_agentspec(documents["subflow"], tools={"shout": lambda word: word.upper()})
    assert flow.run(word="hi")["loud"] == "HI"
