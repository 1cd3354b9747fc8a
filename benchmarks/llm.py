"""LLM fan-out: many ``llm`` calls against a local OpenAI-compatible server that answers in 200 ms.

The server (:mod:`benchmarks.llm_server`) runs in its own process. The row is
the median makespan over the ideal, ``ceil(calls / workers) x delay``: 100
calls with 32 workers take at least four rounds of 0.2 s, 0.8 s.

* flowmagic: ``answers = [llm("Question {i}: ...") for i in range(100)]`` with
  ``model="gpt-4o-mini"``, ``workers=32``, ``cache=False``, and
  ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` pointing at the server, so the
  official ``openai`` client does the calls: its ``AsyncOpenAI`` on the aiohttp
  transport, one client for every run (on flowmagic's network thread), whole
  answers (no view watches, so nothing streams). ``llm`` steps always run on
  event loops, so there is no separate "flowmagic async" cell.
* thread-pool: :func:`~benchmarks.baselines.run_threadpool` over 100 nodes,
  each one ``chat.completions.create`` on a shared sync ``OpenAI`` client
  (made once), 32 workers.
* asyncio: one ``AsyncOpenAI`` client per run (it belongs to the run's loop,
  on the SDK's default transport), 100 tasks behind an ``asyncio.Semaphore(32)``,
  ``asyncio.run``.

Every run is checked: all answers back, and exactly ``calls`` new requests at
the server. One warm-up run per system first (it imports and connects).
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flowmagic import Flow

from .baselines import Node, run_threadpool
from .llm_server import LLMServerProcess

DELAY_S = 0.2
MODEL = "gpt-4o-mini"
API_KEY = "sk-local-benchmark"
TARGET = 1.10


def sizes(quick: bool) -> tuple[int, int]:
    """(calls, workers)."""
    return (20, 8) if quick else (100, 32)


def ideal_s(calls: int, workers: int, delay: float = DELAY_S) -> float:
    return math.ceil(calls / workers) * delay


def prompt(i: int) -> str:
    return f"Question {i}: say something short."


@contextmanager
def openai_env(base_url: str) -> Iterator[None]:
    """OPENAI_BASE_URL / OPENAI_API_KEY pointing at the local server, restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    os.environ["OPENAI_BASE_URL"] = base_url
    os.environ["OPENAI_API_KEY"] = API_KEY
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def _asyncio_calls(base_url: str, calls: int, workers: int) -> list[str]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=API_KEY)
    limit = asyncio.Semaphore(workers)

    async def ask(i: int) -> str:
        async with limit:
            response = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": prompt(i)}]
            )
            return response.choices[0].message.content or ""

    try:
        return await asyncio.gather(*(ask(i) for i in range(calls)))
    finally:
        await client.close()


def runners(base_url: str, calls: int, workers: int) -> dict[str, Callable[[], int]]:
    """One zero-argument callable per system; each returns how many answers came back."""
    from openai import OpenAI

    text = f'answers = [llm("Question {{i}}: say something short.") for i in range({calls})]\n'
    flow = Flow.from_source(text, name="llm", model=MODEL, workers=workers, cache=False)
    client = OpenAI(base_url=base_url, api_key=API_KEY)

    def ask(i: int) -> str:
        response = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt(i)}])
        return response.choices[0].message.content or ""

    graph = {f"q{i}": Node(ask, (i,)) for i in range(calls)}

    def fm() -> int:
        run = flow.run()
        if run.status != "succeeded":
            raise RuntimeError(f"flowmagic llm run ended {run.status}: {run.failed()}")
        return len(run["answers"])

    return {
        "flowmagic": fm,
        "thread-pool": lambda: len(run_threadpool(graph, workers)),
        "asyncio": lambda: len(asyncio.run(_asyncio_calls(base_url, calls, workers))),
    }


def measure(server: LLMServerProcess, repeat: int, quick: bool) -> dict[str, Any]:
    calls, workers = sizes(quick)
    ideal = ideal_s(calls, workers)
    samples: dict[str, list[float]] = {}
    with openai_env(server.base_url):
        fns = runners(server.base_url, calls, workers)
        samples = {s: [] for s in fns}
        for fn in fns.values():  # warm-up: imports, first connections
            fn()
        for _ in range(repeat):
            for system, fn in fns.items():
                before = server.requests()
                t0 = time.perf_counter()
                answers = fn()
                wall = time.perf_counter() - t0
                sent = server.requests() - before
                if answers != calls or sent != calls:
                    raise RuntimeError(f"{system}: {answers} answers, {sent} requests for {calls} calls")
                samples[system].append(wall)
    return {
        "key": "llm",
        "title": f"{calls} llm calls, server answers in {DELAY_S * 1e3:.0f} ms, {workers} workers",
        "metric": "makespan",
        "scale": ideal,
        "calls": calls,
        "workers": workers,
        "value": {s: statistics.median(v) / ideal for s, v in samples.items()},
        "samples": samples,
    }
