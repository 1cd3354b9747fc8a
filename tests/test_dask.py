"""--executor dask on real clusters: a LocalCluster of worker processes, and a scheduler and two
workers started as separate processes (whose workers these tests kill).

Step functions are defined from source in a namespace named ``__main__``, as in a notebook, so
cloudpickle sends them by value: the workers never import this file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import distributed
import psutil
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from flowmagic import Flow, Run
from flowmagic.backends import dask as backend
from flowmagic.engine.remote import NotSendableError

ALLOWED_FAILURES = 1  # the separate scheduler's distributed.scheduler.allowed-failures

STEPS = '''
import asyncio, os, threading, time

def pid():
    return os.getpid()

def meet(folder, me, other, patience=30):
    """Say that this step started, then sleep until the other one has started too: where and when it ran."""
    start = time.time()
    open(os.path.join(folder, me), "w").close()
    while not os.path.exists(os.path.join(folder, other)):
        if time.time() > start + patience:
            raise TimeoutError(f"'{me}' ran alone: '{other}' did not start while it waited")
        time.sleep(0.02)
    return os.getpid(), start, time.time()

def nap(seconds):
    time.sleep(seconds)
    return os.getpid()

def boom():
    raise ValueError(f"bad input on {os.getpid()}")

def use(value):
    return repr(value)

def touch(path):
    with open(path, "w") as f:
        f.write("ran")
    return path

async def make_lock():
    return threading.Lock()

def nap_until(stop, started, seconds):
    with open(started, "w") as f:
        f.write(str(os.getpid()))
    end = time.time() + seconds
    while time.time() < end and not os.path.exists(stop):
        time.sleep(0.05)
    return os.getpid()

def log(path, name, *after):
    with open(path, "a") as f:
        f.write(f"{name} {os.getpid()} {time.time()}\\n")
    return os.getpid()

def exit_worker():
    if os.getpid() == KERNEL:  # never end the test run itself
        raise RuntimeError("this step was meant to run on a worker, not in the test process")
    os._exit(1)

def die_once(marker, path, *after):
    log(path, "rises")
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        exit_worker()
    return os.getpid()

def die(path, *after):
    log(path, "dies")
    exit_worker()
'''


def cluster_flow(text: str, name: str, executor: str = "dask", **values: Any) -> Flow:
    """A flow of notebook functions that runs on a cluster (the local one by default), uncached."""
    return Flow.from_source(text, name=name, namespace=notebook(**values), executor=executor, cache=False)


def notebook(**values: Any) -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "__main__", "KERNEL": os.getpid()}
    exec(STEPS, ns)
    ns.update(values)
    return ns


def overlap(run: Run, names: list[str]) -> bool:
    return max(run.steps[n].started or 0 for n in names) < min(run.steps[n].finished or 0 for n in names)


def worker_pids(client: Any) -> set[int]:
    return set(client.run(os.getpid).values())


def keys_seen(client: Any, prefix: str) -> set[str]:
    """Every key starting with ``prefix`` that the scheduler has ever transitioned (its transition log)."""

    def seen(dask_scheduler: Any) -> tuple[set[str], bool]:
        log = dask_scheduler.transition_log
        return {str(t.key) for t in log if str(t.key).startswith(prefix)}, len(log) < (log.maxlen or 0)

    keys, complete = client.run_on_scheduler(seen)
    assert complete, "the scheduler's transition log overflowed: it cannot tell what was never sent"
    return keys


def keys_held(client: Any, prefix: str) -> list[str]:
    """The keys starting with ``prefix`` that the scheduler holds now."""
    return client.run_on_scheduler(
        lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks if str(k).startswith(prefix)]
    )


def eventually(check: Callable[[], Any], seconds: float = 5.0) -> Any:
    """``check()``'s first truthy result, polled for up to ``seconds`` (for state settling across processes)."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def logged(path: Path) -> list[tuple[str, int, float]]:
    """The ``log`` lines the workers wrote: (step, pid, time)."""
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(name, int(pid), float(when)) for name, pid, when in rows]


