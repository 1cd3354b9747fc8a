"""The process's network loop: one client per configuration for every run, reused connections,
whole answers unless someone watches, and providers replaced when their factory is."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from llm_server import LLMServer, llm_server_fixture

from flowmagic import Event, Flow
from flowmagic.engine import events as ev
from flowmagic.engine.runner import run_blocking
from flowmagic.llm import network, registry
from flowmagic.llm.protocol import LLMRequest, LLMResponse

server = pytest.fixture(llm_server_fixture, name="server")

FOUR = 'parallel:\n    a = llm("[a] one")\n    b = llm("[b] two")\n    c = llm("[c] three")\n    d = llm("[d] four")\n'


@pytest.fixture(autouse=True)
def openai_env(monkeypatch: pytest.MonkeyPatch, server: LLMServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-network-test")
    monkeypatch.delenv("FLOWMAGIC_MODEL", raising=False)


def ports(server: LLMServer, since: int) -> set[int]:
    return {r.port for r in server.chat_requests[since:]}


def test_later_runs_reuse_the_first_runs_connections(server: LLMServer) -> None:
    flow = Flow.from_source(FOUR, name="four", model="gpt-4o-mini", cache=False)
    assert flow.run().status == "succeeded"
    first = ports(server, 0)
    assert len(first) == 4  # four calls at once: four connections
    for _ in range(3):
        before = len(server.chat_requests)
        run = flow.run()
        assert run.status == "succeeded" and run["d"] == "echo: [d] four"
        assert ports(server, before) <= first  # no new connection: a client per run would open four


def test_calls_run_on_the_network_thread_and_the_run_loop_gets_the_answer(server: LLMServer) -> None:
    seen: list[str] = []

    class Spy:
        async def complete(self, request: LLMRequest) -> LLMResponse:
            seen.append(threading.current_thread().name)
            return LLMResponse(text="spied", value="spied", model=request.model)

        async def aclose(self) -> None:
            pass

    registry.register_provider("spy-", Spy)
    try:
        run = Flow.from_source('a = llm("x")\nb = llm("y {a}")\n', name="spy", model="spy-1", cache=False).run()
    finally:
        registry.unregister_provider("spy-")
    assert run["b"] == "spied" and seen == [network.THREAD_NAME] * 2


def test_answers_stream_only_when_someone_watches(server: LLMServer) -> None:
    flow = Flow.from_source('a = llm("[a] hello there")\n', name="watch", model="gpt-4o-mini", cache=False)
    assert flow.run()["a"] == "echo: [a] hello there"
    assert server.chat_requests[-1].body is not None and not server.chat_requests[-1].body.get("stream")
    events: list[Event] = []
    run = run_blocking(flow.execution(observers=[events.append]))
    assert run["a"] == "echo: [a] hello there"
    assert server.chat_requests[-1].body is not None and server.chat_requests[-1].body["stream"] is True
    texts = [e.detail["answer"] for e in events if e.kind == ev.TEXT and e.detail]
    assert texts and texts[-1] == "echo: [a] hello there"  # relayed to the run's loop, in order
    assert texts == sorted(texts, key=len)
    finished = [e.kind for e in events].index(ev.FINISHED)
    assert all(i < finished for i, e in enumerate(events) if e.kind == ev.TEXT)


class Made:
    def __init__(self, tag: str) -> None:
        self.tag, self.closed = tag, threading.Event()

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return LLMResponse(text=self.tag, value=self.tag, model=request.model)

    async def aclose(self) -> None:
        self.closed.set()


@pytest.fixture
def made() -> Iterator[list[Made]]:
    providers: list[Made] = []
    yield providers
    registry.unregister_provider("made-")


def test_a_factory_is_called_once_and_registering_again_closes_its_provider(made: list[Made]) -> None:
    def factory(tag: str) -> Made:
        made.append(Made(tag))
        return made[-1]

    registry.register_provider("made-", lambda: factory("old"))
    flow = Flow.from_source('a = llm("x")\nb = llm("y")\n', name="made", model="made-1", cache=False)
    assert [flow.run()["b"] for _ in range(3)] == ["old"] * 3
    assert len(made) == 1  # one provider for every run
    registry.register_provider("made-", lambda: factory("new"))
    assert made[0].closed.wait(5)
    assert flow.run()["a"] == "new" and len(made) == 2
    registry.unregister_provider("made-")
    assert made[1].closed.wait(5)


def test_shutdown_closes_the_providers_and_the_next_call_starts_a_new_loop(made: list[Made]) -> None:
    registry.register_provider("made-", lambda: made.append(Made("x")) or made[-1])
    flow = Flow.from_source('a = llm("x")\n', name="made", model="made-1", cache=False)
    assert flow.run()["a"] == "x"
    first = network.network_loop()
    network.shutdown()
    assert made[0].closed.is_set() and first.is_closed()
    assert not [t for t in threading.enumerate() if t.name.startswith(network.THREAD_NAME)]
    assert flow.run()["a"] == "x" and len(made) == 2
    assert network.network_loop() is not first


def test_cancelling_the_awaiting_task_cancels_the_call_on_the_network_loop() -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def call() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> None:
        task = asyncio.ensure_future(network.on_network(call()))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cancelled.wait(5)
