"""``for`` loops: the body once per element, in order, each iteration's steps recorded as
``step#k``; ``break`` under an ``if``; names carried from one iteration to the next; a bound
on iterations; failures, timeouts and cancels that stop a loop; and the errors for what
cannot work, each with its line and column."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest

from flowmagic import Event, Flow, Run
from flowmagic.engine import events as ev
from flowmagic.engine import iterations
from flowmagic.engine.runner import run_blocking
from flowmagic.errors import FlowDefinitionError, FlowSyntaxError

TAGLINE = """\
draft = first_draft(product)
early = draft + "?"
for attempt in range(5):
    verdict = judge(draft)
    if verdict == "good":
        break
    draft = improve(draft, attempt)
final = draft.upper()
"""


class Tools:
    """The tagline's tools, recording what each call saw."""

    def __init__(self, good_after: int = 2) -> None:
        self.good_after = good_after
        self.judged: list[str] = []
        self.improved: list[tuple[str, int]] = []

    def first_draft(self, product: str) -> str:
        return f"{product}."

    def judge(self, draft: str) -> str:
        self.judged.append(draft)
        return "good" if draft.count("!") >= self.good_after else "weak"

    def improve(self, draft: str, attempt: int) -> str:
        self.improved.append((draft, attempt))
        return draft + "!"

    def namespace(self) -> dict[str, Any]:
        return {"first_draft": self.first_draft, "judge": self.judge, "improve": self.improve, "product": "tea"}


Definition = FlowDefinitionError


def recorded(flow: Flow, **inputs: Any) -> tuple[Run, list[Event]]:
    events: list[Event] = []
    return run_blocking(flow.execution(inputs, observers=[events.append])), events


def tagline(tools: Tools, source: str = TAGLINE, **settings: Any) -> Flow:
    return Flow.from_source(source, name="tagline", namespace=tools.namespace(), **settings)


def test_iterations_run_in_order_carry_names_and_stop_at_break() -> None:
    tools = Tools(good_after=2)
    run, events = recorded(tagline(tools))
    assert run.status == "succeeded", run.summary()
    # a carried name has the previous iteration's value (the first time: the one before the loop)
    assert tools.judged == ["tea.", "tea.!", "tea.!!"]
    assert tools.improved == [("tea.", 0), ("tea.!", 1)]
    assert run["draft"] == "tea.!!" and run["verdict"] == "good" and run["final"] == "TEA.!!"
    assert run["early"] == "tea.?"  # a step between the first draft and the loop reads the first draft
    # from events: each iteration's steps in order, then nothing after the break
    began = [e.step for e in events if e.kind == ev.STARTED and e.step and "#" in e.step]
    assert [s for s in began if not s.startswith("if@")] == [
        "verdict#1", "draft#1", "verdict#2", "draft#2", "verdict#3"
    ]
    ended = {e.step: e.time for e in events if e.kind == ev.FINISHED and e.step}
    starts = {e.step: e.time for e in events if e.kind == ev.STARTED and e.step}
    assert ended["draft#1"] <= starts["verdict#2"] and ended["draft#2"] <= starts["verdict#3"]
    assert run.steps["draft#3"].status == "skipped" and "if@5" in (run.steps["draft#3"].reason or "")
    assert "verdict#4" not in run.steps
    loop = run.steps["for@3"]
    assert loop.kind == "loop" and loop.elements == 3
    assert "3 iterations" in run.summary()
    assert run.to_dict()["steps"]["verdict#2"]["status"] == "succeeded"


def test_without_break_every_iteration_runs_and_names_keep_their_last_value() -> None:
    tools = Tools(good_after=99)
    run = tagline(tools).run()
    assert run.status == "succeeded" and run.steps["for@3"].elements == 5
    assert run["draft"] == "tea.!!!!!" and [a for _, a in tools.improved] == [0, 1, 2, 3, 4]


def test_a_loop_over_nothing_keeps_the_names_from_before_it() -> None:
    source = "draft = first_draft(product)\nfor attempt in []:\n    draft = improve(draft, attempt)\nfinal = draft"
    run = Flow.from_source(source, namespace=Tools().namespace()).run()
    assert run.status == "succeeded" and run["final"] == "tea." and run.steps["for@2"].elements == 0

    fresh = "for attempt in []:\n    note = str(attempt)\nfinal = note"
    failed = Flow.from_source(fresh).run()
    assert failed.status == "failed" and failed.steps["final"].status == "skipped"
    assert "assigned it in no iteration" in str(failed.steps["note"].error)


def test_a_loop_over_a_step_value_and_a_nested_loop() -> None:
    source = "sizes = [1, 2]\nfor size in sizes:\n    for n in range(size):\n        cell = (size, n)\n    last = cell"
    run = Flow.from_source(source).run()
    assert run.status == "succeeded", run.summary()
    assert run["last"] == (2, 1)
    assert {"cell#1#1", "cell#2#1", "cell#2#2"} <= set(run.steps)  # the outer iteration first


def test_an_iterable_past_the_limit_is_an_error_before_the_first_iteration(monkeypatch: Any) -> None:
    monkeypatch.setattr(iterations, "MAX_ITERATIONS", 10)
    calls: list[int] = []
    source = "for i in count():\n    seen = note(i)"
    run = Flow.from_source(source, namespace={"count": itertools.count, "note": calls.append}).run()
    assert run.status == "failed" and calls == []
    assert "more than 10 iterations" in str(run.steps["for@1"].error)


