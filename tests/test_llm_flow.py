"""A %%flow cell whose llm steps go through the real openai client to a local server."""

from __future__ import annotations

import itertools
import json

import pytest
from IPython.core.interactiveshell import InteractiveShell
from llm_server import LLMServer, llm_server_fixture
from pydantic import BaseModel

from flowmagic import Flow, FlowFailed
from flowmagic.engine import events as ev
from flowmagic.engine.events import Event
from flowmagic.engine.record import Run
from flowmagic.engine.runner import run_blocking
from flowmagic.engine.summary import facts
from flowmagic.llm.prices import PRICES, set_price
from flowmagic.view.detail import step_html

server = pytest.fixture(llm_server_fixture, name="server")


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, server: LLMServer) -> LLMServer:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-flow-test-secret")
    return server


def test_cell_llm_steps_use_the_configured_server_concurrently(shell: InteractiveShell, configured: LLMServer) -> None:
    configured.delay = 0.3
    shell.user_ns["topic"] = "tea"
    cell = (
        "%%flow tea --model local-model\n"
        'title = llm("A title about {topic}", temperature=0.2)\n'
        'critics = [llm("Review {title}", system="critic {i}") for i in range(4)]\n'
    )
    assert shell.run_cell(cell).success
    run = shell.user_ns["tea"].last
    assert run.status == "succeeded" and run.model == "local-model"
    bodies = [r.body or {} for r in configured.chat_requests]
    assert len(bodies) == 5
    assert bodies[0]["model"] == "local-model" and bodies[0]["temperature"] == 0.2
    assert bodies[0]["messages"][-1]["content"] == "A title about tea"
    systems = sorted(b["messages"][0]["content"] for b in bodies[1:])
    assert systems == [f"critic {i}" for i in range(4)]
    elements = [run.steps[f"critics[{i}]"] for i in range(4)]
    assert max(e.started for e in elements) < min(e.finished for e in elements)
    record = run.steps["title"].llm
    assert record["offline"] is False and record["prompt_tokens"] is not None
    assert "sk-flow-test-secret" not in run.to_json()


def test_a_429_is_retried_and_the_run_succeeds(shell: InteractiveShell, configured: LLMServer) -> None:
    configured.fail_next(status=429, retry_after=0.05)
    assert shell.run_cell('%%flow r --model m\na = llm("hello")\n').success
    run = shell.user_ns["r"].last
    assert run.status == "succeeded" and len(configured.chat_requests) == 2


def test_a_server_error_fails_only_that_step(shell: InteractiveShell, configured: LLMServer) -> None:
    configured.fail_next(status=500, times=10)
    failed = shell.run_cell('%%flow e --model m\na = llm("hello")\nb = a\nc = 1\n').error_in_exec
    assert isinstance(failed, FlowFailed) and "sk-flow-test-secret" not in str(failed)
    run = shell.user_ns["e"].last
    assert run.status == "failed" and run.steps["b"].status == "skipped" and run["c"] == 1
    assert "sk-flow-test-secret" not in str(run.steps["a"].error)


def _texts(flow: Flow, **settings: object) -> tuple[Run, list[Event]]:
    events: list[Event] = []
    run = run_blocking(flow.execution(observers=[events.append], **settings))
    return run, events


def test_answers_stream_into_the_run_while_the_step_runs(configured: LLMServer) -> None:
    configured.answer = lambda body: "one two three four five six"
    flow = Flow.from_source('a = llm("Count to six")\nb = llm("Again: {a}")', name="stream", model="m")
    run, events = _texts(flow)
    assert run.status == "succeeded" and configured.chat_requests[0].body["stream"] is True
    texts = [e for e in events if e.kind == ev.TEXT and e.step == "a"]
    assert len(texts) > 2
    answers = [e.detail["answer"] for e in texts]  # the detail dict is live: read what each event carried
    assert answers[-1] == "one two three four five six" == run["a"]
    finished = next(i for i, e in enumerate(events) if e.kind == ev.FINISHED and e.step == "a")
    assert all(events.index(e) < finished for e in texts)
    started_b = next(i for i, e in enumerate(events) if e.kind == ev.STARTED and e.step == "b")
    assert started_b > finished


def test_partial_answers_are_each_a_prefix_of_the_next(configured: LLMServer) -> None:
    configured.answer = lambda body: "alpha beta gamma delta"
    seen: list[str] = []
    flow = Flow.from_source('a = llm("Greek letters")', name="prefix", model="m")
    run_blocking(flow.execution(observers=[lambda e: e.kind == ev.TEXT and seen.append(e.detail["answer"])]))
    assert len(seen) > 2 and seen[-1] == "alpha beta gamma delta"
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(seen))


def test_tokens_and_cost_per_step_and_per_run(configured: LLMServer) -> None:
    configured.usage = (1000, 500)
    set_price("priced-model", input=2.0, output=8.0)
    try:
        flow = Flow.from_source('a = llm("x")\nb = llm("y {a}")\nc = len(b)', name="cost", model="priced-model")
        run, _ = _texts(flow)
        assert run.steps["a"].llm["prompt_tokens"] == 1000 and run.steps["a"].llm["completion_tokens"] == 500
        assert run.steps["a"].llm["cost"] == pytest.approx((1000 * 2.0 + 500 * 8.0) / 1e6)
        assert run.tokens == (2000, 1000) and run.cost == pytest.approx(0.012)
        assert "tokens 2,000 in, 1,000 out, $0.0120" in run.summary()
        data = json.loads(run.to_json())
        assert data["tokens"] == {"prompt": 2000, "completion": 1000} and data["cost"] == pytest.approx(0.012)
        assert "$0.0060" in step_html(run, "a")
        again, _ = _texts(flow)  # all cached: this run spent nothing
        assert again.tokens == (0, 0) and again.cost == 0.0 and facts(again) == ["3 of 3 steps cached"]
        assert "(in the run that cached it)" in step_html(again, "a")
    finally:
        PRICES.pop("priced-model")


class Person(BaseModel):
    name: str
    age: int


def test_a_schema_failure_shows_the_raw_answer_and_the_validation_error(configured: LLMServer) -> None:
    configured.answer = lambda body: '{"name": "Ada", "age": "very old"}'
    flow = Flow.from_source('p = llm("Who?", schema=Person)', name="schema", model="m", namespace={"Person": Person})
    run, _ = _texts(flow)
    record = run.steps["p"]
    assert record.status == "failed"
    assert "age" in str(record.error) and "very old" in str(record.error)
    assert record.llm["answer"] == '{"name": "Ada", "age": "very old"}'
    html = step_html(run, "p")
    assert "raw answer" in html and "very old" in html and "error" in html


def test_the_step_detail_shows_the_answer_so_far_while_it_streams() -> None:
    flow = Flow.from_source('a = llm("List five colours")', name="live")
    execution = flow.execution()
    seen: list[str] = []

    def look(event: Event) -> None:
        if event.kind == ev.TEXT:
            seen.append(step_html(execution.run, "a"))

    execution.subscribe(look)
    run = run_blocking(execution)
    assert len(seen) > 2 and all("answer so far" in html for html in seen)
    first = seen[0].split("answer so far")[1]
    assert run["a"] not in first and "answer so far" not in step_html(run, "a")
