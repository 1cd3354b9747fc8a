"""The redaction rule itself: which secrets are in force, what of them is replaced, and at what cost."""

from __future__ import annotations

import base64
import gc
import logging
import random
import time

import pytest

from flowmagic.llm import log_redaction
from flowmagic.llm.protocol import LLMResponse, count_note, is_count
from flowmagic.llm.secrets import RUN, TAIL, StreamRedactor, hold, in_force, redact, safe_url, url_secrets

KEY = "sk-proj-Vt4Qm8ZrK2xN7bLc9WdP3sHy"
PASSWORD = "Hq7-Zx2Lr9Vm4Tc"
QUERY_KEY = "9fK2mXq7Lr3TzW8v"
URL = f"https://ada:{PASSWORD}@llm.example.com:8443/v1?api-key={QUERY_KEY}&api-version=2024-06-01#frag-Zt8Kq"
PROSE = (
    "The capital of France is Paris. Send the report to https://docs.example.org/page?id=42&lang=en "
    "before Friday; the bearer of this note is welcome. Authorization levels: none. Tokens used: 1,234."
)


@pytest.fixture(autouse=True)
def planted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", URL)


def runs(secret: str) -> set[str]:
    return {secret[i : i + RUN] for i in range(len(secret) - RUN + 1)}


def shows(text: str, *secrets: str) -> list[str]:
    """The RUN-character runs of ``secrets`` that ``text`` shows."""
    return sorted(run for secret in secrets for run in runs(secret) if run in text)


# -- what is in force ---------------------------------------------------------------------------


def test_the_secrets_of_a_url_are_its_password_query_values_and_fragment_as_written_and_decoded() -> None:
    secrets, host = url_secrets("http://me:p%40ss-word@Host:9/v1?key=a%2Bb-123&sig=x+y+z-456&bare-token-789#f")
    basic = base64.b64encode(b"me:p@ss-word").decode()  # what the HTTP client sends for the userinfo
    assert secrets == {"p%40ss-word", "p@ss-word", basic, "a%2Bb-123", "a+b-123", "x+y+z-456", "x y z-456"} | {
        "bare-token-789",
        "f",
    }
    assert host == "host:9"
    assert url_secrets("http://token-only-4567@host/v1")[0] == {
        "token-only-4567",
        base64.b64encode(b"token-only-4567:").decode(),
    }
    assert url_secrets("http://[::1/v1") == (frozenset(), None)  # not a URL: nothing to take


def test_a_providers_secrets_are_in_force_while_it_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    gc.collect()  # other tests' providers may still live on the shared network loop, but no dead ones
    before = in_force()
    owner = type("Owner", (), {})()
    hold(owner, api_key="sk-held-Wq3Zr8Kx", base_url="http://H:1/v1?k=held-Qv7Lm2Tz")
    secrets, hosts = in_force()
    assert secrets - before[0] == {"sk-held-Wq3Zr8Kx", "held-Qv7Lm2Tz"} and "h:1" in hosts
    assert redact("sk-held-Wq3Zr8Kx and held-Qv7Lm2Tz") == "*** and ***"
    del owner
    gc.collect()
    assert in_force() == before
    assert redact("sk-held-Wq3Zr8Kx and held-Qv7Lm2Tz") == "sk-held-Wq3Zr8Kx and held-Qv7Lm2Tz"


# -- what is replaced ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "echo",
    [
        KEY,
        KEY[:-1],  # the key less its last character
        KEY[1:],
        KEY[:14] + " ... and later ... " + KEY[14:],  # split across a sentence
        f'{{"error": {{"message": "bad key {KEY[2:-2]}", "sig": "{QUERY_KEY}"}}}}',
        f"password {PASSWORD} / {PASSWORD[:-1]}, fragment frag-Zt8Kq",
        f"echoed: {KEY[4:12]}",  # exactly RUN characters
    ],
)
def test_every_run_of_rule_length_of_a_secret_is_replaced(echo: str) -> None:
    text = f"Answer: {echo}. Done."
    clean = redact(text)
    assert not shows(clean, KEY, PASSWORD, QUERY_KEY, "frag-Zt8Kq")
    assert clean.startswith("Answer: ") and clean.endswith(". Done.") and "***" in clean


def test_runs_shorter_than_the_rule_and_ordinary_text_stay() -> None:
    assert redact(PROSE) == PROSE
    fragments = f"{KEY[: RUN - 1]} {KEY[10 : 10 + RUN - 1]}"  # 7 characters in a row: below the rule
    assert redact(fragments) == fragments


def test_header_values_and_bearer_tokens_are_replaced_whatever_the_token() -> None:
    cases = {
        "Authorization: Bearer tok-123456789": "Authorization: Bearer ***",
        "'authorization': 'Basic dXNlcjpwYXNz'": "'authorization': 'Basic ***'",
        '{"api-key": "whatever-unknown-1"}': '{"api-key": "***"}',
        "X-Api-Key=abcd1234efgh": "X-Api-Key=***",
        "sent bearer eyJhbGciOiJIUzI1NiJ9.e30.x": "sent bearer ***",
        "the bearer instrument": "the bearer instrument",  # prose
    }
    for text, expected in cases.items():
        assert redact(text) == expected


