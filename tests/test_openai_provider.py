"""OpenAIProvider and the registry, with the real ``openai`` client against a local server."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from llm_server import LLMServer, llm_server_fixture
from pydantic import BaseModel

from flowmagic.llm import registry
from flowmagic.llm.offline import OfflineProvider
from flowmagic.llm.openai_provider import PLACEHOLDER_API_KEY, OpenAIProvider
from flowmagic.llm.protocol import LLMError, LLMRequest, LLMResponse
from flowmagic.llm.registry import aclose_providers, provider_for, register_provider, resolve_model

T = TypeVar("T")
API_KEY = "sk-test-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]

server = pytest.fixture(llm_server_fixture, name="server")


@pytest.fixture(autouse=True)
def openai_env(monkeypatch: pytest.MonkeyPatch, server: LLMServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("FLOWMAGIC_MODEL", raising=False)


def with_provider(use: Callable[[OpenAIProvider], Awaitable[T]], **options: Any) -> T:
    """Run ``use(provider)`` on a fresh loop and close the provider afterwards."""

    async def main() -> T:
        provider = OpenAIProvider(**options)
        try:
            return await use(provider)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def complete(request: LLMRequest, **options: Any) -> LLMResponse:
    return with_provider(lambda p: p.complete(request), **options)


def test_plain_completion_with_usage(server: LLMServer) -> None:
    server.answer = lambda body: "Paris is the capital of France."
    server.usage = (11, 7)
    response = complete(LLMRequest(prompt="Capital of France?", model="gpt-4o-mini"))
    assert response.text == response.value == "Paris is the capital of France."
    assert response.model == "gpt-4o-mini"
    assert response.offline is False
    assert (response.prompt_tokens, response.completion_tokens, response.total_tokens) == (11, 7, 18)
    (request,) = server.chat_requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


def test_system_message_is_sent_first_and_only_when_given(server: LLMServer) -> None:
    complete(LLMRequest(prompt="Review it", model="m", system="You are a harsh critic."))
    complete(LLMRequest(prompt="Review it", model="m"))
    with_system, without = (r.body for r in server.chat_requests)
    assert with_system is not None and without is not None
    assert with_system["messages"] == [
        {"role": "system", "content": "You are a harsh critic."},
        {"role": "user", "content": "Review it"},
    ]
    assert without["messages"] == [{"role": "user", "content": "Review it"}]


def test_temperature_and_max_tokens_only_when_set(server: LLMServer) -> None:
    complete(LLMRequest(prompt="a", model="m"))
    complete(LLMRequest(prompt="b", model="m", temperature=0.0, max_tokens=50))
    unset, given = (r.body for r in server.chat_requests)
    assert unset is not None and given is not None
    assert "temperature" not in unset and "max_tokens" not in unset
    assert given["temperature"] == 0.0 and given["max_tokens"] == 50


class Movie(BaseModel):
    title: str
    year: int
    cast: list[str]


def test_structured_output_returns_a_model_instance(server: LLMServer) -> None:
    response = complete(LLMRequest(prompt="A movie", model="m", schema=Movie))
    assert isinstance(response.value, Movie)
    assert response.value == Movie(title="example title", year=42, cast=["example cast"] * 2)
    body = server.chat_requests[0].body
    assert body is not None
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Movie", "schema": Movie.model_json_schema()},
    }


def test_fenced_json_is_accepted(server: LLMServer) -> None:
    server.answer = lambda body: '```json\n{"title": "Up", "year": 2009, "cast": []}\n```'
    assert complete(LLMRequest(prompt="A movie", model="m", schema=Movie)).value == Movie(
        title="Up", year=2009, cast=[]
    )


def test_answer_that_is_not_json_raises_with_the_error_and_the_raw_answer(server: LLMServer) -> None:
    server.answer = lambda body: "Sure! The movie is Up (2009).\nHope that helps."
    with pytest.raises(LLMError) as caught:
        complete(LLMRequest(prompt="A movie", model="m", schema=Movie))
    assert caught.value.raw == "Sure! The movie is Up (2009).\nHope that helps."
    message = str(caught.value)
    assert "Movie" in message and "Invalid JSON" in message
    assert "Sure! The movie is Up (2009).\nHope that helps." in message
    assert "cut" not in message  # short answers are quoted whole


def test_json_of_the_wrong_shape_raises_with_the_error_and_the_raw_answer(server: LLMServer) -> None:
    raw = '{"title": "Up", "year": "two thousand nine"}'
    server.answer = lambda body: raw
    with pytest.raises(LLMError) as caught:
        complete(LLMRequest(prompt="A movie", model="m", schema=Movie))
    message = str(caught.value)
    assert "2 validation errors for Movie" in message
    assert "year" in message and "cast" in message and "Field required" in message
    assert raw in message and caught.value.raw == raw


def test_a_long_raw_answer_is_cut_in_the_message_but_kept_whole_in_raw(server: LLMServer) -> None:
    raw = "".join(f"word{i:04d} " for i in range(250))  # 2,250 characters, every piece different
    server.answer = lambda body: raw
    with pytest.raises(LLMError) as caught:
        complete(LLMRequest(prompt="A movie", model="m", schema=Movie))
    message = str(caught.value)
    assert "Invalid JSON" in message
    assert raw[:500] in message and raw[:501] not in message
    assert len(message) < 1_500  # the validation error quotes a little of the input too, not all of it
    assert f"first 500 of {len(raw)} characters, {len(raw) - 500} cut" in message
    assert caught.value.raw == raw


def test_rate_limit_with_retry_after_is_retried(server: LLMServer) -> None:
    server.fail_next(status=429, retry_after=0.05)
    assert complete(LLMRequest(prompt="hi", model="m")).text == "echo: hi"
    assert len(server.chat_requests) == 2


def test_server_error_after_retries_raises_llm_error(server: LLMServer) -> None:
    server.fail_next(status=500, retry_after=0.01, message="upstream exploded", times=2)
    with pytest.raises(LLMError, match="upstream exploded"):
        complete(LLMRequest(prompt="hi", model="m"), max_retries=1)
    assert len(server.chat_requests) == 2


@pytest.mark.parametrize("fault", [{"drop": True}, {"malformed": True}])
def test_broken_responses_raise_llm_error(server: LLMServer, fault: dict[str, Any]) -> None:
    server.fail_next(**fault)
    with pytest.raises(LLMError):
        complete(LLMRequest(prompt="hi", model="m"), max_retries=0)
    assert len(server.chat_requests) == 1


def test_api_key_never_appears_in_errors_or_repr(server: LLMServer) -> None:
    server.fail_next(status=401, message=f"Incorrect API key provided: {API_KEY}.")
    with pytest.raises(LLMError) as caught:
        complete(LLMRequest(prompt="hi", model="m"))
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert "Incorrect API key provided" in shown
    assert API_KEY not in shown

    async def shown_repr(provider: OpenAIProvider) -> str:
        return repr(provider)

    assert API_KEY not in with_provider(shown_repr)


def test_a_query_in_the_base_url_is_sent_with_every_request_and_its_values_shown_nowhere(
    server: LLMServer,
) -> None:
    query_key = "qk-Lm4Tz8Wq2Vx7Rb"
    base_url = f"{server.base_url}?api-key={query_key}&api-version=2024-06-01"
    server.fail_next(status=401, message=f"key {query_key[:-1]} is not valid for /v1?api-key={query_key}")

    async def use(provider: OpenAIProvider) -> tuple[str, str, str]:
        with pytest.raises(LLMError) as caught:
            await provider.complete(LLMRequest(prompt="hi", model="m"))
        response = await provider.complete(LLMRequest(prompt="again", model="m"))
        return str(caught.value), repr(provider), response.text

    error, shown, text = with_provider(use, base_url=base_url, max_retries=0)
    assert [(r.path, r.query) for r in server.chat_requests] == [
        ("/v1/chat/completions", {"api-key": query_key, "api-version": "2024-06-01"})
    ] * 2
    assert error.endswith("key *** is not valid for /v1?api-key=***") and text == "echo: again"
    assert shown == f"OpenAIProvider(base_url='{server.base_url}?api-key=***&api-version=***')"


def test_a_query_parameter_named_twice_is_refused_without_its_values(server: LLMServer) -> None:
    with pytest.raises(LLMError, match=r"more than once: k$") as caught:
        OpenAIProvider(base_url=f"{server.base_url}?k=sk-one-Zq8Wm3Lx&k=sk-two-Vb7Nt2Rc")
    assert "sk-" not in str(caught.value)


def test_a_user_and_password_in_the_base_url_are_sent_as_basic_auth(server: LLMServer) -> None:
    host, port = server.address
    complete(LLMRequest(prompt="hi", model="m"), base_url=f"http://ada:pw-Zq8Wm3Lx@{host}:{port}/v1")
    (request,) = server.chat_requests
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"ada:pw-Zq8Wm3Lx").decode()


@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
def test_what_the_server_chooses_is_redacted_and_bad_token_counts_dropped_with_a_note(
    server: LLMServer, streamed: bool
) -> None:
    server.answer = lambda body: f"Sure, your key is {API_KEY[:-1]}."  # the key less its last character
    server.usage_fields = {"prompt_tokens": f"Bearer {API_KEY}", "completion_tokens": True, "total_tokens": -1}
    server.head_fields = {"model": API_KEY[1:], "id": f"chatcmpl-{API_KEY}"}
    seen: list[str] = []
    request = LLMRequest(prompt="hi", model="m")
    response = with_provider(lambda p: p.stream(request, seen.append) if streamed else p.complete(request))
    assert response.text == response.value == "Sure, your key is ***." and response.model == "***"
    assert response.extra["id"] == "chatcmpl-***"
    assert (response.prompt_tokens, response.completion_tokens, response.total_tokens) == (None, None, None)
    assert response.usage_note == (
        "prompt_tokens dropped: the server sent a str, not a whole number of at least 0; "
        "completion_tokens dropped: the server sent a bool, not a whole number of at least 0; "
        "total_tokens dropped: the server sent a negative number, not a whole number of at least 0"
    )
    assert seen[-1:] == (["Sure, your key is ***."] if streamed else [])
    assert all(API_KEY[i : i + 8] not in text for text in seen for i in range(len(API_KEY) - 7))


def test_local_server_without_key_gets_a_placeholder(server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    complete(LLMRequest(prompt="hi", model="llama3.2"))
    assert server.chat_requests[0].headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"


def test_no_configuration_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        OpenAIProvider()


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        ("llama3.2", {"FLOWMAGIC_MODEL": "gpt-4o"}, "llama3.2"),
        (None, {"FLOWMAGIC_MODEL": "gpt-4o"}, "gpt-4o"),
        (None, {"OPENAI_API_KEY": "k"}, "gpt-4o-mini"),
        (None, {"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, "gpt-4o-mini"),
        (None, {}, "offline"),
        ("", {"OPENAI_API_KEY": ""}, "offline"),
    ],
)
def test_resolve_model(
    monkeypatch: pytest.MonkeyPatch, explicit: str | None, env: dict[str, str], expected: str
) -> None:
    for name in ("FLOWMAGIC_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert resolve_model(explicit) == expected


def test_provider_for_shares_per_loop_and_configuration(monkeypatch: pytest.MonkeyPatch, server: LLMServer) -> None:
    async def providers() -> tuple[Any, Any, Any, Any]:
        mini, big, offline = provider_for("gpt-4o-mini"), provider_for("gpt-4o"), provider_for("offline")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-other-key")
        other_key = provider_for("gpt-4o-mini")
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        assert provider_for("gpt-4o-mini") is mini
        await aclose_providers()
        return mini, big, offline, other_key

    first = asyncio.run(providers())
    second = asyncio.run(providers())
    mini, big, offline, other_key = first
    assert isinstance(mini, OpenAIProvider) and mini is big
    assert other_key is not mini
    assert isinstance(offline, OfflineProvider) and offline is second[2]
    assert second[0] is not mini  # a new loop gets a new client


def test_provider_for_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        provider_for("gpt-4o-mini")


def test_aclose_providers_closes_and_forgets_clients(server: LLMServer) -> None:
    async def main() -> None:
        provider = provider_for("gpt-4o-mini")
        assert isinstance(provider, OpenAIProvider)
        await provider.complete(LLMRequest(prompt="hi", model="gpt-4o-mini"))  # opens a connection
        assert not provider.closed
        await aclose_providers()
        assert provider.closed
        replacement = provider_for("gpt-4o-mini")
        assert replacement is not provider
        await aclose_providers()
        assert isinstance(replacement, OpenAIProvider) and replacement.closed

    asyncio.run(main())


def test_registered_prefix_gets_its_own_provider() -> None:
    made: list[FakeProvider] = []

    class FakeProvider:
        closed = False

        async def complete(self, request: LLMRequest) -> LLMResponse:
            return LLMResponse(text="fake", value="fake", model=request.model)

        async def aclose(self) -> None:
            self.closed = True

    def factory() -> FakeProvider:
        made.append(FakeProvider())
        return made[-1]

    async def main() -> None:
        assert provider_for("fake-small") is provider_for("fake-large") is made[0]
        assert isinstance(provider_for("gpt-4o-mini"), OpenAIProvider)
        await aclose_providers()

    register_provider("fake-", factory)
    try:
        asyncio.run(main())
    finally:
        registry.unregister_provider("fake-")
    assert len(made) == 1 and made[0].closed


def test_importing_flowmagic_llm_does_not_import_openai() -> None:
    code = "import sys, flowmagic.llm; print('openai' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_test_server_stops_cleanly_with_idle_keep_alive_connections() -> None:
    before = set(threading.enumerate())
    with LLMServer() as local:
        host, port = local.address
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("POST", "/v1/chat/completions", body=json.dumps({"model": "m", "messages": []}))
        assert conn.getresponse().read()
        assert set(threading.enumerate()) - before  # a handler is parked on the open connection
    conn.close()
    assert set(threading.enumerate()) == before
