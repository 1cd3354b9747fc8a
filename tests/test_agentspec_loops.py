"""``for`` loops in Agent Spec: a branch back to an earlier node, both ways.

DESIGN.md's tagline loop, with stub tools, exports as its body's nodes and a BranchingNode
that goes back to them; pyagentspec's deserializer loads it; it imports back here as a loop
of the same rounds and runs to the same values; WayFlow runs it too (see ``test_agentspec``
for its environment). The loops Agent Spec cannot express are errors naming the loop's step.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pyagentspec.flows.flow import Flow as SpecFlow
from pyagentspec.flows.nodes import BranchingNode, EndNode, ParallelFlowNode, StartNode
from pyagentspec.property import StringProperty
from pyagentspec.serialization import AgentSpecSerializer
from test_agentspec import load, nodes_of, wayflow
from test_agentspec import wayflow_python as wayflow_python  # a fixture
from test_agentspec_branching import connect, feed, tool_node

from flowmagic import Flow, Run
from flowmagic.interop.agentspec import AgentSpecError
from flowmagic.interop.agentspec_import import LOOP_ROUNDS

# -- DESIGN.md's tagline loop, with tools that stand for the prompts (a BranchingNode reads one value)
TOOLS_SOURCE = '''
def write(product: str) -> str:
    """A first tagline."""
    return product + ": simply good"


def judge(draft: str) -> str:
    """Good once it is enthusiastic enough."""
    CALLS.append(draft)
    if len(CALLS) > 50:
        raise RuntimeError("the loop does not end")
    return "good" if draft.count("!") >= 2 else "bad"


def improve(draft: str) -> str:
    return draft + "!"


def polish(draft: str) -> str:
    return draft.upper()


def pair(a: str, b: str) -> str:
    return a + " + " + b
'''
TOOL_NAMES = ("write", "judge", "improve", "polish", "pair")

TAGLINE = """
draft = write(product)
for attempt in range({rounds}):
    verdict = judge(draft)
    if verdict == "good":
        break
    draft = improve(draft)
tagline = polish(draft)
"""

#: product -> the round whose verdict is good (judge wants two "!", improve adds one a round)
PRODUCTS = {"tea": 3, "tea!": 2, "tea!!": 1}


def tools() -> dict[str, Any]:
    namespace: dict[str, Any] = {"CALLS": []}
    exec(TOOLS_SOURCE, namespace)
    return {name: namespace[name] for name in TOOL_NAMES}


TOOLS = tools()  # the original flows' tools (the imported flows get tools of their own)


def tagline(rounds: int = 3) -> Flow:
    return Flow.from_source(TAGLINE.format(rounds=rounds), name="tagline", namespace=TOOLS)


def rounds_run(run: Run) -> int:
    """How many rounds the tagline loop ran: the records ``verdict#1``, ``verdict#2``..."""
    return sum(1 for name in run.steps if name.startswith("verdict#"))


def judged(tools: dict[str, Any]) -> list[str]:
    """What the ``judge`` tool of ``tools`` was given since it was last cleared."""
    calls: list[str] = tools["judge"].__globals__["CALLS"]
    return calls


def same_results(original: Flow, again: Flow, tools_again: dict[str, Any], **inputs: Any) -> Run:
    """Both flows run to the same values of the original's final steps; the one imported with
    ``tools_again`` judges the same drafts as the original (whose tools are ``TOOLS``)."""
    runs = []
    for flow, given in ((original, TOOLS), (again, tools_again)):
        judged(given).clear()
        runs.append((flow.run(**inputs), list(judged(given))))
    (first, calls), (second, calls_again) = runs
    assert first.status == second.status, second.summary()
    assert {n: first.outputs.get(n) for n in original.final_steps} == {
        n: second.outputs.get(n) for n in original.final_steps
    }
    assert calls == calls_again
    return first


def edges(spec: SpecFlow) -> tuple[set[tuple[str, str | None, str]], set[tuple[str, str, str, str]]]:
    control = {(e.from_node.name, e.from_branch, e.to_node.name) for e in spec.control_flow_connections}
    data = {(e.source_node.name, e.source_output, e.destination_node.name, e.destination_input)
            for e in spec.data_flow_connections or []}  # fmt: skip
    return control, data


