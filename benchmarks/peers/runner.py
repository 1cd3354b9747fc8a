"""Measure the peers from the benchmark's process: environments, worker processes, table cells.

For each peer: :func:`~benchmarks.peers.env.ensure` its environment (a failure
becomes a "not installed: <reason>" column), time its imports in fresh
processes, then run one :mod:`~benchmarks.peers.worker` process per column
with every task. The worker streams one JSON line per task; a task that takes
longer than the time limit, or a worker that dies, costs that task only: the
process is killed and a new one takes the remaining tasks.
"""

from __future__ import annotations

import json
import queue
import statistics
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from ..startup import import_ms
from ..workloads import Workload
from .env import PEERS, ROOT, Peer, ensure, python

START_TIMEOUT_S = 300.0


@dataclass
class Outcome:
    """One column: a peer and variant, its status and each task's raw result."""

    column: str
    peer: Peer
    variant: str
    status: str = "ok"  # or "not installed: ...", "failed: ..."
    version: str = ""
    import_ms: float | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


def dag_task(w: Workload) -> dict[str, Any]:
    return {
        "kind": "dag",
        "key": w.key,
        "specs": [[s.name, s.seconds, list(s.deps)] for s in w.specs],
        "gap": w.extra.get("gap"),
        "branches": w.extra.get("branches"),
        "warmup": 1 if w.metric == "per_step" else 0,
    }


def llm_task(base_url: str, calls: int, workers: int, model: str, api_key: str) -> dict[str, Any]:
    return {
        "kind": "llm",
        "key": "llm",
        "calls": calls,
        "workers": workers,
        "base_url": base_url,
        "model": model,
        "api_key": api_key,
        "warmup": 1,
    }


def map_task(items: int) -> dict[str, Any]:
    return {"kind": "map", "key": "map", "items": items}


def _reader(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _tail(stderr: IO[str]) -> str:
    stderr.seek(0)
    lines = [line.strip() for line in stderr.read().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def run_column(outcome: Outcome, tasks: list[dict[str, Any]], repeat: int, task_timeout: float) -> None:
    """Fill ``outcome`` from worker processes, one task at a time."""
    remaining = list(tasks)
    while remaining:
        job = {
            "peer": outcome.peer.key,
            "distribution": outcome.peer.distribution,
            "variant": outcome.variant,
            "repeat": repeat,
            "tasks": remaining,
        }
        with tempfile.TemporaryFile("w+") as stderr:
            proc = subprocess.Popen(
                [str(python(outcome.peer)), "-m", "benchmarks.peers.worker"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
            try:
                remaining = _collect(outcome, remaining, lines, task_timeout, lambda: _tail(stderr))
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()
        if outcome.status != "ok":
            return


def _collect(
    outcome: Outcome,
    tasks: list[dict[str, Any]],
    lines: queue.Queue[str | None],
    task_timeout: float,
    tail: Callable[[], str],
) -> list[dict[str, Any]]:
    """Read one worker's lines into ``outcome``; return the tasks left for a new worker."""
    try:
        first = lines.get(timeout=START_TIMEOUT_S)
    except queue.Empty:
        outcome.status = f"failed: importing took more than {START_TIMEOUT_S:.0f} s"
        return []
    if first is None:
        outcome.status = f"failed: the worker exited at start: {tail()}"
        return []
    header = json.loads(first)
    if "import_error" in header:
        outcome.status = f"not installed: import failed: {header['import_error']}"
        return []
    outcome.version = header["version"]
    for index, task in enumerate(tasks):
        try:
            line = lines.get(timeout=task_timeout)
        except queue.Empty:
            outcome.results[task["key"]] = {"error": f"timed out after {task_timeout:.0f} s"}
            return tasks[index + 1 :]
        if line is None:
            outcome.results[task["key"]] = {"error": f"the worker died: {tail()}"}
            return tasks[index + 1 :]
        result = json.loads(line)
        outcome.results[result.pop("key")] = result
    return []


def measure(
    tasks: list[dict[str, Any]],
    repeat: int,
    import_samples: int,
    task_timeout: float,
    log: Callable[[str], None] = print,
) -> list[Outcome]:
    """Every peer column, measured on ``tasks``; a peer that cannot be installed says why."""
    outcomes: list[Outcome] = []
    for peer in PEERS:
        columns = [Outcome(column, peer, variant) for column, variant, _ in peer.columns]
        outcomes.extend(columns)
        reason = ensure(peer, log)
        if reason is not None:
            for outcome in columns:
                outcome.status = f"not installed: {reason}"
            log(f"peers: {peer.distribution} not installed: {reason}")
            continue
        try:
            imported = import_ms(list(peer.user_imports), import_samples, str(python(peer)))
        except RuntimeError as exc:
            imported = None
            log(f"peers: timing {peer.distribution}'s import failed: {exc}")
        for outcome in columns:
            log(f"peers: measuring {outcome.column} ...")
            outcome.import_ms = imported
            run_column(outcome, tasks, repeat, task_timeout)
    return outcomes


# -- from raw results to table cells ---------------------------------------------------


def cell_value(outcome: Outcome, key: str, metric: str, scale: float) -> float | str | None:
    """The number for one row (None: not measured for peers), or why there is none."""
    if outcome.status != "ok":
        return "not installed" if outcome.status.startswith("not installed") else "failed"
    if key == "import":
        return outcome.import_ms
    task_key = "map" if key.startswith("map_") else key
    result = outcome.results.get(task_key)
    if result is None:
        return None
    if "error" in result:
        return "timed out" if result["error"].startswith("timed out") else "failed"
    if key == "map_memory":
        return float(result["peak_bytes"]) / 1e6
    if metric == "gap_ms":
        return float(statistics.median(result["gaps_ms"]))
    median = float(statistics.median(result["samples_s"]))
    if metric == "per_step":
        return median / scale * 1e6
    if metric == "makespan":
        return median / scale
    return median  # total_s


def notes(outcome: Outcome, titles: dict[str, str]) -> list[str]:
    """What the table's cells cannot say: errors, steps that ran more than once."""
    out: list[str] = []
    if outcome.status != "ok":
        return [f"{outcome.column}: {outcome.status}"]
    for key, result in outcome.results.items():
        title = titles.get(key, "map" if key == "map" else key)
        if "error" in result:
            out.append(f"{outcome.column}, {title}: {result['error']}")
        elif result.get("repeated"):
            runs = max(result["calls"])
            twice = ", ".join(f"{n} x{c}" for n, c in result["repeated"].items())
            out.append(f"{outcome.column}, {title}: {runs} step runs for {result['steps']} steps ({twice})")
    return out
