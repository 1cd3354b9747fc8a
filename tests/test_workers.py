"""The worker pool: abandoned work never holds up other work, idle threads are reused and (with an
idle timeout) exit, and past its cap work waits for a thread, counted and reported by the run."""

from __future__ import annotations

import threading
import time

from flowmagic import Flow
from flowmagic.engine import workers
from flowmagic.engine.driver import Execution
from flowmagic.engine.runner import run_blocking
from flowmagic.engine.workers import WorkerPool, shared_pool


def names(pool_name: str) -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(f"flowmagic-{pool_name}-")}


def wait_until(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)
    return bool(check())  # type: ignore[operator]


def test_blocked_work_never_holds_up_other_work() -> None:
    pool = WorkerPool("nocap")
    gate = threading.Event()
    blocked = [pool.submit(gate.wait, 5) for _ in range(20)]
    assert pool.submit(lambda: "through").result(timeout=5) == "through"  # a 21st thread, not a queue
    gate.set()
    assert all(f.result(timeout=5) for f in blocked)
    pool.shutdown()
    pool.join()
    assert names("nocap") == set()


def test_idle_threads_take_the_next_work_and_exit_after_the_idle_timeout() -> None:
    pool = WorkerPool("idle", idle_timeout=0.3)
    gate = threading.Event()
    first = [pool.submit(gate.wait, 5) for _ in range(3)]
    gate.set()
    assert all(f.result(timeout=5) for f in first)
    assert wait_until(lambda: pool.idle == 3)
    started = names("idle")
    assert len(started) == 3
    assert [pool.submit(lambda i=i: i * 2).result(timeout=5) for i in range(3)] == [0, 2, 4]
    assert names("idle") == started  # reused, none started
    assert wait_until(lambda: not names("idle"))  # all three idle past the timeout: gone
    assert pool.idle == 0
    assert pool.submit(lambda: "again").result(timeout=5) == "again"  # a new thread, as needed
    pool.shutdown()
    pool.join()


def test_at_work_leaves_out_as_many_of_the_pools_threads_as_are_idle() -> None:
    pool = WorkerPool("busy")
    gate = threading.Event()
    held = pool.submit(gate.wait, 5)
    done = [pool.submit(lambda: None) for _ in range(2)]
    assert all(f.result(timeout=5) is None for f in done)
    assert wait_until(lambda: pool.idle == 2)
    threads = [*names("busy"), "MainThread"]
    assert len(pool.at_work(threads)) == 2 and "MainThread" in pool.at_work(threads)  # one worker still holds
    gate.set()
    assert held.result(timeout=5)
    assert wait_until(lambda: pool.idle == 3)
    assert pool.at_work(threads) == ["MainThread"]
    pool.shutdown()
    pool.join()


def test_work_submitted_as_idle_threads_time_out_still_runs() -> None:
    pool = WorkerPool("edge", idle_timeout=0.02)
    for round_ in range(50):  # submits land on every side of the timeouts
        futures = [pool.submit(lambda r=round_, i=i: (r, i)) for i in range(4)]
        assert [f.result(timeout=5) for f in futures] == [(round_, i) for i in range(4)]
        time.sleep(0.02 * (round_ % 3))
    pool.shutdown()
    pool.join()


def test_runs_share_one_pool() -> None:
    assert shared_pool() is shared_pool()


def test_a_capped_pool_queues_past_its_cap_counts_the_waits_and_frees_as_threads_return() -> None:
    pool = WorkerPool("capped", max_threads=3)
    gate = threading.Event()
    stuck = [pool.submit(gate.wait, 5) for _ in range(3)]  # three abandoned-like steps hold every thread
    later = pool.submit(lambda: "after")
    assert pool.waits == 1 and len(names("capped")) == 3  # no fourth thread: it waits
    assert not later.done()
    gate.set()  # one of the held threads comes back and takes it
    assert later.result(timeout=5) == "after"
    assert all(f.result(timeout=5) for f in stuck)
    assert wait_until(lambda: pool.idle == 3)  # the backlog was taken, not counted as idle
    pool.shutdown()
    pool.join()


def test_a_run_reports_the_threads_it_abandoned_and_waits_at_the_pools_cap() -> None:
    gate = threading.Event()
    pool = WorkerPool("small", max_threads=2)

    def hang() -> None:
        gate.wait(10)

    flow = Flow.from_source("parallel:\n    a = hang()\n    b = hang()\n    c = hang()\n", namespace={"hang": hang})
    settings = flow.settings.changed(timeout=0.3)
    try:
        run = run_blocking(Execution(flow.name, flow.compiled, flow.resolve_inputs({}), settings, pool=pool))
        assert run.status == "cancelled"
        assert run.abandoned_threads == 2 and run.pool_waits == 1, (run.abandoned_threads, run.pool_waits)
        text = run.summary()
        assert "2 threads left to finish" in text and "1 step(s) waited for a worker thread" in text, text
    finally:
        gate.set()
        pool.shutdown()
        pool.join()
    assert workers.MAX_THREADS >= 32  # the shared pool's cap leaves room for a run's workers
