"""The executor: overlap and order from recorded events, exactly-once, limits, failures, cancellation."""

from __future__ import annotations

import _thread
import asyncio
import json
import threading
import time
import warnings
from collections import Counter
from typing import Any

import pytest
from pydantic import BaseModel

from flowmagic import Event, Flow, MapError, Run, StepFailed, StepTimeout
from flowmagic.engine import events as ev
from flowmagic.engine.driver import Execution
from flowmagic.engine.events import ObserverWarning
from flowmagic.engine.runner import FlowInterrupted, RunHandle, loops, run_blocking
from flowmagic.engine.workers import shared_pool
from flowmagic.llm import network


@pytest.fixture(autouse=True)
def fast_offline_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWMAGIC_OFFLINE_LATENCY", "0.01")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "FLOWMAGIC_MODEL"):
        monkeypatch.delenv(var, raising=False)


def make(text: str, **ns: Any) -> Flow:
    settings = {k: ns.pop(k) for k in ("workers", "sequential", "on_error", "timeout", "model", "cache") if k in ns}
    return Flow.from_source(text, name="t", namespace=ns, **settings)


def recorded(flow: Flow, **inputs: Any) -> tuple[Run, list[Event]]:
    events: list[Event] = []
    execution = flow.execution(inputs, observers=[events.append])
    return run_blocking(execution), events


def sleeper(seconds: float) -> Any:
    def step(*_: Any) -> float:
        time.sleep(seconds)
        return seconds

    return step


def max_overlap(run: Run, names: list[str]) -> int:
    points = []
    for n in names:
        r = run.steps[n]
        assert r.started is not None and r.finished is not None
        points += [(r.started, 1), (r.finished, -1)]
    level = best = 0
    for _, delta in sorted(points, key=lambda p: (p[0], p[1])):
        level += delta
        best = max(best, level)
    return best


def flowmagic_threads() -> list[str]:
    """flowmagic's threads at work: the process's network loop, the shared pool's idle workers
    and the idle run loops outlive every run, by design, and are left out."""
    idle = set(loops.idle())
    return shared_pool().at_work(
        t.name
        for t in threading.enumerate()
        if t.name.startswith("flowmagic") and not t.name.startswith(network.THREAD_NAME) and t.name not in idle
    )


def wait_for_no_flowmagic_threads(timeout: float = 5.0) -> None:
    """Threads abandoned by earlier tests end when their user code returns; wait for that."""
    deadline = time.monotonic() + timeout
    while flowmagic_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert flowmagic_threads() == []


# -- concurrency and order -------------------------------------------------------


def test_four_sleeping_branches_overlap_and_sequential_does_not() -> None:
    text = "parallel:\n" + "".join(f"    s{i} = nap()\n" for i in range(4))
    run = make(text, nap=sleeper(0.3)).run()
    names = [f"s{i}" for i in range(4)]
    assert max(run.steps[n].started or 0 for n in names) < min(run.steps[n].finished or 0 for n in names)
    seq = make(text, nap=sleeper(0.3), sequential=True, cache=False).run()
    assert max_overlap(seq, names) == 1
    assert [n for n in sorted(names, key=lambda n: seq.steps[n].started or 0)] == names


def test_sequential_runs_a_diamond_one_step_at_a_time_in_order() -> None:
    text = "a = nap()\nparallel:\n    b = nap(a)\n    c = nap(a)\nd = nap(b, c)\n"
    run, events = recorded(make(text, nap=sleeper(0.02), sequential=True))
    assert run.status == "succeeded"
    starts = [e.step for e in events if e.kind == ev.STARTED]
    assert starts == ["a", "b", "c", "d"]
    assert max_overlap(run, ["a", "b", "c", "d"]) == 1


def test_default_workers_do_not_serialize_a_16_way_fan_out() -> None:
    text = "".join(f"s{i} = nap()\n" for i in range(16))
    run = make(text, nap=sleeper(0.2)).run()
    assert max_overlap(run, [f"s{i}" for i in range(16)]) == 16


