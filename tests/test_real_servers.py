"""What servers nobody here wrote do, simulated by the local test server, and how flowmagic copes.

Each behaviour was seen on a real server (llama.cpp's, whose facts DESIGN.md records): a stream
cut off with no finish reason when another request arrives, ``response_format`` limited to
``text`` and ``json_object`` (a 500 for ``json_schema``), streams with no usage, and a generation
that goes on after a non-streamed call is given up. The real-model tier checks the same against
the real server.
"""

from __future__ import annotations

import asyncio
import html
import time
from typing import Any

import pytest
from llm_server import LLMServer, llm_server_fixture
from pydantic import BaseModel

from flowmagic import Flow
from flowmagic.engine import events as ev
from flowmagic.engine.runner import run_blocking
from flowmagic.llm.openai_provider import LLMTruncated, OpenAIProvider
from flowmagic.llm.protocol import LLMRequest
from flowmagic.view.detail import step_html

server = pytest.fixture(llm_server_fixture, name="server")

ANSWER = "Quiet rain on the window, and the kettle starts to sing."


class Mood(BaseModel):
    mood: str
    score: int


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, server: LLMServer) -> LLMServer:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-servers-test")
    return server


def ask(server: LLMServer, *requests: LLMRequest, stream: bool = False) -> list[Any]:
    """Each request's response (or the error it raised), in order, through one provider."""

    async def main() -> list[Any]:
        provider = OpenAIProvider(base_url=server.base_url, api_key="sk-real-servers-test")
        out: list[Any] = []
        try:
            for request in requests:
                try:
                    if stream:
                        out.append(await provider.stream(request, lambda text: None))
                    else:
                        out.append(await provider.complete(request))
                except Exception as exc:
                    out.append(exc)
        finally:
            await provider.aclose()
        return out

    return asyncio.run(main())


def watched(flow: Flow, **inputs: Any) -> Any:
    """Run ``flow`` with an observer attached, as the view does (so its answers stream)."""
    return run_blocking(flow.execution(inputs, observers=[lambda e: None]))


# -- a stream cut off with no finish reason ----------------------------------------------------


def test_a_stream_with_no_finish_reason_is_a_truncated_answer_not_a_success(server: LLMServer) -> None:
    server.answer = lambda body: ANSWER
    server.fail_next(status=200, after_chunks=3, cut=True)
    [cut] = ask(server, LLMRequest(prompt="Write a line", model="m"), stream=True)
    assert isinstance(cut, LLMTruncated)
    assert cut.raw and ANSWER.startswith(cut.raw) and cut.raw != ANSWER
    assert "cut off" in str(cut) and "finish reason" in str(cut)


def test_a_cut_answer_fails_its_step_and_keeps_the_text_so_far(configured: LLMServer) -> None:
    configured.answer = lambda body: ANSWER
    configured.fail_next(status=200, after_chunks=2, cut=True)
    flow = Flow.from_source('line = llm("Write a line")\nn = len(line)', name="cut", model="m")
    run = watched(flow)
    record = run.steps["line"]
    assert run.status == "failed" and record.status == "failed" and isinstance(record.error, LLMTruncated)
    assert record.llm["answer"] and ANSWER.startswith(record.llm["answer"]) and record.llm["answer"] != ANSWER
    assert run.steps["n"].status == "skipped"
    assert "cut off" in step_html(run, "line")


def test_retries_ask_again_after_a_cut_answer(configured: LLMServer) -> None:
    configured.answer = lambda body: ANSWER
    configured.fail_next(status=200, after_chunks=2, cut=True)
    flow = Flow.from_source('@retries(1, backoff=0)\nline = llm("Write a line")', name="cut-retried", model="m")
    run = watched(flow)
    assert run.status == "succeeded" and run["line"] == ANSWER and run.steps["line"].attempts == 2
    assert len(configured.chat_requests) == 2


def test_five_parallel_steps_never_succeed_with_a_cut_answer(configured: LLMServer) -> None:
    configured.answer = lambda body: f"A full review of {body['messages'][-1]['content'][-1]} in nine words here."
    for i in (1, 3, 4):  # the server cuts three of five off, as one that takes one request at a time does
        configured.fail_next(status=200, after_chunks=1, cut=True, match=f"Review {i}")
    flow = Flow.from_source(
        "parallel critics:\n" + "".join(f'    r{i} = llm("Review {i}")\n' for i in range(5)), name="five", model="m"
    )
    run = watched(flow)
    for i in range(5):
        record = run.steps[f"r{i}"]
        if i in (1, 3, 4):
            assert record.status == "failed" and isinstance(record.error, LLMTruncated), i
        else:
            assert record.status == "succeeded" and run[f"r{i}"].endswith("nine words here."), i


# -- schema= on servers without json_schema ---------------------------------------------------


def test_schema_falls_back_to_json_object_with_the_schema_and_learns_it(server: LLMServer) -> None:
    server.formats = ("text", "json_object")  # llama.cpp's server
    server.answer = lambda body: '{"mood": "calm", "score": 7}'
    first, second = ask(server, *[LLMRequest(prompt="How is it?", model="m", schema=Mood)] * 2)
    assert first.value == second.value == Mood(mood="calm", score=7)
    kinds = [r.body["response_format"]["type"] for r in server.chat_requests]
    assert kinds == ["json_schema", "json_object", "json_object"]  # refused once, not retried, then learned
    assert server.chat_requests[1].body["response_format"]["schema"] == Mood.model_json_schema()


def test_schema_falls_back_to_plain_json_asked_for_in_the_prompt(server: LLMServer) -> None:
    server.formats = ("text",)
    server.answer = lambda body: '```json\n{"mood": "bright", "score": 9}\n```'
    [response] = ask(server, LLMRequest(prompt="How is it?", model="m", system="Be brief.", schema=Mood), stream=True)
    assert response.value == Mood(mood="bright", score=9)
    last = server.chat_requests[-1].body
    assert "response_format" not in last and len(server.chat_requests) == 3
    system = last["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.") and '"score"' in system["content"]


