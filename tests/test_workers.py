"""The worker pool: no cap, idle threads reused, and (with an idle timeout) idle threads exit."""

from __future__ import annotations

import threading
import time

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
