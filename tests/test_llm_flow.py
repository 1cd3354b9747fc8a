"""A %%flow cell whose llm steps go through the real openai client to a local server."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from llm_server import LLMServer, llm_server_fixture

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
    assert shell.run_cell('%%flow e --model m\na = llm("hello")\nb = a\nc = 1\n').success
    run = shell.user_ns["e"].last
    assert run.status == "failed" and run.steps["b"].status == "skipped" and run["c"] == 1
    assert "sk-flow-test-secret" not in str(run.steps["a"].error)