# -- a LocalCluster of worker processes, started by flowmagic ---------------------------------


@pytest.fixture(scope="module")
def local() -> Iterator[Any]:
    """``executor="dask"``: the LocalCluster flowmagic starts (one single-threaded worker process per core)."""
    start = time.monotonic()
    try:
        remote = backend.connect("dask")
        client = remote.client
        print(f"LocalCluster up in {time.monotonic() - start:.1f} s: {client}")
        assert remote is backend.connect("dask")  # started once, then reused
        assert remote.address == client.scheduler.address
        nthreads = client.nthreads()
        assert len(nthreads) >= 2 and set(nthreads.values()) == {1}, nthreads
        yield client
    finally:
        backend.close_all()


def test_parallel_steps_run_side_by_side_in_two_worker_processes(local: Any, tmp_path: Path) -> None:
    flow = cluster_flow(
        "parallel:\n    a = meet(folder, 'a', 'b')\n    b = meet(folder, 'b', 'a')\npids = (a[0], b[0])\n",
        "pids",
        folder=str(tmp_path),
    )
    run = flow.run()
    assert run.status == "succeeded", run.summary()
    (pid_a, start_a, end_a), (pid_b, start_b, end_b) = run["a"], run["b"]
    assert pid_a != pid_b, "both steps ran in the same worker process"
    assert {pid_a, pid_b} <= worker_pids(local)
    assert os.getpid() not in {pid_a, pid_b}
    assert overlap(run, ["a", "b"])  # as recorded by the run
    assert max(start_a, start_b) < min(end_a, end_b)  # as the two workers saw it
    assert run["pids"] == (pid_a, pid_b)
    # one Dask task per step, named after the flow and the step...
    seen = keys_seen(local, "pids-")
    assert {k.rsplit("-", 1)[0] for k in seen} == {"pids-a", "pids-b"}, seen
    # ...and released once its value is in the kernel: nothing stays in the workers' memory
    assert eventually(lambda: not keys_held(local, "pids-")), keys_held(local, "pids-")


def test_a_step_failing_on_a_worker_fails_alone(local: Any) -> None:
    flow = cluster_flow("parallel:\n    bad = boom()\n    good = pid()\nafter = use(bad)\n", "isolated")
    run = flow.run()
    assert run.status == "failed"
    bad = run.steps["bad"]
    assert bad.status == "failed" and type(bad.error) is ValueError, repr(bad.error)
    message = str(bad.error)
    assert message.startswith("bad input on ")
    assert int(message.rsplit(" ", 1)[1]) in worker_pids(local)  # raised in a worker process
    with pytest.raises(ValueError, match="bad input on"):
        run["bad"]
    assert run.steps["good"].status == "succeeded" and run["good"] in worker_pids(local)
    assert run.steps["after"].status == "skipped" and run.steps["after"].reason == "'bad' failed"
    # the failed task is released too: an error does not pin its key on the scheduler
    assert eventually(lambda: not keys_held(local, "isolated-")), keys_held(local, "isolated-")


def test_a_step_queued_on_the_cluster_is_timed_from_when_a_worker_began_it(local: Any) -> None:
    # six steps on two one-thread workers: whatever the kernel sent at once, the recorded
    # intervals must show at most two steps running at any instant, as the workers ran them
    workers = len(worker_pids(local))
    flow = cluster_flow("parallel:\n" + "".join(f"    s{i} = nap(0.2)\n" for i in range(6)), "queued")
    run = flow.run()
    assert run.status == "succeeded"
    edges = sorted(
        [(r.started, 1) for r in run.steps.values()] + [(r.finished, -1) for r in run.steps.values()],
        key=lambda edge: (edge[0], edge[1]),
    )
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    assert peak == workers, f"{peak} steps recorded as running at once on {workers} workers"
    # the wait for a worker is recorded apart: a step that queued waited at least one step's run
    waits = [r.waited for r in run.steps.values()]
    assert all(w is not None and w >= 0 for w in waits), waits
    assert max(waits) >= min(r.duration or 0 for r in run.steps.values()), waits  # type: ignore[type-var]
    assert "for a worker" in run.summary()


