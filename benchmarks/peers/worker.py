"""One peer's measurements, run inside the peer's environment: ``python -m benchmarks.peers.worker``.

Reads a job from stdin (JSON: ``peer``, ``variant``, ``repeat``, ``tasks``)
and writes JSON lines to stdout: first ``{"version": ...}`` (or
``{"import_error": ...}``), then one object per task as soon as it is done.
Anything the peer prints goes to stderr, so stdout carries only these lines.

Each task: the adapter builds the workload once (``dag``, ``llm``) or returns a
callable that builds and runs it (``map_items``); the worker times the call
with ``time.perf_counter()`` after a ``gc.collect()``, ``warmup`` untimed runs
first, then ``repeat`` timed runs. DAG runs are checked from the
:class:`~benchmarks.peers.common.Recorder` (every step ran; steps that ran
more than once are reported); LLM runs against the server's request count;
map runs by the number of results. A map task also measures, in one more run
under ``tracemalloc``, the peak of traced allocations.
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import time
import tracemalloc
import urllib.request
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import IO, Any

from .common import DagTask, LlmTask, MapTask, Recorder, Step


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def _server_requests(base_url: str) -> int:
    with urllib.request.urlopen(base_url + "/stats", timeout=10) as response:
        return int(json.load(response)["requests"])


def run_dag(adapter: ModuleType, variant: str, data: dict[str, Any], repeat: int) -> dict[str, Any]:
    task = DagTask.from_json(data)
    rec = Recorder()
    run = adapter.dag(task, variant, rec)
    names = {s.name for s in task.steps}
    for _ in range(data.get("warmup", 0)):
        rec.reset()
        run()
    samples: list[float] = []
    calls: list[int] = []
    gaps: list[float] = []
    repeated: dict[str, int] = {}
    for _ in range(repeat):
        rec.reset()
        wall, _ = _timed(run)
        missing = names - set(rec.calls)
        if missing:
            raise RuntimeError(f"{len(missing)} step(s) never ran, e.g. {sorted(missing)[:3]}")
        samples.append(wall)
        calls.append(len(rec.calls))
        repeated.update(rec.repeated())
        if data.get("gap"):
            before, after = data["gap"]
            gaps.append((rec.started[after] - rec.finished[before]) * 1e3)
    return {"samples_s": samples, "calls": calls, "steps": len(names), "repeated": repeated, "gaps_ms": gaps}


def run_llm(adapter: ModuleType, variant: str, data: dict[str, Any], repeat: int) -> dict[str, Any]:
    task = LlmTask(data["key"], data["calls"], data["workers"], data["base_url"], data["model"], data["api_key"])
    run = adapter.llm(task, variant)
    samples: list[float] = []
    for i in range(data.get("warmup", 0) + repeat):
        before = _server_requests(task.base_url)
        wall, answers = _timed(run)
        sent = _server_requests(task.base_url) - before
        if answers != task.calls or sent != task.calls:
            raise RuntimeError(f"{answers} answers and {sent} requests for {task.calls} calls")
        if i >= data.get("warmup", 0):
            samples.append(wall)
    return {"samples_s": samples}


def run_map(adapter: ModuleType, variant: str, data: dict[str, Any], repeat: int) -> dict[str, Any]:
    task = MapTask(data["key"], data["items"])
    run = adapter.map_items(task, variant)
    adapter.map_items(MapTask(task.key, 10), variant)()  # warm-up, small
    samples: list[float] = []
    for _ in range(repeat):
        wall, got = _timed(run)
        if got != task.items:
            raise RuntimeError(f"{got} of {task.items} map results")
        samples.append(wall)
    gc.collect()
    tracemalloc.start()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return {"samples_s": samples, "peak_bytes": peak}


RUNNERS = {"dag": run_dag, "llm": run_llm, "map": run_map}


def warm_up(adapter: ModuleType, variant: str) -> None:
    """One tiny DAG first, so lazy imports and first-call costs are not in the first task."""
    task = DagTask("warm_up", (Step("a", None), Step("b", None, ("a",)), Step("c", None, ("a",))))
    adapter.dag(task, variant, Recorder())()


def main() -> int:
    out: IO[str] = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the peer prints goes to stderr, not into our JSON lines
    sys.stdout = sys.stderr
    warnings.simplefilter("ignore")

    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    job = json.loads(sys.stdin.read())
    try:
        adapter = importlib.import_module(f"benchmarks.peers.{job['peer']}")
    except Exception as exc:  # a broken install: say what failed
        emit({"import_error": f"{type(exc).__name__}: {exc}"})
        return 0
    emit({"version": importlib.metadata.version(job["distribution"]), "python": platform.python_version()})
    warm_up(adapter, job["variant"])
    for data in job["tasks"]:
        try:
            result = RUNNERS[data["kind"]](adapter, job["variant"], data, data.get("repeat", job["repeat"]))
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        emit({"key": data["key"], **result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