def test_urls_in_text_lose_passwords_and_the_configured_servers_query_values() -> None:
    text = (
        "POST https://llm.example.com:8443/v1/chat/completions?api-key=anything-else&n=2 failed; "
        "see http://bob:hunter2@other.example.net/x and https://docs.example.org/page?id=42"
    )
    assert redact(text) == (
        "POST https://llm.example.com:8443/v1/chat/completions?api-key=***&n=*** failed; "
        "see http://bob:***@other.example.net/x and https://docs.example.org/page?id=42"
    )


def test_a_url_is_shown_with_names_and_address_but_no_secret() -> None:
    assert safe_url(URL) == "https://ada:***@llm.example.com:8443/v1?api-key=***&api-version=***#***"
    assert safe_url("http://token@h/v1?flag&empty=") == "http://***@h/v1?***&empty="
    assert safe_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert safe_url("http://[::1/v1") == "***"


def test_short_secrets_are_replaced_whole_and_tiny_ones_only_in_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://u:pw@h:1/v1?k=abc12&v=1")
    assert redact("abc12 was wrong") == "*** was wrong"  # 5 characters: replaced where whole
    assert redact("pw 1 http://u:pw@h:1/v1?v=1") == "pw 1 http://u:***@h:1/v1?v=***"


# -- streams and cost ---------------------------------------------------------------------------


def test_a_streamed_answer_is_redacted_as_the_whole_text_would_be_at_every_step() -> None:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "x" * 40, "https://llm.example.com:8443/v1?api-key=", "\n"]
    for _ in range(6):
        pieces = [rng.choice(words) + " " for _ in range(rng.randrange(50, 400))]
        at = rng.randrange(len(pieces))
        secret = rng.choice([KEY, KEY[:-1], QUERY_KEY, PASSWORD, f"Bearer {KEY[3:20]}"])
        pieces[at:at] = [secret[: len(secret) // 2], secret[len(secret) // 2 :] + " "]  # arrives in two chunks
        shown, text = StreamRedactor(), ""
        for piece in pieces:
            text += piece
            assert shown(text) == redact(text)
        assert not shows(shown(text), KEY, QUERY_KEY, PASSWORD)
    assert len(text) > TAIL  # the texts reach past the window the stream checks


def test_redaction_cost_grows_linearly_with_the_text() -> None:
    # near misses everywhere: pieces of the key that match its HALF-runs and must be checked
    unit = "".join(f"{KEY[i : i + RUN - 1]} " for i in range(len(KEY) - RUN)) + "plain words here. "
    small, large = unit * 600, unit * 4_800  # about 0.13 MB and 1 MB

    def seconds(text: str) -> float:
        start = time.perf_counter()
        assert redact(text) == text
        return time.perf_counter() - start

    seconds(small)
    ratio = min(seconds(large) for _ in range(3)) / min(seconds(small) for _ in range(3))
    assert ratio < 24, ratio  # 8 times the text: about 8 times the time (64 if it were quadratic)


# -- logs and usage -----------------------------------------------------------------------------


def test_the_log_filter_redacts_messages_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    log_redaction.install()
    logger = logging.getLogger("httpx2")  # one of the HTTP stack's loggers
    caplog.set_level(logging.DEBUG, logger="httpx2")
    try:
        raise RuntimeError(f"refused {KEY[:-1]}")
    except RuntimeError:
        logger.debug(
            "HTTP Request: %s %s", "POST", f"https://llm.example.com:8443/v1?api-key={QUERY_KEY}", exc_info=True
        )
    logger.debug("bad %s %s", "arguments")  # too few: shown without them, not raw
    assert "api-key=***" in caplog.text and "RuntimeError: refused ***" in caplog.text
    assert not shows(caplog.text, KEY, QUERY_KEY) and "arguments hidden" in caplog.text


@pytest.mark.parametrize(
    ("value", "kept"),
    [(12, 12), (0, 0), (-1, None), (True, None), (1.5, None), ("12", None), (f"Bearer {KEY}", None), ({}, None)],
)
def test_token_counts_are_whole_numbers_or_dropped_with_a_note_that_does_not_quote_them(
    value: object, kept: int | None
) -> None:
    response = LLMResponse(text="a", value="a", model="m", prompt_tokens=value, completion_tokens=3)  # type: ignore[arg-type]
    assert response.prompt_tokens == kept and response.completion_tokens == 3
    assert is_count(value) is (kept is not None)
    if kept is None:
        assert response.usage_note == count_note("prompt_tokens", value)
        assert response.usage_note is not None and response.usage_note.startswith("prompt_tokens dropped")
        assert str(value) not in response.usage_note and response.total_tokens == 3
    else:
        assert response.usage_note is None and response.total_tokens == kept + 3
