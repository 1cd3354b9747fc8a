"""Scale without surprises: a map of 10,000 elements in bounded memory, and a clear error past the limit.

Memory is measured with ``tracemalloc``: the same 10,000-element map runs twice,
once making small values (its peak is what the run itself costs: tasks, records,
events) and once values ``BIG - SMALL`` bytes larger each. The second peak may
exceed the first by the values and no more: a copy of them kept by any event,
record or observer would double that.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

import pytest

from flowmagic import Flow, Run
from flowmagic.engine import elements
from flowmagic.engine import events as ev
from flowmagic.engine.cache import default_cache
from flowmagic.engine.runner import run_blocking

N = 10_000
SMALL, BIG = 32, 4_096  # bytes in each element's value

#: Memory per element besides its value: its task and coroutine frames, its StepRecord, the
#: three events it sends (their detail dicts), its slot in the results. Measured at about 3 kB
#: (see the report); 8 kB leaves room for other Python builds while still catching a per-element
#: copy of anything sizeable (an element's namespace, its value, the run's records).
PER_ELEMENT = 8_000


def run_map(size: int, maker: str) -> tuple[Run, list[bytes], int, int, int]:
    """Run a 10,000-element map whose elements make ``size``-byte values; return the run, the values
    the elements made, the peak and the retained traced memory above the start, and the events sent."""
    made: list[bytes] = [b""] * N

    def make_sync(i: int) -> bytes:
        value = made[i] = bytes([i % 251]) * size
        return value

    async def make_async(i: int) -> bytes:
        return make_sync(i)

    counted = [0]

    def count(event: ev.Event) -> None:  # an observer that looks at every event, as the view does
        counted[0] += 1

    make = make_sync if maker == "sync" else make_async
    flow = Flow.from_source(f"items = list(range({N}))\nvalues = [make(i) for i in items]\n", namespace={"make": make})
    execution = flow.execution(observers=[count])
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        run = run_blocking(execution)
        gc.collect()
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return run, made, peak - start, now - start, counted[0]


@pytest.mark.parametrize("maker", ["async", "sync"])
def test_a_map_of_ten_thousand_elements_runs_in_memory_bounded_by_its_values(
    maker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the cache in memory keeps a reference; one on disk (FlowMagics.cache_dir) would pickle the
    # map's whole value once, a copy this test is not about
    monkeypatch.setattr(default_cache, "directory", None)
    began = time.monotonic()
    run, made, small_peak, _, _ = run_map(SMALL, maker)
    assert run.status == "succeeded" and len(run["values"]) == N
    del run, made
    run, made, big_peak, retained, events = run_map(BIG, maker)
    took = time.monotonic() - began
    assert run.status == "succeeded" and run.steps["values"].elements == N
    assert events >= 3 * N  # queued, started and finished, for each element
    # the values the run holds are the very objects the elements returned
    assert all(kept is value for kept, value in zip(run["values"], made, strict=True))
    values = N * (BIG - SMALL)
    print(
        f"\n{maker} map of {N:,}: peak {small_peak / N:,.0f} B per element with {SMALL} B values; "
        f"with {values:,} B more of values the peak is {big_peak - small_peak:,} B higher "
        f"and the run keeps {retained:,} B; {took:.1f} s for both runs"
    )
    assert small_peak <= N * (PER_ELEMENT + SMALL), f"{small_peak / N:,.0f} B per element"
    assert retained >= values, "the values were measured: the run holds them"
    assert big_peak <= small_peak + 1.05 * values + 2_000_000, "the values were copied"


def test_a_map_past_the_limit_is_a_clear_error_before_any_element_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(elements, "MAX_MAP_ELEMENTS", 100)
    calls: list[int] = []

    def work(i: int) -> int:
        calls.append(i)
        return i

    flow = Flow.from_source("xs = [work(i) for i in range(n)]\nafter = len(xs)\nother = 1\n", namespace={"work": work})
    run = flow.run(n=100)
    assert run["after"] == 100 and len(calls) == 100
    calls.clear()
    run = flow.run(n=101)
    assert run.status == "failed" and run["other"] == 1 and run.steps["after"].status == "skipped"
    error = run.steps["xs"].error
    assert isinstance(error, ValueError)
    assert "'xs' would expand to" in str(error) and "the limit is 100" in str(error)
    assert calls == [] and not [n for n in run.steps if n.startswith("xs[")]  # no element was started


class Endless:
    """An iterable without end that refuses to be pulled far past a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pulled = 0

    def __iter__(self) -> Any:
        while True:
            self.pulled += 1
            if self.pulled > self.limit + 1_000:
                raise RuntimeError(f"pulled {self.pulled:,} elements from an endless iterable")
            yield self.pulled


def test_an_endless_map_is_the_limit_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    # Needs the executor and compile patches in the report: today the map's loops are run to their
    # end before the limit is checked, so an endless iterable would never finish (here it gives up).
    monkeypatch.setattr(elements, "MAX_MAP_ELEMENTS", 100)
    endless = Endless(100)
    run = Flow.from_source("xs = [x for x in endless]\n", namespace={"endless": endless}).run()
    error = run.steps["xs"].error
    assert isinstance(error, ValueError) and "the limit is 100" in str(error), error
    assert endless.pulled == 101  # one past the limit, and no further


@pytest.mark.parametrize("stop", ["timeout", "cancel"])
def test_an_iterable_that_never_yields_is_stopped_with_the_run_and_no_thread_reads_on(stop: str) -> None:
    import itertools
    import threading

    from flowmagic.engine.workers import shared_pool

    pulled = itertools.count()  # counts the elements the map's filter looked at
    flow = Flow.from_source(
        "ys = [x for x in source if x < 0]\n",
        namespace={"source": pulled},
        timeout=0.5 if stop == "timeout" else None,
        cache=False,
    )
    execution = flow.execution()
    if stop == "cancel":
        threading.Timer(0.5, execution.cancel, args=("cancelled by the test",)).start()
    run = run_blocking(execution)
    assert run.status == "cancelled" and run.steps["ys"].status == "cancelled", run.summary()
    # the thread that read the iterable was made to stop: it no longer pulls, and it is back in the pool
    deadline = time.monotonic() + 5
    while shared_pool().at_work(t.name for t in threading.enumerate() if t.name.startswith("flowmagic-worker")):
        assert time.monotonic() < deadline, "the thread reading the endless iterable is still at work"
        time.sleep(0.05)
    seen = next(pulled)
    time.sleep(0.2)
    assert next(pulled) == seen + 1, "something still reads the iterable"