def test_an_answer_that_does_not_fit_is_still_an_error_whatever_the_way(server: LLMServer) -> None:
    server.formats = ("text", "json_object")
    server.answer = lambda body: '{"mood": "calm", "score": "high"}'
    [error] = ask(server, LLMRequest(prompt="How is it?", model="m", schema=Mood))
    assert "does not match Mood" in str(error) and "high" in str(error)


def test_a_transient_error_on_the_first_way_is_retried_not_taken_for_a_refusal(server: LLMServer) -> None:
    server.answer = lambda body: '{"mood": "calm", "score": 7}'
    server.fail_next(status=503, message="overloaded")
    [response] = ask(server, LLMRequest(prompt="How is it?", model="m", schema=Mood))
    assert response.value == Mood(mood="calm", score=7)
    assert [r.body["response_format"]["type"] for r in server.chat_requests] == ["json_schema", "json_schema"]


def test_a_flow_with_schema_runs_against_a_server_without_json_schema(configured: LLMServer) -> None:
    configured.formats = ("text", "json_object")
    configured.answer = lambda body: '{"mood": "calm", "score": 7}'
    flow = Flow.from_source(
        'a = llm("One?", schema=Mood)\nb = llm("Two?", schema=Mood)', name="moods", model="m", namespace={"Mood": Mood}
    )
    run = watched(flow)
    assert run.status == "succeeded" and run["a"] == run["b"] == Mood(mood="calm", score=7)
    assert len(configured.chat_requests) <= 4  # a refusal costs one request, not the SDK's three


# -- tokens when a stream carries no usage -----------------------------------------------------


def test_a_streamed_run_counts_tokens_when_the_server_reports_none(configured: LLMServer) -> None:
    configured.stream_usage = False
    configured.answer = lambda body: ANSWER
    flow = Flow.from_source('a = llm("Write a line about rain")', name="counted", model="m")
    run = watched(flow)
    assert run.tokens == (-(-len("Write a line about rain") // 4), -(-len(ANSWER) // 4))
    assert run.steps["a"].llm["tokens_estimated"] is True
    assert "estimated: the server reported no usage" in step_html(run, "a")


# -- a timeout stops the server's generation -----------------------------------------------------


def test_a_step_with_a_timeout_streams_and_its_timeout_closes_the_stream(configured: LLMServer) -> None:
    configured.answer = lambda body: " ".join(f"word{i}" for i in range(200))
    configured.chunk_delay = 0.02  # about 4 s for the whole answer
    flow = Flow.from_source('@timeout(0.3)\nlong = llm("Write at length")', name="timed", model="m")
    run = flow.run(raise_on_error=False)
    assert run.steps["long"].status == "failed" and "timed out" in str(run.steps["long"].error)
    assert configured.chat_requests[0].body["stream"] is True
    deadline = time.monotonic() + 10
    while configured.cut_off == 0 and time.monotonic() < deadline:  # the server notices at its next write
        time.sleep(0.05)
    assert configured.cut_off == 1


def test_a_step_with_no_timeout_and_no_view_asks_for_the_whole_answer(configured: LLMServer) -> None:
    flow = Flow.from_source('a = llm("Hello")', name="whole", model="m")
    assert flow.run().status == "succeeded"
    assert configured.chat_requests[0].body.get("stream") is not True
    texts: list[Any] = []  # with an observer (the view), the answer streams in
    run_blocking(flow.execution(observers=[lambda e: e.kind == ev.TEXT and texts.append(e)], cache=False))
    assert configured.chat_requests[-1].body["stream"] is True and texts


# -- honest timing: a server's queue is not parallel work ------------------------------------------

FOUR = "parallel asks:\n" + "".join(f'    a{i} = llm("Question {i}")\n' for i in range(4))


def four_streamed(server: LLMServer, serial: bool) -> Any:
    server.serial = serial
    server.chunk_delay = 0.02
    server.answer = lambda body: " ".join(["word"] * 20)  # about 0.4 s to stream, whoever serves it
    return watched(Flow.from_source(FOUR, name=f"four-{serial}", model="m", cache=False))


def test_steps_queued_at_a_one_at_a_time_server_do_not_count_as_parallel(configured: LLMServer) -> None:
    run = four_streamed(configured, serial=True)
    assert run.status == "succeeded"
    queued = run.queued()
    assert len(queued) == 3 and all(wait > 0.2 for wait in queued.values())  # three waited behind another
    assert run.step_time / run.wall_time > 2.0  # summed step times still overlap...
    assert run.speedup is not None and run.speedup < 1.4  # ...but nothing was served in parallel
    assert "queued at the server" in run.summary()
    from flowmagic.view.timeline import paint_timeline

    assert paint_timeline(run).count('class="fm-wait"') == 3
    late = max(queued, key=queued.__getitem__)
    assert "in the server's queue (not in the speed-up)" in html.unescape(step_html(run, late))


def test_steps_served_at_once_keep_their_speed_up(configured: LLMServer) -> None:
    run = four_streamed(configured, serial=False)
    assert run.status == "succeeded"
    assert sum(run.queued().values()) < 0.1 * run.step_time
    assert run.speedup is not None and run.speedup > 2.5
    assert "queued at the server" not in run.summary()


def test_the_offline_model_records_no_wait_for_a_first_token() -> None:
    run = watched(Flow.from_source(FOUR, name="four-offline", cache=False))
    assert run.status == "succeeded" and all(r.first_token is None for r in run.steps.values())
    assert run.served_time == run.step_time
