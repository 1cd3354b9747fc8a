"""Run steps on a Dask distributed cluster.

``"dask"`` starts a :class:`distributed.LocalCluster` of worker processes (one
thread each, one per core) the first time a flow asks for it, and every later
run in the kernel reuses it; ``"dask://HOST:PORT"`` connects to a scheduler that
is already running. Either way the client stays open, so its dashboard does too
(``flowmagic.backends.dask.client().dashboard_link``).

Each step is one Dask task: :func:`flowmagic.engine.remote.evaluate` on the
step's payload (a batch sends its rows by the chunk instead). Dask runs a task
again when its worker dies, up to ``distributed.scheduler.allowed-failures``
times; then the step fails with ``KilledWorker``. A step cancelled or timed out
while a worker runs it has that worker restarted, so the next steps find it free;
the step's record says how long it waited for a worker (``waited``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import socket
import threading
import warnings
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_restarting = threading.Lock()  # one restart at a time
_connected: dict[str, DaskRemote] = {}


class _Sent(concurrent.futures.Future[Any]):
    """The kernel's side of a task on the cluster."""

    def __init__(self, task: Any) -> None:
        super().__init__()
        self.task = task


class DaskRemote:
    """A :class:`~flowmagic.engine.remote.Remote` on a ``distributed.Client``."""

    def __init__(self, client: Any, address: str) -> None:
        self.client = client
        self.address = address

    @property
    def slots(self) -> int:
        return max(1, int(sum(self.client.nthreads().values())))

    def submit(self, key: str, fn: Callable[[bytes], Any], payload: bytes) -> concurrent.futures.Future[Any]:
        task = self.client.submit(fn, payload, key=key, pure=False)
        done = _Sent(task)

        def settle(finished: Any) -> None:  # on one of the client's threads; the only place done is set
            if finished.status == "error":
                # not finished.result(): raising here would chain this frame, which holds the task, onto
                # the exception the client keeps for the key, and the key would never be released
                error = finished.exception().with_traceback(finished.traceback())
                finished.release()
                done.set_exception(error)
                return
            try:
                value = finished.result()
            except BaseException as exc:  # cancelled
                done.set_exception(exc)
            else:
                # released before anyone hears of the value, so the scheduler forgets the key before
                # any later submit reaches it: a worker that dies holding it is no reason to run it again
                finished.release()
                done.set_result(value)

        task.add_done_callback(settle)
        return done

    def cancel(self, futures: list[concurrent.futures.Future[Any]]) -> None:
        """Cancel tasks; a worker already running one is restarted (Dask cannot stop a running
        task's thread, and a CPU-bound step would keep the worker from every later step)."""
        tasks = [f.task for f in futures if isinstance(f, _Sent) and not f.done()]
        if not tasks:
            return
        keys = {task.key for task in tasks}
        try:
            busy = [worker for worker, running in self.client.processing().items() if keys & set(running)]
        except Exception:  # the scheduler is gone: nothing is running there either
            busy = []
        self.client.cancel(tasks, asynchronous=False)  # each task's settle() then ends its future
        if busy:
            threading.Thread(target=self._restart, args=(busy,), name="flowmagic-dask-restart", daemon=True).start()

    def _restart(self, workers: list[str]) -> None:
        """Restart ``workers`` (through their nannies); a worker without one stays busy until its step returns."""
        with _restarting, contextlib.suppress(Exception):
            self.client.restart_workers(workers, timeout=60, raise_for_error=False)

    def close(self) -> None:
        cluster = getattr(self.client, "cluster", None)
        self.client.close()
        if cluster is not None:
            cluster.close()


def connect(executor: str) -> DaskRemote:
    """The :class:`DaskRemote` for ``"dask"`` or ``"dask://HOST:PORT"``, made once per kernel."""
    with _lock:
        remote = _connected.get(executor)
        if remote is not None and remote.client.status == "running":
            return remote
        remote = _connected[executor] = _start(executor)
        return remote


def _start(executor: str) -> DaskRemote:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError(f"--executor {executor} needs Dask distributed: pip install 'flowmagic[dask]'") from None
    if executor == "dask":
        with warnings.catch_warnings():  # another kernel may take :8787 after the check: Dask then picks a port
            warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
            cluster = LocalCluster(
                n_workers=max(2, os.cpu_count() or 2),
                threads_per_worker=1,
                processes=True,
                dashboard_address=_dashboard_address(),
                silence_logs=logging.CRITICAL,  # a failed step is the run's to report
            )
        return DaskRemote(Client(cluster), cluster.scheduler_address)
    if not executor.startswith("dask://"):
        raise ValueError(f"executor must be 'threads', 'dask' or 'dask://HOST:PORT', not {executor!r}")
    address = "tcp://" + executor.removeprefix("dask://")
    try:
        client = Client(address, timeout=10)
    except OSError as exc:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    return DaskRemote(client, address)


def client(executor: str = "dask") -> Any:
    """The ``distributed.Client`` behind ``executor`` (started if need be): its dashboard, its workers."""
    return connect(executor).client


def close_all() -> None:
    """Close every client (and the local cluster) this kernel started."""
    with _lock:
        remotes = list(_connected.values())
        _connected.clear()
    for remote in remotes:
        remote.close()


def _dashboard_address() -> str:
    """Dask's usual :8787 when it is free, else any free port (``client().dashboard_link`` tells).

    (Dask's own fallback for a port in use warns in every notebook that starts a cluster.)
    """
    with socket.socket() as probe:
        try:
            probe.bind(("", 8787))
        except OSError:
            return ":0"
    return ":8787"
