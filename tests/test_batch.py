"""Batches: ``flow.batch(rows, executor=...)`` and ``flow.imap`` on threads and on a real Dask cluster.

The cluster is a ``LocalCluster`` of two worker processes. Functions of this module
travel to the workers by value (the workers cannot import a test module).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from flowmagic import Flow
from flowmagic.backends.dask import close_all, connect
from flowmagic.engine.batch import Batch
from flowmagic.engine.remote import NotSendableError

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    remote = connect("dask")
    remote.client.wait_for_workers(2)
    yield remote.client
    close_all()


def square(x: int) -> int:
    if x % 1000 == 7:
        raise ValueError(f"row {x} is unlucky")
    return x * x


SQUARES = "y = square(x)\nz = y + offset\n"


def square_flow() -> Flow:
    return Flow.from_source(SQUARES, name="squares", namespace={"square": square, "offset": 1})


# -- on threads ---------------------------------------------------------------------
def test_a_threads_batch_returns_every_row_in_order_and_reports_failed_rows() -> None:
    batch = square_flow().batch([{"x": i} for i in range(300)], executor="threads", progress=False)
    assert isinstance(batch, Batch)
    assert [r.index for r in batch] == list(range(300))
    assert batch.errors == {7: "y: ValueError: row 7 is unlucky"}
    assert batch.values[7] is None
    assert [v["z"] for v in batch.values if v is not None] == [i * i + 1 for i in range(300) if i != 7]
    assert batch.status == "failed" and batch.done == batch.total == 300


def test_inputs_given_to_map_apply_to_every_row() -> None:
    batch = square_flow().batch([{"x": 2}, {"x": 3}], executor="threads", offset=100, progress=False)
    assert [r.values for r in batch] == [{"z": 104}, {"z": 109}]


def test_rows_stream_back_in_order_while_later_rows_still_run() -> None:
    # row 0 is quick; the last row blocks until the test has received row 0
    received = threading.Event()

    def step(x: int) -> int:
        if x == 9:
            assert received.wait(10), "row 0 was not streamed back while row 9 ran"
        return x

    flow = Flow.from_source("y = step(x)", name="stream", namespace={"step": step})
    rows = flow.imap([{"x": i} for i in range(10)], executor="threads", in_flight=10)
    first = next(rows)
    assert first.index == 0 and first.ok
    received.set()
    assert [r.index for r in rows] == list(range(1, 10))


def test_a_threads_batch_keeps_at_most_in_flight_rows_running() -> None:
    lock = threading.Lock()
    running = peak = 0

    def step(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return x

    flow = Flow.from_source("y = step(x)", name="bounded", namespace={"step": step})
    batch = flow.batch([{"x": i} for i in range(40)], executor="threads", in_flight=3, progress=False)
    assert batch.status == "succeeded"
    assert peak == 3


def test_closing_the_stream_early_cancels_the_rows_not_yet_run() -> None:
    started: list[int] = []

    def step(x: int) -> int:
        started.append(x)
        time.sleep(0.02)
        return x

    flow = Flow.from_source("y = step(x)", name="early", namespace={"step": step})
    rows = flow.imap([{"x": i} for i in range(200)], executor="threads", in_flight=2)
    assert next(rows).index == 0
    rows.close()
    time.sleep(0.2)
    assert len(started) < 20, f"{len(started)} rows started after the stream was closed"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"x": 1}, {"offest": 2}], "row 1: 'offest' is not an input of flow 'squares'. Did you mean 'offset'?"),
        ([{"x": 1}, 5], "row 1 is a int; each row is a dict of the flow's inputs"),
    ],
)
def test_bad_rows_are_refused_before_anything_runs(rows: list[Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        square_flow().batch(rows, executor="threads", progress=False)
    assert message in str(caught.value)


def test_an_unknown_executor_is_refused() -> None:
    with pytest.raises(ValueError, match="the executor is 'threads', 'dask' or 'dask://HOST:PORT'"):
        square_flow().batch([{"x": 1}], executor="spark", progress=False)


# -- on a Dask cluster -----------------------------------------------------------------
def where(x: int) -> tuple[int, int]:
    return x, os.getpid()


def test_a_10000_row_batch_runs_on_the_worker_processes_in_order(cluster: Any) -> None:
    flow = Flow.from_source("y = square(x)\nz = where(y)\n", name="big", namespace={"square": square, "where": where})
    batch = flow.batch([{"x": i} for i in range(10_000)], executor="dask", progress=False)
    assert [r.index for r in batch] == list(range(10_000))
    assert batch.errors == {i: f"y: ValueError: row {i} is unlucky" for i in range(7, 10_000, 1000)}
    values = [r.values["z"] for r in batch if r.ok]
    assert [y for y, _ in values] == [i * i for i in range(10_000) if i % 1000 != 7]
    pids = {pid for _, pid in values}
    workers = set(cluster.run(os.getpid).values())
    assert pids == workers and os.getpid() not in pids  # both worker processes, never this one


def test_a_value_that_cannot_be_pickled_is_refused_before_anything_is_sent(cluster: Any, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    def touch(x: int) -> int:
        marker.touch()
        return x

    namespace = {"touch": touch, "use": id, "lock": threading.Lock()}
    flow = Flow.from_source("y = touch(x)\nz = use(lock)\n", name="locked", namespace=namespace)
    with pytest.raises(NotSendableError, match=r"step 'z' cannot run on the cluster: 'lock' \(a _thread.lock\)"):
        flow.batch([{"x": 1}], executor="dask", progress=False)
    flow = Flow.from_source("y = touch(x)", name="rowlocked", namespace={"touch": touch})
    with pytest.raises(NotSendableError, match=r"row 3: input 'x' \(a lock, read by step 'y'\)"):
        flow.batch([{"x": 1}, {"x": 2}, {"x": 3}, {"x": threading.Lock()}], executor="dask", progress=False)
    assert not marker.exists()


def crash_once(x: int, marker: str) -> int:
    """Kill this worker process the first time row 5 runs; the cluster runs the chunk again elsewhere."""
    if x == 5 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return x * 10


def test_a_worker_killed_mid_batch_loses_no_row(cluster: Any, tmp_path: Path) -> None:
    marker = tmp_path / "crashed"
    flow = Flow.from_source("y = crash_once(x, marker)", name="crash", namespace={"crash_once": crash_once})
    batch = flow.batch([{"x": i} for i in range(40)], executor="dask", chunk=4, marker=str(marker), progress=False)
    assert marker.exists(), "no worker was killed"
    assert batch.status == "succeeded", batch.errors
    assert [r.values["y"] for r in batch] == [i * 10 for i in range(40)]
    cluster.wait_for_workers(2, timeout=30)  # the nanny restarts the worker


def nap(x: int) -> int:
    time.sleep(0.5)
    return x


def test_closing_a_cluster_stream_cancels_its_chunks_on_the_cluster(cluster: Any) -> None:
    flow = Flow.from_source("y = nap(x)", name="napping", namespace={"nap": nap})
    rows = flow.imap([{"x": i} for i in range(40)], executor="dask", chunk=1, in_flight=4)
    assert next(rows).index == 0
    rows.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        keys = cluster.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks])
        if not any(k.startswith("napping-") for k in keys):
            break
        time.sleep(0.1)
    assert not any(k.startswith("napping-") for k in keys), keys