def test_a_step_starts_when_its_own_dependencies_are_done_not_in_rounds() -> None:
    run = make(
        """
parallel:
    slow = nap(0.8)
    branch quick:
        fast = nap(0.1)
        after_fast = nap(0.1, fast)
needs_fast = nap(0.1, fast)
""",
        nap=lambda s, *_: time.sleep(s) or s,
    ).run()
    slow_end = run.steps["slow"].finished or 0
    assert (run.steps["after_fast"].started or 0) < slow_end
    assert (run.steps["needs_fast"].started or 0) < slow_end
    assert (run.steps["needs_fast"].started or 0) >= (run.steps["fast"].finished or 0)


def test_events_come_in_order_for_every_step() -> None:
    run, events = recorded(make("a = 1\nparallel:\n    b = a + 1\n    c = a + 2\nd = b + c\n"))
    assert events[0].kind == ev.RUN_STARTED and events[-1].kind == ev.RUN_FINISHED
    for name in "abcd":
        kinds = [e.kind for e in events if e.step == name]
        assert kinds == [ev.QUEUED, ev.STARTED, ev.FINISHED]
    order = [e.step for e in events if e.kind == ev.FINISHED]
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")
    assert run["d"] == 5


def test_steps_run_exactly_once_on_diamonds_with_simultaneous_parents() -> None:
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def mark(name: str, *_: Any) -> str:
        with lock:
            calls[name] += 1
        return name

    parents = "".join(f"    p{i} = mark('p{i}', top)\n" for i in range(30))
    text = f"top = mark('top')\nparallel:\n{parents}bottom = mark('bottom', {', '.join(f'p{i}' for i in range(30))})\n"
    flow = make(text, mark=mark)
    for _ in range(30):
        run = flow.run()
        assert run.status == "succeeded"
    assert set(calls.values()) == {30}
    assert len(calls) == 32


def test_global_worker_limit_is_respected_and_reached() -> None:
    text = "".join(f"s{i} = nap()\n" for i in range(9))
    run = make(text, nap=sleeper(0.1), workers=3).run()
    assert max_overlap(run, [f"s{i}" for i in range(9)]) == 3


def test_group_worker_limit_bounds_only_its_members() -> None:
    text = "parallel (workers=2):\n" + "".join(f"    g{i} = nap()\n" for i in range(6)) + "out = nap()\n"
    run = make(text, nap=sleeper(0.15)).run()
    members = [f"g{i}" for i in range(6)]
    assert max_overlap(run, members) == 2
    assert max_overlap(run, [*members, "out"]) == 3


def test_async_steps_run_on_the_loop_and_overlap_with_thread_steps() -> None:
    loops: list[Any] = []

    async def anap(seconds: float) -> str:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(seconds)
        return "async"

    text = "parallel:\n    a = anap(0.3)\n    b = anap(0.3)\n    c = nap()\n"
    run = make(text, anap=anap, nap=sleeper(0.3)).run()
    assert max_overlap(run, ["a", "b", "c"]) == 3
    assert run["a"] == "async" and loops[0] is loops[1]
    assert run.steps["a"].status == "succeeded"