# -- export ----------------------------------------------------------------------------------------
def test_the_tagline_loop_exports_as_a_branch_back_that_pyagentspec_loads() -> None:
    flow = tagline()
    for format in ("json", "yaml"):
        spec = load(flow.to_agentspec(format), format)  # type: ignore[arg-type]
        assert [n.name for n in spec.nodes] == ["start", "draft@2", "verdict", "if@5", "draft", "tagline", "end"]
    (branching,) = [n for n in spec.nodes if isinstance(n, BranchingNode)]
    assert branching.mapping == {"good": "good"}
    assert [p.title for p in branching.inputs or []] == ["verdict"]
    control, data = edges(spec)
    assert control == {
        ("start", None, "draft@2"),
        ("draft@2", None, "verdict"),
        ("verdict", None, "if@5"),
        ("if@5", "good", "tagline"),  # break: on to what follows the loop
        ("if@5", "default", "draft"),  # go on: the rest of the body...
        ("draft", None, "verdict"),  # ...and back to the body's first node
        ("tagline", None, "end"),
    }
    # the carried draft: from before the loop, and from the round before
    assert {("draft@2", "draft", "verdict", "draft"), ("draft", "draft", "verdict", "draft")} <= data
    assert {("draft@2", "draft", "draft", "draft"), ("draft", "draft", "draft", "draft")} <= data
    # after the loop: the last draft, whichever round (or none) made it
    assert {("draft@2", "draft", "tagline", "draft"), ("draft", "draft", "tagline", "draft")} <= data
    assert [p.title for p in spec.outputs or []] == ["verdict", "tagline"]
    # the bound of range(3) has no Agent Spec form: it is kept in the BranchingNode's metadata
    (node,) = [c for c in json.loads(flow.to_agentspec())["$referenced_components"].values() if c["name"] == "if@5"]
    assert node["metadata"] == {"flowmagic": {"rounds": 3}}
    assert branching.metadata == {"flowmagic": {"rounds": 3}}


def test_the_tagline_loop_comes_back_as_a_loop_of_the_same_rounds_and_runs_to_the_same_values() -> None:
    flow, given = tagline(), tools()
    again = Flow.from_agentspec(flow.to_agentspec(), tools=given)
    assert again.source.splitlines() == [
        "draft = write(product=product)",
        "draft_2 = draft",
        "for attempt in range(3):",
        "    verdict = judge(draft=draft_2)",
        "    if verdict == 'good':",
        "        break",
        "    draft_2 = improve(draft=draft_2)",
        "tagline = polish(draft=draft_2)",
    ]
    for product, good in PRODUCTS.items():
        run = same_results(flow, again, given, product=product)
        assert rounds_run(run) == rounds_run(again.run(product=product)) == good
        assert run["verdict"] == "good" and run["tagline"].count("!") == 2
    # the rounds survive a second trip
    twice = load(again.to_agentspec())
    (branching,) = [n for n in twice.nodes if isinstance(n, BranchingNode)]
    assert branching.metadata == {"flowmagic": {"rounds": 3}}


def test_a_loop_that_runs_out_of_rounds_comes_back_with_the_same_bound() -> None:
    flow, given = tagline(rounds=2), tools()  # 'tea' would be good in the third round: it never is
    again = Flow.from_agentspec(flow.to_agentspec(), tools=given)
    assert "for attempt in range(2):" in again.source.splitlines()
    run = same_results(flow, again, given, product="tea")
    assert rounds_run(run) == rounds_run(again.run(product="tea")) == 2
    assert run["verdict"] == "bad" and run["tagline"] == "TEA: SIMPLY GOOD!!"


