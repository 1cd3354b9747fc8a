"""Subflows: a flow called like a function in a step runs nested in the caller's run: its steps
recorded as ``step/inner``, overlapping the caller's unrelated steps, under its cache, timeout and
failure policy; a flow that (indirectly) calls itself is refused before anything runs."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flowmagic import Event, Flow, Run
from flowmagic.engine import events as ev
from flowmagic.engine.runner import run_blocking
from flowmagic.engine.subflows import SubflowError
from flowmagic.errors import FlowDefinitionError


def recorded(flow: Flow, **inputs: Any) -> tuple[Run, list[Event]]:
    events: list[Event] = []
    return run_blocking(flow.execution(inputs, observers=[events.append])), events


def research_flow(**tools: Any) -> Flow:
    namespace = {"search": lambda q: f"hits for {q}", **tools}
    return Flow.from_source("hits = search(question)\nnotes = hits.upper()", name="research", namespace=namespace)


def test_a_subflow_runs_nested_and_overlaps_the_callers_other_steps() -> None:
    meet = threading.Barrier(3)

    def search(q: str) -> str:
        meet.wait(5)  # returns only if both subflows' searches and the caller's own step run at once
        return f"hits for {q}"

    research = research_flow(search=search)
    source = (
        "parallel:\n"
        '    cats = research(question="cats")\n'
        '    dogs = research(question="dogs")\n'
        "    own = search('own')\n"
        "both = cats + ' & ' + dogs"
    )
    report = Flow.from_source(source, name="report", namespace={"research": research, "search": search})
    run, events = recorded(report)
    assert run.status == "succeeded", run.summary()
    assert run["both"] == "HITS FOR CATS & HITS FOR DOGS"
    assert {"cats/hits", "cats/notes", "dogs/hits", "dogs/notes"} <= set(run.steps)
    assert run.steps["cats/notes"].map == "cats" and run.steps["cats/notes"].status == "succeeded"
    began = {e.step: e.time for e in events if e.kind == ev.STARTED}
    ended = {e.step: e.time for e in events if e.kind == ev.FINISHED}
    assert began["cats/hits"] < ended["own"] and began["own"] < ended["cats/hits"]  # they overlapped
    assert "2/2 steps of its subflow" in run.summary()
    assert [s for s in run.top_steps if "/" in s.name] == []


def test_a_subflow_with_several_final_steps_gives_a_dict_and_outside_a_flow_its_value() -> None:
    pair = Flow.from_source("up = word.upper()\nlow = word.lower()", name="pair")
    assert pair(word="Tea") == {"up": "TEA", "low": "tea"}
    assert research_flow()(question="owls") == "HITS FOR OWLS"
    caller = Flow.from_source("both = pair(word='Mix')\nfirst = both['up']", namespace={"pair": pair})
    assert caller.run()["first"] == "MIX"


def test_a_failing_subflow_fails_its_step_and_the_rest_goes_on() -> None:
    def search(q: str) -> str:
        raise LookupError(f"nothing on {q}")

    research = research_flow(search=search)
    source = "parallel:\n    cats = research(question='cats')\n    other = 1 + 1\nboth = cats + '!'"
    run = Flow.from_source(source, namespace={"research": research}).run()
    assert run.status == "failed" and run["other"] == 2
    assert run.steps["cats/hits"].status == "failed" and run.steps["both"].status == "skipped"
    error = run.steps["cats"].error
    assert isinstance(error, SubflowError) and "cats/hits: LookupError: nothing on cats" in str(error)


def test_a_subflow_takes_its_inputs_by_name_and_checks_them() -> None:
    research = research_flow()
    run = Flow.from_source("a = research('cats')", namespace={"research": research}).run()
    assert isinstance(run.steps["a"].error, TypeError) and "by name" in str(run.steps["a"].error)
    run = Flow.from_source("a = research(questoin='cats')", namespace={"research": research}).run()
    assert run.steps["a"].status == "failed" and "questoin" in str(run.steps["a"].error)


def test_a_timeout_of_the_caller_cancels_the_subflows_step() -> None:
    release = threading.Event()
    research = research_flow(search=lambda q: release.wait(10))
    try:
        run = Flow.from_source("a = research(question='x')", namespace={"research": research}, timeout=0.3).run()
    finally:
        release.set()
    assert run.status == "cancelled" and run.steps["a/hits"].status == "cancelled"
    assert run.steps["a"].status == "cancelled"


def test_a_subflows_llm_steps_are_cached_across_the_callers_reruns() -> None:
    summarize = Flow.from_source("line = llm('One line on {topic}')", name="summarize", model="offline")
    source = "a = summarize(topic='tea')\nb = a + '.'"
    first = Flow.from_source(source, namespace={"summarize": summarize}, model="offline").run()
    again = Flow.from_source(source, namespace={"summarize": summarize}, model="offline").run()
    assert first.status == again.status == "succeeded"
    assert not first.steps["a/line"].cached and again.steps["a/line"].cached and again["b"] == first["b"]


def test_subflows_in_a_loop_and_a_loop_in_a_subflow() -> None:
    counter = Flow.from_source("total = 0\nfor i in range(n):\n    total = total + i", name="counter")
    source = "for n in [2, 3]:\n    got = counter(n=n)\nlast = got"
    run = Flow.from_source(source, namespace={"counter": counter}).run()
    assert run.status == "succeeded", run.summary()
    assert run["last"] == 3 and "got/total#1#2" in run.steps  # the loop's 1st iteration, the subflow's 2nd


@pytest.mark.parametrize("indirect", [False, True])
def test_a_flow_that_calls_itself_is_refused_before_anything_runs(indirect: bool) -> None:
    ran: list[str] = []
    names: dict[str, Any] = {"note": ran.append}
    source = "x = note('a')\ny = second(q=x)" if indirect else "y = first(q=1)"
    first = Flow.from_source(source, name="first", namespace=names)
    second = Flow.from_source("z = first(q=q)", name="second", namespace=names)
    names.update(first=first, second=second)
    with pytest.raises(FlowDefinitionError) as info:
        first.run()
    error = info.value
    assert "calls itself" in str(error) and ("first -> second -> first" if indirect else "first -> first") in str(error)
    assert (error.line, error.col) == ((2, 0) if indirect else (1, 0))
    assert ran == []


def test_a_subflow_called_among_other_calls_is_nested_too_and_cancelled_with_the_caller() -> None:
    research = research_flow()
    run = Flow.from_source("a = research(question=str(7))", namespace={"research": research}).run()
    assert run.status == "succeeded" and run["a"] == "HITS FOR 7" and run.steps["a/hits"].map == "a"

    release = threading.Event()
    slow = research_flow(search=lambda q: release.wait(10))
    try:
        run = Flow.from_source("a = slow(question=str(1))", namespace={"slow": slow}, timeout=0.3).run()
        assert run.status == "cancelled"
        assert run.steps["a/hits"].status == "cancelled"  # the nested run was cancelled with its caller
    finally:
        release.set()


def test_the_step_detail_of_a_subflow_lists_its_steps() -> None:
    from flowmagic.view.detail import step_html

    run = Flow.from_source("a = research(question='owls')", namespace={"research": research_flow()}).run()
    html = step_html(run, "a")
    assert "subflow" in html and "2/2 steps succeeded" in html and "a/hits" in html and "a/notes" in html
    assert "a/hits" in step_html(run, "a/hits")  # an inner step has a detail of its own


def test_the_view_boxes_a_step_that_calls_a_subflow_and_gives_its_steps_a_lane() -> None:
    from flowmagic.view.timeline import lanes

    research = research_flow()
    report = Flow.from_source("cats = research(question='cats')\nboth = cats + '!'", namespace={"research": research})
    (box,) = [c for c in report.shape.clusters if c.kind == "subflow"]
    assert box.label == "subflow research" and {n.name: n.cluster for n in report.shape.nodes}["cats"] == box.id
    assert 'label="subflow research"' in report.to_dot()
    run = report.run()
    assert [[r.name for r in row] for row in lanes(run)["cats steps"]] == [["cats/hits", "cats/notes"]]