def test_an_input_that_cannot_be_pickled_fails_its_step_before_anything_is_sent(local: Any, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    flow = cluster_flow(
        "touched = touch(marker)\nlocked = use(lock)\n", "nosend", marker=str(marker), lock=threading.Lock()
    )
    run = flow.run()
    assert run.status == "failed"
    error = run.steps["locked"].error
    assert run.steps["locked"].status == "failed" and isinstance(error, NotSendableError), repr(error)
    assert "step 'locked'" in str(error) and "'lock' (a _thread.lock)" in str(error)
    assert run.steps["touched"].status == "cancelled"
    assert not marker.exists()
    assert keys_seen(local, "nosend-") == set()


def test_a_value_made_on_the_loop_that_cannot_be_pickled_fails_the_step_reading_it(local: Any) -> None:
    flow = cluster_flow("lk = make_lock()\nchild = use(lk)\ngrandchild = use(child)\n", "madelock")
    run = flow.run()
    assert run.status == "failed"
    assert run.steps["lk"].status == "succeeded" and type(run["lk"]) is type(threading.Lock())
    error = run.steps["child"].error
    assert run.steps["child"].status == "failed" and isinstance(error, NotSendableError), repr(error)
    assert "step 'child'" in str(error) and "'lk' (a _thread.lock)" in str(error)
    assert run.steps["grandchild"].status == "skipped"
    assert keys_seen(local, "madelock-") == set()


def test_cancel_stops_the_step_on_the_cluster(local: Any, tmp_path: Path) -> None:
    stop, started = tmp_path / "stop", tmp_path / "started"
    flow = cluster_flow(
        "first = pid()\nslow = nap_until(stop, started, 30)\n", "sleeper", stop=str(stop), started=str(started)
    )
    try:
        flow.start()
        assert eventually(started.exists, 30), "the 30 s step never started on a worker"
        before = worker_pids(local)  # (asked now: once cancelled, the busy worker restarts)
        assert int(started.read_text()) in before
        assert keys_held(local, "sleeper-slow-")  # it is on the cluster now
        assert flow.cancel() is True
        run = flow.last
        assert run is not None and run.status == "cancelled", run.summary()
        assert run.steps["slow"].status == "cancelled"
        assert run.steps["first"].status == "succeeded" and run["first"] in before
        held = eventually(lambda: not keys_held(local, "sleeper-"), 5) or keys_held(local, "sleeper-")
        assert held is True, f"the scheduler still holds {held}"
        # the worker that ran it is restarted (a new process), so it is free though the step would sleep on
        busy = int(started.read_text())

        def restarted() -> bool:
            try:
                pids = worker_pids(local)
            except Exception:  # a worker going down while asked
                return False
            return busy not in pids and len(pids) >= 2

        assert eventually(restarted, 60), "the worker running the cancelled step was not restarted"
        after = cluster_flow("\n".join(f"p{i} = pid()" for i in range(4)), "after").run()
        assert after.status == "succeeded" and {after[f"p{i}"] for i in range(4)} <= set(worker_pids(local))
    finally:
        # a worker thread cannot be stopped: let the step return, so the worker is free for other tests
        stop.touch()

        def idle() -> bool:
            try:
                return not any(local.run(lambda dask_worker: dask_worker.state.executing_count).values())
            except Exception:  # a worker restarting while asked
                return False

        assert eventually(idle, 30)


# -- the magic in a real IPython shell (the ``shell`` fixture of conftest.py) -----------------


def cell(shell: InteractiveShell, text: str) -> object:
    result = shell.run_cell(text)
    return result.error_in_exec or result.error_before_exec


def test_a_flow_cell_runs_on_the_cluster(local: Any, shell: InteractiveShell, capsys: Any) -> None:
    assert cell(shell, "import os\ndef where():\n    return os.getpid()\n") is None
    assert cell(shell, "%%flow t --executor dask\nparallel:\n    a = where()\n    b = where()\n") is None
    run = shell.user_ns["t"].last
    assert run.status == "succeeded" and run.settings == {"executor": "dask"}
    assert {run["a"], run["b"]} <= worker_pids(local) and os.getpid() not in {run["a"], run["b"]}
    assert "flow 't' succeeded" in capsys.readouterr().out
    # the configured default applies to cells without --executor
    assert cell(shell, '%config FlowMagics.executor = "dask"') is None
    assert cell(shell, "%%flow u\nc = where()\n") is None
    assert shell.user_ns["u"].last["c"] in worker_pids(local)


def test_executor_settings_are_checked_and_shown(
    shell: InteractiveShell, capsys: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(UsageError, match=r"--executor: the executor is 'threads', 'dask' or 'dask://HOST:PORT'"):
        shell.run_cell_magic("flow", "t --executor spark", "a = 1\n")
    assert "t" not in shell.user_ns
    magics = shell.magics_manager.registry["FlowMagics"]
    cell(shell, '%config FlowMagics.executor = "nope"')
    assert magics.executor == "threads"
    assert "executor must be 'threads', 'dask' or 'dask://HOST:PORT', not 'nope'" in caplog.text
    with pytest.raises(UsageError, match="executor must be"):
        shell.run_line_magic("flow", "config executor=dask://no-port")
    capsys.readouterr()
    shell.run_line_magic("flow", "config")
    assert "executor   threads" in capsys.readouterr().out.splitlines()
    cell(shell, '%config FlowMagics.executor = "dask://127.0.0.1:8786"')
    shell.run_line_magic("flow", "config")
    assert "executor   dask://127.0.0.1:8786" in capsys.readouterr().out.splitlines()


# -- a scheduler and two workers as separate processes ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# runs ``python -m MODULE ARGS`` that ends when this test process ends, even by a crash (Linux)
LAUNCH = """
import ctypes, runpy, signal, sys
if sys.platform == "linux":
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
module = sys.argv.pop(1)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group (a nanny and its worker), then SIGKILL what is left."""
    for process in reversed(processes):  # workers first, then the scheduler
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        with contextlib.suppress(ProcessLookupError):  # a worker left behind by its nanny
            os.killpg(process.pid, signal.SIGKILL)


class Separate:
    def __init__(self, executor: str, client: Any, nannies: set[int]) -> None:
        self.executor = executor
        self.client = client
        self.nannies = nannies  # the ``dask worker`` processes we started; each runs its worker as a child

    def worker_pids(self) -> set[int]:
        return worker_pids(self.client)

    def recovered(self) -> set[int]:
        """Wait until both workers are back (their nannies restart them); their pids."""

        def two() -> set[int] | None:
            pids = self.worker_pids()
            return pids if len(pids) == 2 else None

        pids = eventually(two, 60)
        assert pids, f"the workers did not come back: {self.client.scheduler_info()['workers'].keys()}"
        assert {psutil.Process(p).ppid() for p in pids} == self.nannies
        return pids


@pytest.fixture(scope="module")
def separate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Separate]:
    port = free_port()
    logs = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(ALLOWED_FAILURES)}
    address = f"tcp://127.0.0.1:{port}"
    worker = ["distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"]
    commands = {
        "scheduler": ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        **{name: [*worker, "--name", name, "--local-directory", str(logs / name)] for name in ("w1", "w2")},
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            with open(logs / f"{name}.log", "wb") as out:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-c", LAUNCH, *command],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group: the nanny's worker goes with it
                    )
                )
        assert eventually(lambda: listening(port), 60), "the scheduler did not start: see " + str(logs)
        executor = f"dask://127.0.0.1:{port}"
        client = backend.client(executor)
        client.wait_for_workers(2, timeout=60)
        cluster = Separate(executor, client, {p.pid for p in processes[1:]})
        cluster.recovered()
        assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures) == ALLOWED_FAILURES
        yield cluster
    finally:
        backend.close_all()
        stop_processes(processes)
    assert all(p.poll() is not None for p in processes)