SHAPES = {
    "the break at the body's end": """
d = write(product)
for i in range(4):
    d = improve(d)
    v = judge(d)
    if v == "good":
        break
out = pair(d, v)
""",
    "the break first, on a carried value": """
d = write(product)
v = judge(d)
for i in range(4):
    if v == "good":
        break
    d = improve(d)
    v = judge(d)
out = pair(d, v)
""",
    "the else breaks": """
d = write(product)
for i in range(4):
    v = judge(d)
    if v in ("bad", "worse"):
        d = improve(d)
    else:
        break
out = polish(d)
""",
    "an if block after the break": """
d = write(product)
for i in range(4):
    v = judge(d)
    if v == "good":
        break
    w = judge(product)
    if w == "bad":
        d = improve(d)
    else:
        d = pair(d, w)
out = polish(d)
""",
    "a carried value one arm gives": """
d = write(product)
for i in range(4):
    v = judge(d)
    if v == "good":
        break
    w = judge(product)
    if w == "bad":
        d = improve(d)
out = polish(d)
""",
    "independent steps in the body": """
d = write(product)
for i in range(4):
    parallel:
        v = judge(d)
        loud = polish(d)
    if v == "good":
        break
    d = improve(loud)
out = pair(d, v)
""",
    "a loop in an if arm": """
k = judge(product)
if k == "bad":
    d = write(product)
    for i in range(4):
        v = judge(d)
        if v == "good":
            break
        d = improve(d)
    out = polish(d)
else:
    out = polish(product)
last = pair(out, k)
""",
    "two loops": """
d = write(product)
for i in range(3):
    v = judge(d)
    if v == "good":
        break
    d = improve(d)
e = polish(d)
for j in range(2):
    w = judge(e)
    if w == "bad":
        break
    e = pair(e, d)
out = polish(e)
""",
    "a prompt in the body": """
d = write(product)
for i in range(3):
    v = judge(d)
    if v == "good":
        break
    d = llm("Make it more enthusiastic: {d}")
out = polish(d)
""",
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_loops_of_every_exported_shape_go_out_and_come_back_to_the_same_values(shape: str) -> None:
    flow = Flow.from_source(SHAPES[shape], name="shapes", namespace=TOOLS, model="offline")
    text = flow.to_agentspec()
    spec = load(text)
    branchings = [n for n in nodes_of(spec) if isinstance(n, BranchingNode) and n.metadata]
    assert branchings and all(n.metadata["flowmagic"]["rounds"] in (2, 3, 4) for n in branchings)
    # a loop's body is laid out one node after another: WayFlow runs a ParallelFlowNode only once in a loop
    assert not any(isinstance(n, ParallelFlowNode) for n in spec.nodes)
    given = tools()
    again = Flow.from_agentspec(text, tools=given, model="offline")
    assert again.source.count("for ") == SHAPES[shape].count("for ")
    for product in [*PRODUCTS, "coffee!!!"]:
        same_results(flow, again, given, product=product)


def test_a_name_the_body_gives_only_past_its_break_is_no_output_and_cannot_be_read_after_it() -> None:
    body = 'd = write(product)\nfor i in range(3):\n    v = judge(d)\n    if v == "good":\n        break\n'
    # 'loud' has no value when the first round breaks: like a step inside an arm, no output of the flow
    flow = Flow.from_source(body + "    loud = polish(d)\n    d = improve(d)\n", name="past", namespace=tools())
    spec = load(flow.to_agentspec())
    assert [p.title for p in spec.outputs or []] == ["v", "d"]
    read = Flow.from_source(body + "    loud = polish(d)\n    d = improve(d)\nout = pair(d, loud)\n", namespace=tools())
    with pytest.raises(AgentSpecError, match=r"step 'for@2' \(line 2\) cannot be exported") as info:
        read.to_agentspec()
    assert "step 'out' reads 'loud' after it, which its body gives only past its 'break'" in str(info.value)


HEAD = "d = write(product)\n"
LOOP = '    v = judge(d)\n    if v == "good":\n        break\n    d = improve(d)\n'


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (HEAD + "for x in items:\n" + LOOP, "a 'for' loop has no Agent Spec form over 'items'"),
        (HEAD + "for x in range(n):\n" + LOOP, "over 'range(n)': its bounds must be whole numbers"),
        (HEAD + "for x in range(0):\n" + LOOP, "over 'range(0)', of 0 rounds"),
        (HEAD + "for x in range(5000):\n" + LOOP, "of 5000 rounds (a loop runs from 1 to 1000)"),
        (HEAD + "for x in range(3):\n    d = improve(d)\n", "a 'for' loop has no Agent Spec form without a 'break'"),
        (
            HEAD + 'for x in range(3):\n    v = judge(d)\n    if v.startswith("g"):\n        break\n'
            "    d = improve(d)\n",
            "in its body, step 'if@4' (line 4) cannot: its test 'v.startswith(\"g\")' is not an equality with a string",
        ),
        (
            HEAD + 'for x in range(3):\n    v = judge(d)\n    if v == "good":\n        break\n    d = d + "!"\n',
            "in its body, step 'if@4' (line 4) cannot: in its arm 'else', step 'd' (line 6) cannot: "
            "Agent Spec runs tools and prompts",
        ),
        (
            HEAD + 'for x in range(3):\n    v = judge(x)\n    if v == "good":\n        break\n    d = improve(d)\n',
            "its body reads the loop's variable 'x'",
        ),
        (
            HEAD + "for x in range(3):\n" + LOOP + '    w = judge(d)\n    if w == "good":\n        break\n',
            "with 'break' in 2 'if' blocks",
        ),
        (
            HEAD + 'for x in range(3):\n    v = judge(d)\n    if v == "good":\n        e = polish(d)\n        break\n'
            "    d = improve(d)\n",
            "runs steps before 'break'",
        ),
        (
            HEAD + 'for x in range(3):\n    v = judge(d)\n    if v == "good":\n        break\n    elif v == "ok":\n'
            "        d = improve(d)\n    else:\n        d = polish(d)\n",
            "its 'if' that breaks goes on by 2 arms",
        ),
        (
            HEAD + "for x in range(3):\n" + LOOP + "    for y in range(2):\n        w = judge(d)\n"
            '        if w == "good":\n            break\n        d = polish(d)\n',
            "with a loop inside it",
        ),
    ],
)
def test_a_loop_agent_spec_cannot_express_is_an_error_naming_the_loop(body: str, why: str) -> None:
    flow = Flow.from_source(body, name="bad", namespace={**tools(), "items": [1, 2], "n": 3})
    with pytest.raises(AgentSpecError) as info:
        flow.to_agentspec()
    message = str(info.value)
    assert "step 'for@2' (line 2) cannot be exported to Agent Spec: " in message
    assert why in message
    if "in its body" not in why:  # (those name the step inside and say what it should be)
        assert "write it 'for NAME in range(N):'" in message  # the form that exports


