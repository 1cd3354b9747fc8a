"""Streaming answers (the real ``openai`` client against tests/llm_server.py, and the offline model) and prices."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from llm_server import LLMServer, llm_server_fixture
from pydantic import BaseModel

import flowmagic.llm
from flowmagic.llm import registry
from flowmagic.llm.offline import LATENCY_ENV, OfflineProvider
from flowmagic.llm.openai_provider import OpenAIProvider
from flowmagic.llm.prices import PRICES, Price, cost, price_for, set_price
from flowmagic.llm.protocol import (
    LLMError,
    LLMRequest,
    LLMResponse,
    Provider,
    StreamingProvider,
    answer,
)

T = TypeVar("T")
API_KEY = "sk-test-stream-0123456789abcdef"
ANSWER = "Space cats drift past the moon, purring at the quiet stars tonight."

server = pytest.fixture(llm_server_fixture, name="server")


def with_provider(server: LLMServer, use: Callable[[OpenAIProvider], Awaitable[T]], **options: Any) -> T:
    """Run ``use(provider)`` on a fresh loop with a provider for ``server``, closed afterwards."""

    async def main() -> T:
        provider = OpenAIProvider(base_url=server.base_url, api_key=API_KEY, **options)
        try:
            return await use(provider)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def stream(server: LLMServer, request: LLMRequest, **options: Any) -> tuple[LLMResponse, list[str]]:
    """The streamed response to ``request`` and every text ``on_text`` was given, in order."""
    seen: list[str] = []
    response = with_provider(server, lambda p: p.stream(request, seen.append), **options)
    return response, seen


def complete(server: LLMServer, request: LLMRequest) -> LLMResponse:
    return with_provider(server, lambda p: p.complete(request))


def assert_growing(seen: list[str]) -> None:
    """Each text is a strictly longer prefix of the next one."""
    for shorter, longer in itertools.pairwise(seen):
        assert longer.startswith(shorter) and len(longer) > len(shorter), (shorter, longer)


def same_answer(a: LLMResponse, b: LLMResponse) -> None:
    assert (a.text, a.value, a.model, a.offline) == (b.text, b.value, b.model, b.offline)
    assert (a.prompt_tokens, a.completion_tokens) == (b.prompt_tokens, b.completion_tokens)


class Movie(BaseModel):
    title: str
    year: int
    cast: list[str]


# --------------------------------------------------------------------------- OpenAIProvider.stream


def test_streamed_text_arrives_in_order_and_ends_as_completes_text(server: LLMServer) -> None:
    server.answer = lambda body: ANSWER
    request = LLMRequest(prompt="A line about space cats", model="gpt-4o-mini")
    response, seen = stream(server, request)
    assert len(seen) == len(ANSWER.split()) > 1  # one call per word-sized chunk the server sent
    assert_growing(seen)
    assert seen[-1] == response.text == ANSWER
    same_answer(response, complete(server, request))
    assert response.extra["finish_reason"] == "stop" and response.extra["id"].startswith("chatcmpl-")
    streamed, completed = (r.body for r in server.chat_requests)
    assert streamed is not None and completed is not None
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}
    assert "stream" not in completed


def test_usage_from_the_final_chunk(server: LLMServer) -> None:
    server.usage = (13, 21)
    response, _ = stream(server, LLMRequest(prompt="hi there", model="m"))
    assert (response.prompt_tokens, response.completion_tokens, response.total_tokens) == (13, 21, 34)


def test_server_that_sends_no_usage_gets_its_tokens_estimated(server: LLMServer) -> None:
    server.answer = lambda body: ANSWER
    server.stream_usage = False
    response, seen = stream(server, LLMRequest(prompt="hi", model="m"))
    assert response.text == seen[-1] == ANSWER
    assert (response.prompt_tokens, response.completion_tokens) == (1, -(-len(ANSWER) // 4))
    assert response.extra["estimated_usage"] is True
    server.stream_usage = True  # a server that does report usage: its own counts, not marked
    response, _ = stream(server, LLMRequest(prompt="hi", model="m"))
    assert "estimated_usage" not in response.extra and response.completion_tokens == len(ANSWER.split()) * 4 // 3 + 1


def test_schema_answer_streams_and_validates_at_the_end(server: LLMServer) -> None:
    request = LLMRequest(prompt="A movie", model="m", schema=Movie)
    response, seen = stream(server, request)
    assert response.value == Movie(title="example title", year=42, cast=["example cast"] * 2)
    assert len(seen) > 1 and seen[-1] == response.text
    assert_growing(seen)
    same_answer(response, complete(server, request))
    body = server.chat_requests[0].body
    assert body is not None
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Movie", "schema": Movie.model_json_schema()},
    }


def test_streamed_schema_mismatch_has_the_error_and_the_raw_answer(server: LLMServer) -> None:
    server.answer = lambda body: '{"title": "Up", "year": "soon"}'
    with pytest.raises(LLMError) as caught:
        stream(server, LLMRequest(prompt="A movie", model="m", schema=Movie))
    message = str(caught.value)
    assert "year" in message and "cast" in message and "Field required" in message
    assert '{"title": "Up", "year": "soon"}' in message
    assert caught.value.raw == '{"title": "Up", "year": "soon"}'


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "message": f"upstream exploded for key {API_KEY}"},
        {"drop": True},
        {"malformed": True},
    ],
    ids=["error-event", "dropped-connection", "malformed-chunk"],
)
def test_failure_mid_stream_is_an_llm_error_without_the_key(server: LLMServer, fault: dict[str, Any]) -> None:
    server.answer = lambda body: ANSWER
    server.fail_next(after_chunks=3, **fault)
    seen: list[str] = []
    request = LLMRequest(prompt="hi", model="m")
    with pytest.raises(LLMError) as caught:
        with_provider(server, lambda p: p.stream(request, seen.append))
    assert seen == ["Space ", "Space cats ", "Space cats drift "]  # it did break in the middle
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert API_KEY not in shown
    if "message" in fault:
        assert "upstream exploded for key ***" in shown


def test_error_status_before_the_stream_is_an_llm_error_without_the_key(server: LLMServer) -> None:
    server.fail_next(status=401, message=f"Incorrect API key provided: {API_KEY}.")
    with pytest.raises(LLMError) as caught:
        stream(server, LLMRequest(prompt="hi", model="m"), max_retries=0)
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert "Incorrect API key provided" in shown and API_KEY not in shown


def test_an_exception_from_on_text_propagates_and_the_provider_still_works(server: LLMServer) -> None:
    server.answer = lambda body: ANSWER

    def on_text(text: str) -> None:
        if len(text) > 10:
            raise KeyError("the watcher broke")

    async def use(provider: OpenAIProvider) -> LLMResponse:
        with pytest.raises(KeyError, match="the watcher broke"):
            await provider.stream(LLMRequest(prompt="hi", model="m"), on_text)
        return await provider.stream(LLMRequest(prompt="again", model="m"), lambda text: None)

    assert with_provider(server, use).text == ANSWER


# --------------------------------------------------------------------------- answer()


def test_answer_streams_only_when_asked_and_possible(server: LLMServer) -> None:
    server.answer = lambda body: ANSWER

    class CompleteOnly:
        """A third-party provider written before streaming existed."""

        async def complete(self, request: LLMRequest) -> LLMResponse:
            return LLMResponse(text="whole", value="whole", model=request.model)

        async def aclose(self) -> None:
            pass

    async def use(provider: OpenAIProvider) -> tuple[LLMResponse, LLMResponse, LLMResponse, list[str]]:
        seen: list[str] = []
        streamed = await answer(provider, LLMRequest(prompt="a", model="m"), seen.append)
        completed = await answer(provider, LLMRequest(prompt="b", model="m"))
        legacy = await answer(CompleteOnly(), LLMRequest(prompt="c", model="m"), seen.append)
        return streamed, completed, legacy, seen

    streamed, completed, legacy, seen = with_provider(server, use)
    assert streamed.text == completed.text == ANSWER and seen[-1] == ANSWER and len(seen) > 1
    assert legacy.text == "whole" and "whole" not in seen
    first, second = (r.body for r in server.chat_requests)
    assert first is not None and second is not None
    assert first.get("stream") is True and "stream" not in second
    assert isinstance(CompleteOnly(), Provider) and not isinstance(CompleteOnly(), StreamingProvider)


# --------------------------------------------------------------------------- the offline model


def offline_stream(request: LLMRequest) -> tuple[LLMResponse, list[tuple[float, str]], float]:
    """The streamed offline response, each text with when it arrived, and the total time."""

    async def main() -> tuple[LLMResponse, list[tuple[float, str]], float]:
        started = time.monotonic()
        seen: list[tuple[float, str]] = []
        response = await OfflineProvider().stream(request, lambda text: seen.append((time.monotonic() - started, text)))
        return response, seen, time.monotonic() - started

    return asyncio.run(main())


@pytest.mark.parametrize("schema", [None, Movie])
def test_offline_stream_gives_completes_answer_a_word_at_a_time(
    monkeypatch: pytest.MonkeyPatch, schema: type[BaseModel] | None
) -> None:
    monkeypatch.setenv(LATENCY_ENV, "0")
    request = LLMRequest(prompt="Title of a movie about a robot chef who sings", model="offline", schema=schema)
    response, seen, _ = offline_stream(request)
    texts = [text for _, text in seen]
    assert len(texts) > 2
    assert_growing(texts)
    assert texts[-1] == response.text
    same_answer(response, asyncio.run(OfflineProvider().complete(request)))
    assert response.offline is True and response.prompt_tokens and response.completion_tokens


def test_offline_stream_spreads_the_words_over_the_same_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LATENCY_ENV, "0.3")
    request = LLMRequest(prompt="Write a welcome message for the chess club", model="offline")
    delay = OfflineProvider().delay_for(request)
    _, seen, elapsed = offline_stream(request)
    first_at, last_at = seen[0][0], seen[-1][0]
    assert 0.2 * delay <= first_at < 0.7 * delay  # the first words come early...
    assert last_at >= 0.9 * delay  # ...the last ones at the end
    assert 0.9 * delay <= elapsed < delay + 0.25  # about as long as complete() takes


def test_offline_model_is_streamed_through_the_registry() -> None:
    async def main() -> tuple[LLMResponse, list[str]]:
        seen: list[str] = []
        response = await answer(
            registry.provider_for("offline"), LLMRequest(prompt="Ideas for a party", model="offline"), seen.append
        )
        return response, seen

    response, seen = asyncio.run(main())
    assert len(seen) > 1 and seen[-1] == response.text


# --------------------------------------------------------------------------- prices


@pytest.fixture
def restored_prices() -> Iterator[None]:
    saved = dict(PRICES)
    yield
    PRICES.clear()
    PRICES.update(saved)


def test_cost_is_tokens_times_price_per_million() -> None:
    assert cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.50)
    assert cost("gpt-4o-mini", 2_000, 1_000) == pytest.approx((2_000 * 0.15 + 1_000 * 0.60) / 1e6)
    assert cost("o4-mini", 500, None) == pytest.approx(500 * 1.10 / 1e6)  # an unknown count counts as 0
    assert cost("offline", 10_000, 10_000) == 0


def test_dated_snapshots_take_the_longest_matching_price() -> None:
    assert price_for("gpt-4o-mini-2024-07-18") == PRICES["gpt-4o-mini"] != PRICES["gpt-4o"]
    assert price_for("gpt-4o-2024-08-06") == PRICES["gpt-4o"]
    assert price_for("gpt-4.1-nano-2025-04-14") == PRICES["gpt-4.1-nano"]
    assert cost("gpt-4.1-mini-2025-04-14", 1_000_000, 0) == pytest.approx(0.40)


def test_unknown_models_and_unknown_counts_have_no_cost() -> None:
    assert cost("llama3.2", 100, 100) is None
    assert cost("gpt-4omni", 100, 100) is None  # a prefix must be followed by "-"
    assert cost("mini-gpt-4o", 100, 100) is None
    assert cost("gpt-4o", None, None) is None


@pytest.mark.usefixtures("restored_prices")
def test_set_price_overrides_and_adds() -> None:
    set_price("gpt-4o", input=1.0, output=2.0)
    assert cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert cost("gpt-4o-2024-08-06", 1_000_000, 0) == pytest.approx(1.0)
    set_price("llama3.2", 0, 0)
    assert cost("llama3.2", 5, 5) == 0
    with pytest.raises(ValueError, match="output"):
        set_price("bad", 1.0, -1.0)
    assert "bad" not in PRICES


def test_prices_are_frozen_and_exported() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRICES["gpt-4o"].input = 0  # type: ignore[misc]
    assert Price(0.15, 0.60) == PRICES["gpt-4o-mini"]
    assert flowmagic.llm.cost is cost and flowmagic.llm.set_price is set_price
    assert flowmagic.llm.PRICES is PRICES and flowmagic.llm.Price is Price