def test_awaitables_returned_by_sync_code_are_awaited() -> None:
    async def later(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    run = make("a = make_coro(later, 21)\n", later=later, make_coro=lambda f, x: f(x)).run()
    assert run["a"] == 42


def test_arun_runs_on_the_callers_loop() -> None:
    seen: list[Any] = []

    async def probe() -> int:
        seen.append(asyncio.get_running_loop())
        return 1

    async def main() -> tuple[Run, Any]:
        run = await make("a = probe()\nb = a + 1\n", probe=probe).arun()
        return run, asyncio.get_running_loop()

    run, loop = asyncio.run(main())
    assert run["b"] == 2 and seen == [loop]


def test_map_expands_at_run_time_keeps_input_order_and_overlaps() -> None:
    run = make(
        "n = 4\nxs = list(range(n))\nys = [nap(0.3 - 0.05 * x, x) for x in xs]\n",
        nap=lambda s, x: time.sleep(s) or x * 10,
    ).run()
    assert run["ys"] == [0, 10, 20, 30]
    elements = [f"ys[{i}]" for i in range(4)]
    assert max_overlap(run, elements) == 4
    assert all(run.steps[e].map == "ys" for e in elements)


def test_map_element_failures_keep_the_other_results() -> None:
    def check(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    run = make("ys = [check(x) for x in range(4)]\nz = ys\n", check=check).run()
    assert run.steps["ys"].status == "failed" and run.steps["z"].status == "skipped"
    error = run.steps["ys"].error
    assert isinstance(error, MapError)
    assert error.results[:2] == [0, 1] and error.results[3] == 3
    assert isinstance(error.failures[2], ValueError)
    assert run.steps["ys[2]"].status == "failed" and run.steps["ys[3]"].status == "succeeded"


def napper(kind: str) -> Any:
    """``nap(seconds, x)``: sleeps, then returns ``x``; an ``async def`` for ``kind="async"``."""

    async def anap(seconds: float, x: int) -> int:
        await asyncio.sleep(seconds)
        return x

    def nap(seconds: float, x: int) -> int:
        time.sleep(seconds)
        return x

    return anap if kind == "async" else nap


def element_events(events: list[Event], kind: str) -> list[int]:
    """The indices of the map elements that had a ``kind`` event, in the order they had it."""
    return [e.detail["index"] for e in events if e.kind == kind and e.detail and "map" in e.detail]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_map_elements_start_in_order_within_the_groups_limit(kind: str) -> None:
    nap = napper(kind)
    flow = make("parallel (workers=3):\n    ys = [nap(0.05, x) for x in range(12)]\n", nap=nap)
    run, events = recorded(flow)
    assert run["ys"] == list(range(12))
    assert element_events(events, ev.QUEUED) == list(range(12))  # all of them, before any started
    assert element_events(events, ev.STARTED) == list(range(12))
    assert max_overlap(run, [f"ys[{i}]" for i in range(12)]) == 3


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_step_waiting_for_a_maps_slot_gets_the_next_one_not_the_maps_end(kind: str) -> None:
    nap = napper(kind)
    text = "a = nap(0.12, 0)\nparallel (workers=2):\n    ys = [nap(0.05, x) for x in range(20)]\n    z = nap(0.01, a)\n"
    run, events = recorded(make(text, nap=nap))
    assert run.status == "succeeded" and run["ys"] == list(range(20))
    order = [(e.kind, e.step) for e in events if e.kind in (ev.STARTED, ev.FINISHED)]
    ready, began = order.index((ev.FINISHED, "a")), order.index((ev.STARTED, "z"))
    # z waits for one element of the map's, at most two, not for the rest of the map
    elements_between = [s for k, s in order[ready:began] if k == ev.STARTED and s and s.startswith("ys[")]
    assert len(elements_between) <= 2, elements_between
    later = [s for k, s in order[order.index((ev.FINISHED, "z")) :] if k == ev.STARTED and s and s.startswith("ys[")]
    assert len(later) >= 5, later  # z finished while most of the map was still to come
    assert max_overlap(run, ["z", *(f"ys[{i}]" for i in range(20))]) == 2


def test_map_failures_report_the_first_element_in_order_not_the_first_to_fail() -> None:
    def check(x: int) -> int:
        time.sleep(0.2 if x == 1 else 0.0)
        if x in (1, 3):
            raise ValueError(f"bad {x}")
        return x

    run = make("ys = [check(x) for x in range(5)]\n", check=check, workers=4).run()
    error = run.steps["ys"].error
    assert isinstance(error, MapError) and list(error.failures) == [1, 3]
    assert "first: ys[1]: ValueError: bad 1" in str(error)
    assert run.steps["ys[3]"].finished < run.steps["ys[1]"].finished  # type: ignore[operator]


def test_sync_callees_that_return_coroutines_are_awaited_within_the_limit() -> None:
    level, most = [0], [0]

    async def later(x: int) -> int:
        level[0] += 1
        most[0] = max(most[0], level[0])
        await asyncio.sleep(0.03)
        level[0] -= 1
        return x * 2

    run = make(
        "ys = [make_coro(later, x) for x in range(8)]\n", later=later, make_coro=lambda f, x: f(x), workers=2
    ).run()
    assert run["ys"] == [x * 2 for x in range(8)]
    assert most[0] == 2


def test_a_map_whose_elements_call_different_functions_runs_each_where_it_belongs() -> None:
    async def twice(x: int) -> tuple[int, str]:
        await asyncio.sleep(0.01)
        return x * 2, threading.current_thread().name

    def thrice(x: int) -> tuple[int, str]:
        time.sleep(0.01)
        return x * 3, threading.current_thread().name

    pairs = [(twice if x % 2 else thrice, x) for x in range(6)]
    run = make("ys = [f(x) for f, x in pairs]\n", pairs=pairs).run()
    assert [v for v, _ in run["ys"]] == [0, 2, 6, 6, 12, 10]
    threads = [t for _, t in run["ys"]]
    assert all(t.startswith("flowmagic-worker") for t in threads[0::2])  # sync: on a worker
    assert not any(t.startswith("flowmagic-worker") for t in threads[1::2])  # async: on the run's loop


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_map_cancelled_midway_cancels_every_element_without_an_outcome(kind: str) -> None:
    nap = napper(kind)
    flow = make("ys = [nap(0.1, x) for x in range(30)]\nz = ys\n", nap=nap, workers=3, timeout=0.25)
    run, events = recorded(flow)
    assert run.status == "cancelled"
    statuses = Counter(run.steps[f"ys[{i}]"].status for i in range(30))
    assert statuses["succeeded"] == 6 and statuses["cancelled"] == 24, statuses
    assert run.steps["ys"].status == run.steps["z"].status == "cancelled"
    # nothing started after the cancel, and each element had exactly one outcome
    cancelled_at = min(e.time for e in events if e.kind == ev.CANCELLED)
    assert all(e.time <= cancelled_at for e in events if e.kind == ev.STARTED)
    outcomes = Counter(e.step for e in events if e.kind in (ev.FINISHED, ev.FAILED, ev.CANCELLED))
    assert set(outcomes.values()) == {1}
    wait_for_no_flowmagic_threads()


# -- failures, retries, timeouts ------------------------------------------------


def test_a_failure_skips_its_descendants_and_keeps_everything_else() -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    run = make("a = boom()\nb = a\nc = b\nd = nap()\ne = d\n", boom=boom, nap=sleeper(0.2)).run()
    assert run.status == "failed"
    assert {n: r.status for n, r in run.steps.items()} == {
        "a": "failed",
        "b": "skipped",
        "c": "skipped",
        "d": "succeeded",
        "e": "succeeded",
    }
    assert run["e"] == 0.2
    with pytest.raises(RuntimeError, match="boom"):
        run["a"]
    with pytest.raises(StepFailed, match="'a' failed"):
        run["c"]


def test_on_error_stop_cancels_the_rest() -> None:
    def boom() -> None:
        time.sleep(0.05)
        raise RuntimeError("boom")

    async def slow() -> str:
        await asyncio.sleep(5)
        return "never"

    run = make("parallel:\n    a = boom()\n    b = slow()\nc = b\n", boom=boom, slow=slow, on_error="stop").run()
    assert run.status == "failed"
    assert [run.steps[n].status for n in "abc"] == ["failed", "cancelled", "cancelled"]
    assert (run.wall_time or 99) < 2


def test_retries_until_success_then_attempts_are_recorded() -> None:
    attempts = []

    def flaky() -> str:
        attempts.append(time.time())
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    run, events = recorded(make("@retries(3, backoff=0)\na = flaky()\n", flaky=flaky))
    assert run["a"] == "ok" and run.steps["a"].attempts == 3
    assert [e.attempt for e in events if e.kind == ev.RETRIED] == [1, 2]


def test_retries_stop_at_their_limit() -> None:
    calls = []

    def bad() -> None:
        calls.append(1)
        raise ValueError("always")

    run = make("@retries(2, backoff=0)\na = bad()\n", bad=bad).run()
    assert run.steps["a"].status == "failed" and run.steps["a"].attempts == 3 and len(calls) == 3


def test_timeout_ends_an_async_step_and_abandons_a_thread_step() -> None:
    async def hang() -> None:
        await asyncio.sleep(10)

    run = make("@timeout(0.2)\nparallel:\n    a = hang()\n    b = nap()\n", hang=hang, nap=sleeper(1.0)).run()
    for name in "ab":
        assert run.steps[name].status == "failed"
        assert isinstance(run.steps[name].error, StepTimeout)
    assert "thread" in str(run.steps["b"].error)
    assert (run.steps["a"].duration or 99) < 1.0


def test_run_timeout_cancels_what_is_left() -> None:
    async def hang() -> None:
        await asyncio.sleep(10)

    run = make("a = 1\nb = hang()\n", hang=hang, timeout=0.3).run()
    assert run.status == "cancelled" and "timed out" in (run.reason or "")
    assert run["a"] == 1 and run.steps["b"].status == "cancelled"


def test_failures_do_not_leak_out_of_observers() -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("display broke")

    flow = make("a = 1\n")
    with pytest.warns(ObserverWarning):
        run = run_blocking(flow.execution({}, observers=[broken]))
    assert run.status == "succeeded"


def test_a_chain_of_sync_steps_goes_on_while_the_loop_is_busy() -> None:
    # a ready successor runs on the thread that finished its parent: no round trip through the
    # event loop, so the chain does not wait while an (ill-behaved) async step blocks the loop
    async def hog() -> None:
        time.sleep(0.4)

    seen: list[int] = []

    def mark(*_: Any) -> None:
        seen.append(threading.get_ident())

    text = "a = mark()\nb = mark(a)\nc = mark(b)\nd = mark(c)\nh = hog()\n"
    run = make(text, mark=mark, hog=hog).run()
    assert run.status == "succeeded"
    finished = {n: run.steps[n].finished or 0 for n in "abcdh"}
    assert finished["d"] < finished["h"] - 0.2, finished
    assert len(set(seen)) == 1  # one thread ran the whole chain (here, the caller's own)


def test_the_calling_thread_runs_a_sync_step_itself_unless_an_event_loop_runs_in_it() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="caller's")

    def where() -> tuple[int, str]:
        var.set("the step's")
        return threading.get_ident(), asyncio.run(asyncio.sleep(0, "asyncio.run works"))

    flow = make("w = where()\n", where=where, cache=False)
    ident, said = flow.run()["w"]
    assert ident == threading.get_ident() and said == "asyncio.run works"
    assert var.get() == "caller's"  # the step ran in a context of its own

    async def in_a_cell() -> tuple[int, str]:  # a notebook cell runs inside the kernel's event loop
        return flow.run()["w"]

    ident, said = asyncio.run(in_a_cell())
    assert ident != threading.get_ident() and said == "asyncio.run works"


def test_observers_are_called_in_order_on_the_loop_even_for_steps_on_threads() -> None:
    calls: list[tuple[Event, int]] = []
    flow = make("parallel:\n" + "".join(f"    s{i} = nap()\n" for i in range(6)) + "t = nap(s0, s5)\n", nap=sleeper(0))
    execution = flow.execution({}, observers=[lambda e: calls.append((e, threading.get_ident()))])
    run_blocking(execution)
    assert len({ident for _, ident in calls}) == 1  # the loop's thread, whichever thread ran the step
    kinds = [e.kind for e, _ in calls]
    assert kinds[0] == ev.RUN_STARTED and kinds[-1] == ev.RUN_FINISHED
    for name in execution.run.steps:
        mine = [e.kind for e, _ in calls if e.step == name]
        assert mine == [ev.QUEUED, ev.STARTED, ev.FINISHED], (name, mine)
    times = [e.time for e, _ in calls]
    assert times == sorted(times)


def test_a_group_limit_holds_when_steps_follow_each_other_on_one_thread() -> None:
    active: list[int] = []
    level = [0]
    lock = threading.Lock()

    def work(*_: Any) -> None:
        with lock:
            level[0] += 1
            active.append(level[0])
        time.sleep(0.01)
        with lock:
            level[0] -= 1

    text = "parallel (workers=2):\n" + "".join(f"    g{i} = work()\n" for i in range(8))
    text += "".join(f"h{i} = work(g{i})\n" for i in range(8))  # each made ready by a group member
    run = make(text, work=work, workers=3).run()
    assert run.status == "succeeded"
    group_overlap = max_overlap(run, [f"g{i}" for i in range(8)])
    assert group_overlap == 2 and max(active) <= 3


def test_cancels_that_land_at_any_moment_never_leave_a_step_unsettled() -> None:
    async def q(*_: Any) -> int:
        return 1

    def s(*_: Any) -> int:
        return 1

    # a chain of async and sync steps: cancels land between steps, before tasks begin, on threads
    text = "s0 = q()\n" + "".join(f"s{i} = {'q' if i % 3 else 's'}(s{i - 1})\n" for i in range(1, 60))
    for attempt in range(40):
        flow = make(text, q=q, s=s)
        handle = flow.start()
        time.sleep(attempt * 0.0001)
        handle.cancel()
        run = handle.wait(3)
        assert run.status in ("cancelled", "succeeded"), (attempt, run.status)
        assert all(r.status in ("succeeded", "cancelled") for r in run.steps.values())
        done = [n for n, r in run.steps.items() if r.status == "succeeded"]
        assert done == [f"s{i}" for i in range(len(done))]  # a prefix of the chain, values kept
        assert all(run[n] == 1 for n in done)


def test_on_error_stop_settles_every_step_when_the_failure_is_on_a_thread() -> None:
    def boom(*_: Any) -> None:
        raise ValueError("boom")

    text = "a = 1\nb = boom()\nc = a + 1\nd = nap(b)\nparallel:\n    e = nap()\n    f = anap(5)\n"
    run = make(text, boom=boom, nap=sleeper(0.05), anap=asyncio.sleep, on_error="stop").run()
    assert run.status == "failed"
    assert run.steps["b"].status == "failed" and run.steps["d"].status in ("skipped", "cancelled")
    assert run.steps["f"].status == "cancelled"
    assert all(r.status != "pending" and r.status != "running" for r in run.steps.values())


# -- cancellation and leaks ----------------------------------------------------------


def test_cancel_from_another_thread_keeps_finished_steps() -> None:
    flow = make("a = 1\nb = nap()\nc = b\n", nap=sleeper(0.6))
    handle = flow.start()
    assert isinstance(handle, RunHandle)
    time.sleep(0.2)
    assert flow.last is not None and flow.last.status == "running"
    flow.cancel()
    run = handle.wait(2)
    assert run.status == "cancelled"
    assert run["a"] == 1
    assert run.steps["b"].status == "cancelled" and run.steps["c"].status == "cancelled"


def test_keyboard_interrupt_cancels_within_two_seconds_and_keeps_results() -> None:
    flow = make("a = 1\nparallel:\n    b = nap()\n    c = anap(5)\nd = b\n", nap=sleeper(0.8), anap=asyncio.sleep)
    wait_for_no_flowmagic_threads()
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    start = time.monotonic()
    with pytest.raises(FlowInterrupted) as info:
        flow.run()
    assert time.monotonic() - start < 2
    run = info.value.run
    assert run is flow.last and run.status == "cancelled"
    assert run["a"] == 1
    assert [run.steps[n].status for n in "bcd"] == ["cancelled", "cancelled", "cancelled"]
    timer.join()
    deadline = time.monotonic() + 3
    while flowmagic_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flowmagic_threads() == [], threading.enumerate()


def test_no_threads_or_loops_are_left_after_runs_and_later_runs_reuse_the_workers() -> None:
    flow = make("parallel:\n    a = nap()\n    b = nap()\n    c = llm('hi')\n", nap=sleeper(0.05))
    assert flow.run().status == "succeeded"
    wait_for_no_flowmagic_threads()
    before = {t.ident for t in threading.enumerate()}
    for _ in range(4):
        assert flow.run().status == "succeeded"
    wait_for_no_flowmagic_threads()
    assert {t.ident for t in threading.enumerate()} == before  # the same idle workers ran a and b


def test_an_idle_loop_closes_after_its_idle_time_and_a_lent_one_never_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowmagic.engine import runner

    monkeypatch.setattr(runner, "IDLE_SECONDS", 0.2)
    pool = runner.Loops()
    first = pool.take()
    pool.give(first, healthy=True)  # sets its one timer
    busy = pool.take()
    assert busy is first and pool.idle() == []
    time.sleep(0.5)  # past its idle time, but lent: it stays open
    assert not busy.loop.is_closed() and busy.loop.is_running()
    pool.give(busy, healthy=True)
    assert pool.idle() == [busy.name]
    deadline = time.monotonic() + 5
    while busy.loop.is_running() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.idle() == [] and not busy.loop.is_running()
    busy.stop()


# -- llm steps and the record ------------------------------------------------------------


def test_llm_steps_render_placeholders_per_map_element() -> None:
    run = make(
        'critics = [llm("Your opinion on {song}", system="You are critic #{i}") for i in range(3)]\n'
        'length = len(llm("Say {song}"))\n'
    ).run(song="Moon River")
    assert len(run["critics"]) == 3 and len(set(run["critics"])) == 3
    record = run.steps["critics[1]"].llm
    assert record is not None
    assert record["prompt"] == "Your opinion on Moon River" and record["system"] == "You are critic #1"
    assert record["offline"] is True
    assert isinstance(run["length"], int) and run["length"] > 0


def test_a_prompt_built_in_python_is_sent_as_it_is() -> None:
    run = make('a = llm(PROMPT, system=SYSTEM)\nb = llm(f"Say {x}")\n', PROMPT="Keep {braces}", SYSTEM="{too}").run(x=1)
    assert run.steps["a"].llm["prompt"] == "Keep {braces}" and run.steps["a"].llm["system"] == "{too}"
    assert run.steps["b"].llm["prompt"] == "Say 1"


def test_llm_schema_returns_a_model_instance() -> None:
    class Movie(BaseModel):
        title: str
        year: int

    run = make('m = llm("A movie about {topic}", schema=Movie)\n', Movie=Movie).run(topic="cats")
    assert isinstance(run["m"], Movie)


def test_run_record_to_json_critical_path_and_speedup() -> None:
    run = make(
        "a = nap()\nparallel:\n    b = nap(a)\n    c = nap(a)\nd = nap(b, c)\ne = [nap(d) for _ in range(3)]\n",
        nap=sleeper(0.1),
    ).run()
    assert run.critical_path[0] == "a" and run.critical_path[-2:] == ["d", "e"]
    assert run.critical_path[1] in ("b", "c")
    assert run.speedup is not None and run.speedup > 1.5
    data = json.loads(run.to_json())
    assert data["status"] == "succeeded" and data["steps"]["e[2]"]["map"] == "e"
    assert data["outputs"]["e"] == [0.1, 0.1, 0.1]
    assert set(data["steps"]["a"]) >= {"status", "started", "finished", "duration", "attempts", "cached", "branch"}


def test_inputs_resolve_from_run_then_namespace_then_builtins() -> None:
    flow = Flow.from_source("a = x + y\nb = len([a])\n", namespace={"x": 1, "y": 2})
    assert flow.run(x=10)["a"] == 12
    assert flow.run()["b"] == 1


def test_warnings_of_the_package_are_errors_in_tests() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make("a = 1\n").run()["a"] == 1


def test_without_threads_every_step_runs_on_the_loops_own_thread_one_call_at_a_time() -> None:
    """The driver a browser kernel needs (no thread can start there): same decisions, no worker threads."""
    seen: list[int] = []

    def where(*_: Any) -> int:
        seen.append(threading.get_ident())
        return len(seen)

    async def awhere(*_: Any) -> int:
        await asyncio.sleep(0)
        return where()

    flow = make(
        "a = where()\nparallel:\n    b = awhere(a)\n    c = [where(x) for x in range(5)]\n"
        "    d = llm('Say {a}')\ne = where(b, c, d)\n",
        where=where,
        awhere=awhere,
    )
    execution = Execution(flow.name, flow.compiled, flow.resolve_inputs({}), flow.settings, threads=False)
    before = threading.active_count()
    run = asyncio.run(execution.execute())
    assert run.status == "succeeded", run.summary()
    assert set(seen) == {threading.get_ident()} and len(seen) == 8
    assert threading.active_count() == before  # no worker thread was started for it


def test_a_retry_never_waits_longer_than_the_cap_whatever_the_backoff_or_the_server_asks() -> None:
    from flowmagic.engine.attempts import MAX_RETRY_DELAY, retry_delay

    class Busy(Exception):
        retry_after = 10_000.0  # a server asking for hours

    assert retry_delay(ValueError(), backoff=1e6, attempt=3) == MAX_RETRY_DELAY
    assert retry_delay(ValueError(), backoff=0.5, attempt=5000) == MAX_RETRY_DELAY  # no overflow
    assert retry_delay(Busy(), backoff=0.01, attempt=1) == MAX_RETRY_DELAY
    assert 0.25 <= retry_delay(ValueError(), backoff=0.5, attempt=1) <= 0.75  # the ordinary case is unchanged


def test_a_chain_that_alternates_sync_async_and_plain_steps_runs_each_where_it_belongs() -> None:
    """Each step follows the one before it in the same hold of the lock, and still runs in its own place."""
    where: dict[str, str] = {}

    def sync(name: str, x: int) -> int:
        where[name] = threading.current_thread().name
        return x + 1

    async def asyn(name: str, x: int) -> int:
        await asyncio.sleep(0)
        where[name] = threading.current_thread().name
        return x + 10

    text = "a = sync('a', 0)\nb = asyn('b', a)\nc = b * 2\nd = sync('d', c)\ne = asyn('e', d)\nf = sync('f', e)\n"
    run = make(text, sync=sync, asyn=asyn).run()
    assert run.status == "succeeded" and run["f"] == ((1 + 10) * 2 + 1 + 10) + 1
    assert where["a"] == threading.current_thread().name, where  # the first, on the thread that waits
    assert all(where[n].startswith("flowmagic-worker") for n in "df"), where
    assert all(where[n].startswith("flowmagic-loop") for n in "be"), where


def test_a_finished_run_is_freed_by_its_last_reference_not_by_the_collector() -> None:
    """A run leaves no reference cycle behind: its book goes when the last reference to it does
    (an evaluation of thousands of runs would otherwise leave them all to the collector)."""
    import gc
    import weakref

    flow = make("y = inc(x)\nz = inc(y)\nprinted = say(z)", inc=lambda v: v + 1, say=print)
    run_blocking(Execution(flow.name, flow.compiled, flow.resolve_inputs({"x": 1}), flow.settings))  # warm
    gc.collect()
    gc.disable()
    try:
        execution = Execution(flow.name, flow.compiled, flow.resolve_inputs({"x": 1}), flow.settings)
        run = run_blocking(execution)
        gone = weakref.ref(execution)
        del execution
        assert gone() is None  # freed here, with the collector off
    finally:
        gc.enable()
    assert run.status == "succeeded" and run["z"] == 3 and run.steps["printed"].stdout == "3\n"
