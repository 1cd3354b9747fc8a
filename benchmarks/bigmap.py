"""A map over many items: flowmagic's total overhead and peak memory, beside the baselines.

Every item is a no-op (it returns its input), so the whole time is overhead.
Timed from the item list to the list of results, building included, because
some systems expand a map while running (flowmagic, LangGraph's ``Send``,
WayFlow's ``MapStep``) and others before (a graph of N nodes, Dask's N delayed
calls): ``Flow.from_source(...).run()`` for flowmagic, building the N-node
graph and running it for the baselines.

* flowmagic: ``out = [item(x) for x in items]``, ``item`` a sync function
  ("flowmagic") or an ``async def`` ("flowmagic async"), 32 workers.
* thread-pool / asyncio: :mod:`benchmarks.baselines` over N independent nodes.

Peak memory is measured in a separate run of each system under
``tracemalloc`` (it slows Python down, so it never overlaps the timed runs):
the peak of traced allocations during that run, in MB (10^6 bytes).
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from flowmagic import Flow

from .baselines import Node, run_asyncio, run_threadpool

TARGET_S = 1.0
TEXT = "out = [item(x) for x in items]\n"


def item(x: Any) -> Any:
    return x


async def aitem(x: Any) -> Any:
    return x


def size(quick: bool) -> int:
    return 1_000 if quick else 10_000


def runners(n: int, workers: int) -> dict[str, Callable[[], int]]:
    """One zero-argument callable per system, each returning how many results it got."""
    items = list(range(n))

    def fm(fn: Callable[[Any], Any]) -> Callable[[], int]:
        def run() -> int:
            flow = Flow.from_source(
                TEXT, name="map", namespace={"item": fn, "items": items}, workers=workers, cache=False
            )
            result = flow.run()
            if result.status != "succeeded":
                raise RuntimeError(f"flowmagic map ended {result.status}")
            return len(result["out"])

        return run

    return {
        "flowmagic": fm(item),
        "flowmagic async": fm(aitem),
        "thread-pool": lambda: len(run_threadpool({f"x{i}": Node(item, (i,)) for i in items}, workers)),
        "asyncio": lambda: len(run_asyncio({f"x{i}": Node(aitem, (i,)) for i in items})),
    }


def peak_bytes(fn: Callable[[], int]) -> int:
    """The peak of traced allocations while ``fn`` runs."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(repeat: int, workers: int, quick: bool) -> list[dict[str, Any]]:
    n = size(quick)
    for fn in runners(100, workers).values():  # warm-up, small
        fn()
    fns = runners(n, workers)
    samples: dict[str, list[float]] = {s: [] for s in fns}
    for _ in range(repeat):
        for system, fn in fns.items():
            gc.collect()
            t0 = time.perf_counter()
            got = fn()
            samples[system].append(time.perf_counter() - t0)
            if got != n:
                raise RuntimeError(f"{system}: {got} of {n} map results")
    peaks = {system: peak_bytes(fn) for system, fn in fns.items()}
    return [
        {
            "key": "map_time",
            "title": f"map of {n:,} no-op items: total time",
            "metric": "total_s",
            "scale": 1.0,
            "items": n,
            "value": {s: statistics.median(v) for s, v in samples.items()},
            "samples": samples,
        },
        {
            "key": "map_memory",
            "title": f"map of {n:,} no-op items: peak memory",
            "metric": "peak_mb",
            "scale": 1.0,
            "items": n,
            "value": {s: b / 1e6 for s, b in peaks.items()},
        },
    ]