def test_a_flow_runs_on_an_existing_scheduler(separate: Separate, tmp_path: Path) -> None:
    flow = cluster_flow(
        "parallel:\n    a = meet(folder, 'a', 'b')\n    b = meet(folder, 'b', 'a')\n",
        "remote",
        separate.executor,
        folder=str(tmp_path),
    )
    run = flow.run()
    assert run.status == "succeeded", run.summary()
    pids = {run["a"][0], run["b"][0]}
    assert pids == separate.worker_pids()  # both workers of the cluster we started, one step each
    assert {psutil.Process(p).ppid() for p in pids} == separate.nannies
    assert overlap(run, ["a", "b"])
    assert {k.rsplit("-", 1)[0] for k in keys_seen(separate.client, "remote-")} == {"remote-a", "remote-b"}


def test_a_step_whose_worker_dies_is_retried_elsewhere_and_finished_steps_are_kept(
    separate: Separate, tmp_path: Path
) -> None:
    path, marker = tmp_path / "log", tmp_path / "marker"
    flow = cluster_flow(
        "first = log(path, 'first')\nrises = die_once(marker, path, first)\nafter = log(path, 'after', rises)\n",
        "phoenix",
        separate.executor,
        path=str(path),
        marker=str(marker),
    )
    run = flow.run()
    assert run.status == "succeeded", run.summary()
    killed = int(marker.read_text())
    runs = logged(path)
    assert [(n, p) for n, p, _ in runs if n == "rises"] == [("rises", killed), ("rises", run["rises"])]
    assert run["rises"] != killed  # the retry ran in another worker process
    # the step that finished before the worker died ran once and kept its value
    assert [p for n, p, _ in runs if n == "first"] == [run["first"]]
    assert [p for n, p, _ in runs if n == "after"] == [run["after"]]
    pids = separate.recovered()
    assert killed not in pids and run["rises"] in pids


