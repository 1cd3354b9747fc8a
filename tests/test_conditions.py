"""``if / elif / else`` blocks: only the chosen arm runs, the rest is skipped with a reason, a
name assigned in every arm is one value after the block, and nothing unrelated waits."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flowmagic import Event, Flow, Run
from flowmagic.engine import events as ev
from flowmagic.engine.runner import run_blocking
from flowmagic.errors import FlowDefinitionError, FlowSyntaxError

SUPPORT = """\
kind = classify(ticket)
if kind == "bug":
    repro = reproduce(ticket)
    reply = "reproduced: " + str(repro)
elif kind == "feature":
    reply = "thanks for the idea"
else:
    reply = faq(ticket)
summary = "log: " + reply
"""

CALLS: list[str] = []


def classify(ticket: str) -> str:
    return "bug" if "crash" in ticket else "feature" if "wish" in ticket else "question"


def reproduce(ticket: str) -> str:
    CALLS.append("reproduce")
    return "1. open it"


def faq(ticket: str) -> str:
    CALLS.append("faq")
    return "see the FAQ"


def support(**settings: Any) -> Flow:
    ns = {"classify": classify, "reproduce": reproduce, "faq": faq}
    return Flow.from_source(SUPPORT, name="support", namespace=ns, cache=False, **settings)


def recorded(flow: Flow, **inputs: Any) -> tuple[Run, list[Event]]:
    events: list[Event] = []
    return run_blocking(flow.execution(inputs, observers=[events.append])), events


def started(events: list[Event]) -> list[str | None]:
    return [e.step for e in events if e.kind == ev.STARTED]


@pytest.mark.parametrize(
    ("ticket", "summary", "ran", "skipped", "label"),
    [
        ("it crashes", "log: reproduced: 1. open it", ["repro", "reply@4"], ["reply@6", "reply@8"], 'if kind == "bug"'),
        ("a wish", "log: thanks for the idea", ["reply@6"], ["repro", "reply@4", "reply@8"], 'elif kind == "feature"'),
        ("how?", "log: see the FAQ", ["reply@8"], ["repro", "reply@4", "reply@6"], "else"),
    ],
)
def test_only_the_chosen_arm_runs_and_the_others_are_skipped_naming_the_condition(
    ticket: str, summary: str, ran: list[str], skipped: list[str], label: str
) -> None:
    CALLS.clear()
    run, events = recorded(support(), ticket=ticket)
    assert run.status == "succeeded" and run["summary"] == summary
    assert run["reply"] == summary.removeprefix("log: ")
    for name in ran:
        assert run.steps[name].status == "succeeded" and name in started(events)
    for name in skipped:
        assert run.steps[name].status == "skipped" and name not in started(events)
        assert run.steps[name].reason == f"'if@2' chose '{label}'"
    assert (["reproduce"] if ticket == "it crashes" else ["faq"] if ticket == "how?" else []) == CALLS
    assert run["if@2"] == ['if kind == "bug"', 'elif kind == "feature"', "else"].index(label)


def test_without_else_no_true_condition_skips_every_arm_and_the_run_succeeds() -> None:
    flow = Flow.from_source("x = n\nif x > 1:\n    y = x * 2\nz = x + 1\n", name="t", namespace={}, cache=False)
    run = flow.run(n=0)
    assert run.status == "succeeded" and run["z"] == 1
    assert run.steps["y"].status == "skipped" and run.steps["y"].reason == "'if@2': no condition was true"
    assert flow.run(n=5)["y"] == 10


def test_a_condition_does_not_wait_for_unrelated_steps_and_its_arm_overlaps_them() -> None:
    gate = threading.Event()

    def slow() -> str:
        assert gate.wait(10), "the arm never ran beside the slow step"
        return "slow"

    def fast_arm() -> str:
        gate.set()  # only reached if the arm starts while slow() still runs
        return "arm"

    text = "s = slow()\nk = 1\nif k == 1:\n    a = fast_arm()\nelse:\n    a = 'no'\nboth = s + a\n"
    flow = Flow.from_source(text, name="t", namespace={"slow": slow, "fast_arm": fast_arm}, cache=False)
    run, events = recorded(flow)
    assert run.status == "succeeded" and run["both"] == "slowarm"
    order = [(e.kind, e.step) for e in events if e.kind in (ev.STARTED, ev.FINISHED)]
    assert order.index((ev.FINISHED, "if@3")) < order.index((ev.FINISHED, "s"))
    assert order.index((ev.STARTED, "a@4")) < order.index((ev.FINISHED, "s"))


def test_a_failing_condition_skips_its_arms_and_what_reads_the_block() -> None:
    def boom() -> bool:
        raise ValueError("no")

    flow = Flow.from_source(
        "if boom():\n    a = 1\nelse:\n    a = 2\nb = a\nc = 3\n", name="t", namespace={"boom": boom}, cache=False
    )
    run = flow.run()
    assert run.status == "failed" and run.steps["if@1"].status == "failed"
    assert [run.steps[n].status for n in ("a@2", "a@4", "a", "b")] == ["skipped"] * 4
    assert run["c"] == 3


def test_nested_blocks_parallel_groups_and_maps_inside_arms() -> None:
    text = (
        "n = len(items)\n"
        "if n > 2:\n"
        "    parallel:\n"
        "        big = [x * 10 for x in items]\n"
        "        top = max(items)\n"
        "    if top > 5:\n"
        "        label = 'large'\n"
        "    else:\n"
        "        label = 'many'\n"
        "    out = label + str(sum(big))\n"
        "else:\n"
        "    out = 'few'\n"
        "final = out\n"
    )
    flow = Flow.from_source(text, name="t", namespace={}, cache=False)
    assert flow.run(items=[1, 2, 9])["final"] == "large120"
    assert flow.run(items=[1, 2, 3])["final"] == "many60"
    run = flow.run(items=[1])
    assert run["final"] == "few" and run.status == "succeeded"
    assert {run.steps[n].status for n in ("big", "top", "if@6", "label@7", "label@9", "label@6", "out@10")} == {
        "skipped"
    }


@pytest.mark.parametrize("sequential", [False, True])
def test_cached_rerun_takes_the_same_arm_without_running_anything(sequential: bool, tmp_path: Any) -> None:
    flow = Flow.from_source(
        SUPPORT,
        name="support-cached",
        namespace={"classify": classify, "reproduce": len, "faq": str.upper},
        sequential=sequential,
        cache_calls=True,  # classify is a plain function: opted in, it is reused like the rest
    )
    ticket = f"it crashes {tmp_path}"  # a ticket no earlier run cached
    first, events = recorded(flow, ticket=ticket)
    assert set(started(events)) == {"kind", "if@2", "repro", "reply@4", "summary"}
    second, events = recorded(flow, ticket=ticket)
    assert second["summary"] == first["summary"] and started(events) == []
    assert all(second.steps[n].cached for n in ("kind", "if@2", "repro", "reply@4", "summary"))
    assert (
        second.steps["reply@8"].status == "skipped"
        and second.steps["reply@8"].reason == "'if@2' chose 'if kind == \"bug\"'"
    )


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("if x:\n    a = 1\nb = a\n", 3, 4, "'a' is assigned in only some arms of the 'if' block on line 1"),
        ("if x:\n    a = 1\nelif y:\n    a = 2\nb = a\n", 5, 4, "only some arms"),
        ("if x:\n    a = 1\nelse:\n    b = a\n", 4, 8, "only some arms"),
        ("a = 1\nif x:\n    a = 2\nelse:\n    a = 3\n", 3, 4, "step 'a' is already defined on line 1"),
        ("if x:\n    a = 2\nelse:\n    a = 3\na = 1\n", 5, 0, "already defined on line 1"),
        ("if x:\n    a = 2\na = 1\n", 3, 0, "already defined in the 'if' block on line 1"),
        ("if (y := 1):\n    a = 2\n", 1, 4, "a condition cannot assign a name"),
    ],
)
def test_names_an_arm_may_not_have_are_errors_with_a_caret(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(FlowDefinitionError) as info:
        Flow.from_source(text, name="t", namespace={})
    assert message in str(info.value) and (info.value.line, info.value.col) == (line, col)


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("else:\n    a = 1\n", 1, 0, "'else' without an 'if' before it"),
        ("a = 1\nelif a:\n    b = 1\n", 2, 0, "'elif' without an 'if' before it"),
        ("if x\n    a = 1\n", 1, 4, "expected ':'"),
        ("if:\n    a = 1\n", 1, 2, "expected a condition after 'if'"),
        ("if x:\na = 1\n", 1, 0, "expected an indented block after 'if'"),
        ("if x:\n    a = 1\nelse x:\n    a = 2\n", 3, 5, "expected ':' after 'else'"),
        ("while x:\n    a = 1\n", 1, 0, "'while' loops are not part of a flow"),
        ("try:\n    a = 1\n", 1, 0, "'try' blocks are not part of a flow"),
        ("if x:\n    break\n", 2, 4, "'break' outside loop"),
        ("if x:\n    return 1\n", 2, 4, "a flow has no 'return'"),
    ],
)
def test_malformed_blocks_are_syntax_errors_with_a_caret(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises((FlowSyntaxError, FlowDefinitionError)) as info:
        Flow.from_source(text, name="t", namespace={})
    assert message in str(info.value) and (info.value.line, info.value.col) == (line, col), str(info.value)


def test_decorators_on_an_if_apply_to_every_step_inside() -> None:
    flow = Flow.from_source("@retries(2)\nif x:\n    a = f()\nelse:\n    a = g()\n", name="t", namespace={})
    assert {flow.steps[n].options.retries for n in ("if@2", "a@3", "a@5")} == {2}


def test_agent_spec_export_refuses_an_if_block_naming_its_condition() -> None:
    from flowmagic.interop.agentspec import AgentSpecError

    with pytest.raises(AgentSpecError, match=r"step 'if@2' \(line 2\) cannot be exported"):
        support().to_agentspec()


def test_a_line_added_above_the_block_renames_its_steps_but_keeps_them_cached(tmp_path: Any) -> None:
    ns = {"classify": classify, "reproduce": len, "faq": str.upper}
    ticket = f"it crashes {tmp_path}"
    before = Flow.from_source(SUPPORT, name="support-moved", namespace=ns, cache_calls=True).run(ticket=ticket)
    moved = Flow.from_source("# a comment above\n\n" + SUPPORT, name="support-moved", namespace=ns, cache_calls=True)
    events: list[Event] = []
    after = run_blocking(moved.execution({"ticket": ticket}, observers=[events.append]))
    assert "reply@6" in after.steps and "reply@4" not in after.steps  # two lines down
    assert started(events) == [] and after["summary"] == before["summary"]


DESIGN_SUPPORT = '''%%flow support
kind = llm("Is this a bug report, a feature request or a question? {ticket}", schema=Kind)
if kind.label == "bug":
    repro = llm("Steps to reproduce: {ticket}")
    reply = llm("Thank them; we can reproduce it: {repro}")
elif kind.label == "feature":
    reply = llm("Thank them for the idea: {ticket}")
else:
    reply = search_faq(ticket)
summary = llm("One line for the log: {reply}")
'''


def test_the_design_routing_example_runs_offline_in_a_real_shell(
    shell: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    setup = (
        "from typing import Literal\nfrom pydantic import BaseModel\n"
        "class Kind(BaseModel):\n    label: Literal['bug', 'feature', 'question']\n"
        "def search_faq(ticket):\n    return 'see the FAQ'\n"
        "ticket = 'The app crashes when I export.'\n"
    )
    assert shell.run_cell(setup).success
    result = shell.run_cell(DESIGN_SUPPORT)
    assert result.success, result.error_in_exec or result.error_before_exec
    run = shell.user_ns["support"].last
    assert run.status == "succeeded" and run["summary"]
    arms = {"bug": ["repro", "reply@5"], "feature": ["reply@7"], "question": ["reply@9"]}
    chosen = arms[run["kind"].label]
    for name in ["repro", "reply@5", "reply@7", "reply@9"]:
        assert run.steps[name].status == ("succeeded" if name in chosen else "skipped"), name
    assert run["reply"] == run[chosen[-1]]
    out = capsys.readouterr().out
    assert "flow 'support' succeeded" in out and "'if@3' chose" in out