# -- import ----------------------------------------------------------------------------------------
def test_the_rounds_come_from_the_metadata_and_a_wrong_bound_is_an_error() -> None:
    document = json.loads(tagline().to_agentspec())
    (node,) = [c for c in document["$referenced_components"].values() if c["component_type"] == "BranchingNode"]
    node["metadata"] = {}  # another runtime's file: the default bound
    assert f"for attempt in range({LOOP_ROUNDS}):" in Flow.from_agentspec(json.dumps(document), tools=tools()).source
    for wrong in (0, 1001, "3", 2.5, True):
        node["metadata"] = {"flowmagic": {"rounds": wrong}}
        with pytest.raises(AgentSpecError, match=r"BranchingNode 'if@5': its metadata.flowmagic.rounds must be"):
            Flow.from_agentspec(json.dumps(document), tools=tools())


def test_a_loop_that_two_branching_nodes_leave_is_an_error_naming_them() -> None:
    x, key = StringProperty(title="x"), StringProperty(title="key")
    start, end = StartNode(name="start", inputs=[x]), EndNode(name="end", outputs=[x])
    a, b = tool_node("a", [x], key), tool_node("b", [x], key)
    first = BranchingNode(name="first", mapping={"stop": "stop"}, inputs=[key])
    second = BranchingNode(name="second", mapping={"stop": "stop"}, inputs=[key])
    spec = SpecFlow(
        name="two ways out",
        start_node=start,
        nodes=[start, a, first, b, second, end],
        control_flow_connections=[
            connect(start, a),
            connect(a, first),
            connect(first, end, "stop"),
            connect(first, b, "default"),
            connect(b, second),
            connect(second, end, "stop"),
            connect(second, a, "default"),
        ],
        data_flow_connections=[
            feed(start, "x", a, "x"),
            feed(start, "x", b, "x"),
            feed(start, "x", end, "x"),
            feed(a, "key", first, "key"),
            feed(b, "key", second, "key"),
        ],
    )
    with pytest.raises(AgentSpecError, match="the loop back to ToolNode 'a' is left from two places"):
        Flow.from_agentspec(AgentSpecSerializer().to_json(spec), tools={"a": str, "b": str})


# -- with WayFlow ---------------------------------------------------------------------------------
WAYFLOW_RUN_LOOPS = "\n".join(
    [
        "import json, sys",
        "from wayflowcore.agentspec import AgentSpecLoader",
        "CALLS = []",
        TOOLS_SOURCE,
        f"tools = {{name: globals()[name] for name in {list(TOOL_NAMES)!r}}}",
        """
outputs = {}
for name, (text, inputs) in json.loads(sys.stdin.read()).items():
    CALLS.clear()
    conversation = AgentSpecLoader(tool_registry=tools).load_json(text).start_conversation(inputs=inputs)
    outputs[name] = [conversation.execute().output_values, len(CALLS)]
print(json.dumps(outputs, default=str))
""",
    ]
)


@pytest.mark.timeout(1500)  # the first use creates wayflowcore's environment
def test_wayflow_runs_exported_loops_to_the_same_values(wayflow_python: str) -> None:
    # WayFlow does not bound the loop (the rounds are flowmagic's metadata): inputs that break in time
    cases = {f"tagline {p}": (tagline(), {"product": p}) for p in PRODUCTS}
    for shape in (
        "the break first, on a carried value",
        "an if block after the break",
        "independent steps in the body",
    ):
        cases[shape] = (Flow.from_source(SHAPES[shape], name="shape", namespace=TOOLS), {"product": "tea"})
    exports = {name: (flow.to_agentspec(), inputs) for name, (flow, inputs) in cases.items()}
    outputs = json.loads(wayflow(wayflow_python, WAYFLOW_RUN_LOOPS, stdin=json.dumps(exports)))
    for name, (flow, inputs) in cases.items():
        values, calls = outputs[name]
        judged(TOOLS).clear()
        run = flow.run(**inputs)
        assert run.status == "succeeded" and values == {n: run[n] for n in values}, name
        assert calls == len(judged(TOOLS)), name  # as many rounds as here
        assert set(values) == ({"verdict", "tagline"} if name.startswith("tagline") else {"out"} | set(values))