def test_a_step_that_always_kills_its_worker_fails_with_killed_worker(separate: Separate, tmp_path: Path) -> None:
    path = tmp_path / "log"
    flow = cluster_flow(
        "first = log(path, 'first')\n"
        "parallel:\n    second = log(path, 'second', first)\n    doomed = die(path, first)\n"
        "after = log(path, 'after', doomed)\n",
        "doomed",
        separate.executor,
        path=str(path),
    )
    run = flow.run()
    assert run.status == "failed", run.summary()
    error = run.steps["doomed"].error
    assert run.steps["doomed"].status == "failed" and isinstance(error, distributed.KilledWorker), repr(error)
    assert "doomed-doomed-" in str(error) and f"on {ALLOWED_FAILURES + 1} different workers" in str(error)
    runs = logged(path)
    deaths = [p for n, p, _ in runs if n == "dies"]
    assert len(deaths) == ALLOWED_FAILURES + 1 and len(set(deaths)) == len(deaths), runs
    assert run.steps["after"].status == "skipped"
    # the rest of the run is kept: first (finished before any worker died) ran once
    assert [p for n, p, _ in runs if n == "first"] == [run["first"]]
    assert run.steps["second"].status == "succeeded" and run["second"] in [p for n, p, _ in runs if n == "second"]
    # the nannies restart the killed workers, and the cluster runs flows again
    pids = separate.recovered()
    assert not pids & set(deaths)
    again = cluster_flow(
        "parallel:\n    a = meet(folder, 'a', 'b')\n    b = meet(folder, 'b', 'a')\n",
        "again",
        separate.executor,
        folder=str(tmp_path),
    ).run()
    assert again.status == "succeeded" and {again["a"][0], again["b"][0]} == pids
