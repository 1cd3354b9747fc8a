"""Which provider answers which model name, and one shared provider per event loop.

Network clients (httpx under the ``openai`` SDK) are bound to the event loop they
first run on, so providers are cached per running loop and closed with
:func:`aclose_providers` before that loop closes. :func:`ask`, which steps use,
makes every call but the offline model's on the process's network loop
(:mod:`flowmagic.llm.network`), so one client per configuration, with its pooled
connections, serves every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import weakref
from collections.abc import Callable, Hashable

from flowmagic.llm.network import on_network, relay
from flowmagic.llm.protocol import LLMRequest, LLMResponse, Provider, TextCallback, answer

OFFLINE_MODEL = "offline"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

ProviderFactory = Callable[[], Provider]

_offline: Provider | None = None


def _offline_provider() -> Provider:
    """The shared offline model, loaded on the first offline answer (it is the largest module here)."""
    global _offline
    if _offline is None:
        from flowmagic.llm.offline import OfflineProvider

        _offline = OfflineProvider()
    return _offline
_FACTORIES: dict[str, ProviderFactory] = {}
_lock = threading.Lock()
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, Provider]] = weakref.WeakKeyDictionary()


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def resolve_model(model: str | None) -> str:
    """The model to use: ``model`` if given, else ``FLOWMAGIC_MODEL``, else
    ``"gpt-4o-mini"`` when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, else ``"offline"``.
    """
    if model and model.strip():
        return model.strip()
    configured = _env("FLOWMAGIC_MODEL")
    if configured:
        return configured
    if _env("OPENAI_API_KEY") or _env("OPENAI_BASE_URL"):
        return DEFAULT_OPENAI_MODEL
    return OFFLINE_MODEL


def register_provider(prefix: str, factory: ProviderFactory) -> None:
    """Answer model names starting with ``prefix`` with providers made by ``factory``.

    ``factory()`` is called once, on the network loop (at most once per event
    loop when :func:`provider_for` is called directly); the provider it returns
    is shared by every matching model and every run, and closed by
    :func:`aclose_providers` when its loop ends. The longest matching prefix wins.
    Registering a prefix again replaces its factory and closes the providers the
    old one made, so the next call gets a new one. The provider needs
    ``complete`` and ``aclose``; it may add ``stream`` (see
    :class:`~flowmagic.llm.protocol.StreamingProvider`).

    Example::

        register_provider("claude-", lambda: MyAnthropicProvider())
        # llm("...", model="claude-sonnet-4") now goes through MyAnthropicProvider
    """
    if not prefix:
        raise ValueError("prefix must be a non-empty string")
    _set_factory(prefix, factory)


def unregister_provider(prefix: str) -> None:
    """Forget ``prefix``'s factory and close the providers it made (a missing prefix is fine)."""
    _set_factory(prefix, None)


def _set_factory(prefix: str, factory: ProviderFactory | None) -> None:
    """Replace ``prefix``'s factory (None: drop it) and close the providers the old one made.

    Both under one hold of the lock, so no provider of the new factory is closed. Each
    is closed on its own loop, without waiting (calls already under way there may fail).
    """
    key = ("prefix", prefix)
    with _lock:
        if factory is None:
            _FACTORIES.pop(prefix, None)
        else:
            _FACTORIES[prefix] = factory
        stale = [(loop, cache.pop(key)) for loop, cache in list(_by_loop.items()) if key in cache]
    for loop, provider in stale:
        with contextlib.suppress(RuntimeError):  # that loop has closed, and its sockets with it
            asyncio.run_coroutine_threadsafe(provider.aclose(), loop)


def _openai_key() -> tuple[str, str | None, str | None]:
    # The cache key must tell configurations apart without holding the secret itself.
    api_key = _env("OPENAI_API_KEY")
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest() if api_key else None
    return ("openai", _env("OPENAI_BASE_URL"), fingerprint)


def provider_for(model: str) -> Provider:
    """The provider for ``model`` on the running event loop (call it from a coroutine).

    ``"offline"`` gets the shared :class:`~flowmagic.llm.offline.OfflineProvider`;
    a registered prefix gets its factory's provider; any other name gets an
    :class:`~flowmagic.llm.openai_provider.OpenAIProvider`, one per
    (base URL, API key) configuration per loop.
    """
    loop = asyncio.get_running_loop()  # RuntimeError outside a loop, on purpose
    if model == OFFLINE_MODEL:
        return _offline_provider()
    with _lock:
        prefixes = sorted((p for p in _FACTORIES if model.startswith(p)), key=len, reverse=True)
        key: Hashable = ("prefix", prefixes[0]) if prefixes else _openai_key()
        cache = _by_loop.setdefault(loop, {})
        provider = cache.get(key)
        if provider is None:
            if prefixes:
                provider = _FACTORIES[prefixes[0]]()
            else:
                from flowmagic.llm.openai_provider import OpenAIProvider

                provider = OpenAIProvider()
            cache[key] = provider
    return provider


async def ask(request: LLMRequest, on_text: TextCallback | None = None) -> LLMResponse:
    """Answer ``request`` with its model's provider, streaming to ``on_text`` when it can.

    The offline model answers on the running loop. Every other provider answers
    on the network loop, shared by all runs, and ``on_text`` is called back on
    the running loop, in order, before the answer returns.
    """
    if request.model == OFFLINE_MODEL:
        return await answer(_offline_provider(), request, on_text)
    callback = relay(on_text) if on_text is not None else None

    async def there() -> LLMResponse:
        return await answer(provider_for(request.model), request, callback)

    return await on_network(there())


async def aclose_providers() -> None:
    """Close and forget every provider of the running loop, so no sockets outlive it."""
    loop = asyncio.get_running_loop()
    with _lock:
        providers = list(_by_loop.pop(loop, {}).values())
    results = await asyncio.gather(*(p.aclose() for p in providers), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
