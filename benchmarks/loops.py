"""What a ``for`` loop costs per iteration: 100 iterations of one no-op step, against a plain
Python loop that drives the same step through the thread-pool baseline (submit, wait, 100 times).

The row is µs per iteration (median wall time of the whole run / 100). flowmagic runs each
iteration as a nested run (its own scheduler and record, events relayed into the parent's), so
the ratio says what that nesting costs over the cheapest way to run the same steps in order.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flowmagic import Flow

ITERATIONS = 100


def noop(i: int) -> int:
    return i


async def anoop(i: int) -> int:
    return i


def runners(workers: int) -> dict[str, Callable[[], Any]]:
    source = f"for i in range({ITERATIONS}):\n    x = step(i)\nlast = x"
    sync = Flow.from_source(source, name="loop", namespace={"step": noop}, workers=workers, cache=False)
    async_ = Flow.from_source(source, name="loop", namespace={"step": anoop}, workers=workers, cache=False)
    pool = ThreadPoolExecutor(workers)

    def threadpool() -> int:
        last = 0
        for i in range(ITERATIONS):
            last = pool.submit(noop, i).result()
        return last

    def checked(flow: Flow) -> Callable[[], Any]:
        def run() -> Any:
            result = flow.run()
            if result.status != "succeeded" or result["last"] != ITERATIONS - 1:
                raise RuntimeError(f"the loop row's flow ended {result.status}")
            return result

        return run

    return {"flowmagic": checked(sync), "flowmagic async": checked(async_), "thread-pool": threadpool}


def measure(repeat: int, workers: int) -> dict[str, Any]:
    fns = runners(workers)
    for fn in fns.values():
        fn()  # warm-up
    samples: dict[str, list[float]] = {s: [] for s in fns}
    for _ in range(max(repeat, 3)):
        for system, fn in fns.items():  # interleaved, as the main rows are
            start = time.perf_counter()
            fn()
            samples[system].append(time.perf_counter() - start)
    return {
        "key": "loop",
        "title": f"for loop of {ITERATIONS} iterations, one no-op step each",
        "metric": "per_step",
        "scale": float(ITERATIONS),
        "value": {s: statistics.median(v) / ITERATIONS * 1e6 for s, v in samples.items()},
        "samples": samples,
    }
