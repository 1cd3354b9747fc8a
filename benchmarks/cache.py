"""The step cache's cost: rerunning an unchanged 100-step cell, every step cached.

A notebook rerun parses the cell again and runs it, so that is what is timed:
``Flow.from_source(text).run()``. The flow is 100 steps: 20 ``llm`` steps on the
offline model, each feeding four Python steps (a tool marked
``@flowmagic.cacheable``, so the cache may reuse it) that read a shared list input
(so inputs are fingerprinted too, and the ideas' values when the tools start). The first run fills the cache and is not
timed. The row also times the same rerun with ``cache=False`` on no-op Python
steps, to show what the cache adds to a run that does no work.
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any

import flowmagic
from flowmagic import Flow
from flowmagic.engine.cache import default_cache

TARGET_S = 0.050


@flowmagic.cacheable
def tool(text: str, rows: list[str], i: int) -> str:
    return f"{text[:20]}:{rows[i % len(rows)]}"


def cell(groups: int = 20) -> str:
    lines = []
    for g in range(groups):
        lines.append(f'idea{g} = llm("Name one idea about {{topic}}, number {g}")')
        lines.append("parallel:")
        lines.extend(f"    use{g}_{k} = tool(idea{g}, rows, {k})" for k in range(4))
    return "\n".join(lines) + "\n"


NAMESPACE = {"tool": tool, "rows": [f"row {i}" for i in range(200)], "topic": "space cats"}


def rerun(text: str, **settings: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    run = Flow.from_source(text, name="cached", namespace=NAMESPACE, **settings).run()
    return time.perf_counter() - t0, run


def measure(repeat: int) -> dict[str, Any]:
    text = cell()
    default_cache.clear()
    _, first = rerun(text, model="offline")
    assert first.status == "succeeded" and len(first.steps) == 100, first
    cached: list[float] = []
    uncached: list[float] = []
    for _ in range(max(5, repeat * 3)):
        gc.collect()
        wall, run = rerun(text, model="offline")
        assert all(r.cached for r in run.steps.values()), run.summary()
        cached.append(wall)
        gc.collect()
        noop_text = text.replace('llm("', 'str("')  # same shape and inputs, no model delay
        uncached.append(rerun(noop_text, cache=False)[0])
    default_cache.clear()
    return {
        "steps": 100,
        "cached_s": statistics.median(cached),
        "uncached_noop_s": statistics.median(uncached),
        "samples_cached_s": cached,
        "samples_uncached_noop_s": uncached,
    }


def report(result: dict[str, Any]) -> str:
    ok = "met" if result["cached_s"] <= TARGET_S else "MISSED"
    return "\n".join(
        [
            "| workload | cached rerun, ms | same cell, no cache, no-op steps, ms |",
            "|---|---|---|",
            f"| {result['steps']} steps (20 llm, 80 Python), parse + run | "
            f"{result['cached_s'] * 1e3:.1f} | {result['uncached_noop_s'] * 1e3:.1f} |",
            "",
            f"cached rerun {result['cached_s'] * 1e3:.1f} ms (target <= {TARGET_S * 1e3:.0f} ms): {ok}.",
        ]
    )
