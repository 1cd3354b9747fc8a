"""Does a step wait for an unrelated slow branch? The slow/fast shape, on flowmagic and the baselines.

The workload (:func:`benchmarks.workloads.slow_fast`): ``slow`` and ``fast``
start together, ``uses_fast`` needs only ``fast``, ``both`` needs both. Every
step body is :func:`~benchmarks.workloads.stamp` (or ``astamp``), which notes
``time.perf_counter()`` when it starts and ends; the row is the median of
``uses_fast``'s start minus ``fast``'s end, in milliseconds. Repeats are
interleaved over the systems, as in the main rows.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from flowmagic import Flow

from .baselines import run_asyncio, run_threadpool
from .workloads import ASYNC_NS, STAMPS, SYNC_NS, Workload, astamp, slow_fast, stamp, stamped_graph

TARGET_MS = 5.0


def gap_ms(w: Workload) -> float:
    before, after = w.extra["gap"]
    return (STAMPS[after][0] - STAMPS[before][1]) * 1e3


def runners(w: Workload, workers: int) -> dict[str, Callable[[], Any]]:
    text = w.dsl()
    fm_sync = Flow.from_source(text, name=w.key, namespace={**SYNC_NS, "stamp": stamp}, workers=workers, cache=False)
    fm_async = Flow.from_source(text, name=w.key, namespace={**ASYNC_NS, "stamp": astamp}, workers=workers, cache=False)
    g_sync, g_async = stamped_graph(w, False), stamped_graph(w, True)
    return {
        "flowmagic": fm_sync.run,
        "flowmagic async": fm_async.run,
        "thread-pool": lambda: run_threadpool(g_sync, workers),
        "asyncio": lambda: run_asyncio(g_async),
    }


def measure(repeat: int, workers: int) -> dict[str, Any]:
    w = slow_fast()
    fns = runners(w, workers)
    samples: dict[str, list[float]] = {s: [] for s in fns}
    for _ in range(repeat):
        for system, fn in fns.items():
            STAMPS.clear()
            result = fn()
            if system.startswith("flowmagic") and result.status != "succeeded":
                raise RuntimeError(f"{system} run of {w.key} ended {result.status}")
            if set(STAMPS) != {s.name for s in w.specs}:
                raise RuntimeError(f"{system} run of {w.key} ran {sorted(STAMPS)}")
            samples[system].append(gap_ms(w))
    return {
        "key": w.key,
        "title": w.title,
        "metric": "gap_ms",
        "scale": 1.0,
        "value": {s: statistics.median(v) for s, v in samples.items()},
        "samples": samples,
    }