def test_a_failed_iteration_fails_the_loop_and_keeps_what_finished() -> None:
    def shaky(attempt: int) -> int:
        if attempt == 1:
            raise ValueError("attempt 1 broke")
        return attempt

    source = "for attempt in range(4):\n    value = shaky(attempt)\nafter = value + 1\nother = 5"
    run = Flow.from_source(source, namespace={"shaky": shaky}).run()
    assert run.status == "failed"
    assert run.steps["value#1"].status == "succeeded" and run.steps["value#2"].status == "failed"
    assert "value#3" not in run.steps and run.steps["after"].status == "skipped" and run["other"] == 5
    assert "iteration 2" in str(run.steps["for@1"].error) and "attempt 1 broke" in str(run.steps["for@1"].error)


def test_a_timeout_stops_a_loop_inside_an_iteration() -> None:
    release = threading.Event()

    def slow(i: int) -> int:
        if i == 1:
            release.wait(10)
        return i

    source = "for i in range(5):\n    value = slow(i)"
    try:
        run = Flow.from_source(source, namespace={"slow": slow}, timeout=0.5).run()
    finally:
        release.set()
    assert run.status == "cancelled" and "timed out" in (run.reason or "")
    assert run.steps["value#1"].status == "succeeded" and run.steps["value#2"].status == "cancelled"
    assert "value#3" not in run.steps and run.steps["for@1"].status == "cancelled"


def test_a_cancel_between_iterations_starts_no_other() -> None:
    gate = threading.Event()
    seen: list[int] = []

    def step(i: int) -> int:
        seen.append(i)
        if i == 1:
            gate.set()
            time.sleep(0.2)
        return i

    flow = Flow.from_source("for i in range(50):\n    value = step(i)", namespace={"step": step})
    handle = flow.start()
    assert gate.wait(10)
    flow.cancel()
    run = handle.wait(10)
    assert run is not None and run.status == "cancelled"
    assert len(seen) <= 3 and "value#40" not in run.steps


def test_iteration_steps_are_cached_one_by_one() -> None:
    source = "for topic in ['tea', 'cake']:\n    line = llm('A line about {topic}')\n    stamp = clock()"
    ticks = itertools.count()
    flow = Flow.from_source(source, namespace={"clock": lambda: next(ticks)}, model="offline")
    first = flow.run()
    again = Flow.from_source(source, namespace={"clock": lambda: next(ticks)}, model="offline").run()
    assert first.status == again.status == "succeeded"
    assert not first.steps["line#1"].cached and again.steps["line#1"].cached and again.steps["line#2"].cached
    assert not again.steps["stamp#1"].cached  # a plain call runs every time, in a loop too
    assert again["stamp"] != first["stamp"]


def test_a_loop_in_a_parallel_group_overlaps_its_sibling() -> None:
    both = threading.Barrier(2)

    def meet(x: int) -> int:
        both.wait(5)  # only returns if the other branch runs at the same time
        return x

    source = "parallel:\n    for i in range(1):\n        a = meet(i)\n    b = meet(7)\nc = a + b"
    run = Flow.from_source(source, namespace={"meet": meet}).run()
    assert run.status == "succeeded" and run["c"] == 7


@pytest.mark.parametrize(
    ("text", "line", "col", "message", "kind"),
    [
        ("for i in range(3):\n    break\n", 2, 4, "put it under an 'if'", FlowDefinitionError),
        ("for i in range(3):\n    if i:\n        break\n        a = 1\n", 3, 8, "last line of its arm", Definition),
        ("for i in range(3):\n    parallel:\n        if i:\n            break\n", 4, 12, "directly in", Definition),
        ("for i in range(3):\n    continue\n", 2, 4, "'continue' is not part of a flow", FlowDefinitionError),
        ("for i in range(3):\n    i = 2\n", 2, 4, "'i' is the loop's variable", FlowDefinitionError),
        ("for a, b in pairs:\n    c = a\n", 1, 4, "a loop's variable is one name", FlowDefinitionError),
        ("for i in range(3)\n    a = 1\n", 1, 17, "expected ':'", FlowSyntaxError),
        ("for i range(3):\n    a = 1\n", 1, 6, "expected 'for NAME in ITERABLE:'", FlowSyntaxError),
        ("while x:\n    a = 1\n", 1, 0, "'while' loops are not part of a flow", FlowSyntaxError),
        ("try:\n    a = 1\n", 1, 0, "'try' blocks are not part of a flow", FlowSyntaxError),
        ("if x:\n    break\n", 2, 4, "'break' outside loop", FlowDefinitionError),
        (
            "for i in range(3):\n    if i == 1:\n        break\n    elif i == 2:\n        a = 1\n    b = 2\n",
            2,
            4,
            "may have one other arm",
            FlowDefinitionError,
        ),
        ("a = 1\nfor i in range(2):\n    b = i\na = 3\n", 4, 0, "already defined", FlowDefinitionError),
    ],
)
def test_what_cannot_work_is_an_error_with_its_place(text: str, line: int, col: int, message: str, kind: type) -> None:
    with pytest.raises(kind) as info:
        Flow.from_source(text, name="t", namespace={})
    assert message in str(info.value) and (info.value.line, info.value.col) == (line, col), str(info.value)


def test_an_iterable_from_a_call_is_read_on_a_worker_thread() -> None:
    where: list[str] = []

    def fetch() -> list[int]:
        where.append(threading.current_thread().name)
        return [1, 2]

    run = Flow.from_source("for n in fetch():\n    got = n * 10", namespace={"fetch": fetch}).run()
    assert run.status == "succeeded" and run["got"] == 20 and run.steps["for@1"].elements == 2
    assert where and "loop" not in where[0]  # a worker's, never the run's event loop thread
