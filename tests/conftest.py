"""Shared fixtures: a fresh IPython shell per test, the offline model made fast, an empty step cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from flowmagic.llm import LLMRequest, LLMResponse, register_provider


@pytest.fixture(autouse=True)
def _offline_and_fast(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    # tests never reach a real LLM service, and the offline model answers quickly
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "FLOWMAGIC_MODEL", "FLOWMAGIC_CACHE_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLOWMAGIC_OFFLINE_LATENCY", "0.01")
    # a disk cache makes its per-user secret here, never in the real configuration directory
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    # each test starts with no cached steps and no run history: one test's runs never answer another's
    from flowmagic.engine.cache import default_cache
    from flowmagic.engine.history import default_history

    default_cache.clear()
    default_history.clear()
    yield
    default_cache.clear()
    default_cache.set_secret(None)
    default_history.clear()


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    """A new InteractiveShell with the extension loaded; nothing is shared between tests."""
    InteractiveShell.clear_instance()
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "flowmagic")
    try:
        yield sh
    finally:
        sh.run_line_magic("unload_ext", "flowmagic")
        InteractiveShell.clear_instance()


class Echo:
    """A provider that answers with the prompt, at once."""

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return LLMResponse(text=request.prompt, value=request.prompt, model=request.model)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def echo_model() -> str:
    """Models named ``echo-...`` answer with their prompt (a second model besides the offline one)."""
    register_provider("echo-", Echo)
    return "echo-"
