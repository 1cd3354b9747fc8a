"""The Dask executor: a CPU-bound batch, and the cost per row and per step, on a local cluster.

``flowmagic.backends.dask.connect("dask")`` starts the cluster every flowmagic
user gets with ``executor="dask"``: a ``LocalCluster`` of worker processes, one
thread each (two on a 2-core machine). It is started once, before any timing,
and its start-up is reported on its own line, beside the first (untimed) batch
on it. The process pool baseline is started and warmed the same way, so every
timed number is a warm one.

* CPU-bound batch: ``score = crunch(row)`` over N rows (10,000; 200 with
  ``--quick``). :func:`crunch` is pure Python, deterministic and about 1 ms a
  call (integer arithmetic, holds the GIL throughout).

  - flowmagic threads / dask: ``flow.batch(rows, executor=..., progress=False)``,
    chunk size and ``in_flight`` left to the batch (on dask: at most 256 rows a
    chunk, about 8 chunks per worker thread).
  - serial loop: ``[crunch(x) for x in xs]`` in the benchmark's own process.
  - process pool: ``ProcessPoolExecutor(workers).map(crunch, xs, chunksize=c)``,
    as many processes as the cluster has worker threads and the chunk size the
    dask batch picks (spawned, as Dask's workers are).
  - Dask, hand-written: ``client.map(crunch_many, chunks)`` on the same cluster,
    the same chunks, then ``client.gather``; what flowmagic adds on the cluster
    is the difference.

  At most 3 repeats of this row (a round of the five ways is about 50 s here).

* No-op batch: ``y = x + 1`` over N rows (2,000; 500 with ``--quick``), the
  same five ways; µs per row, so the per-row cost of each way shows.
* No-op steps: one ``flow.run()`` of 100 independent ``noop()`` steps with
  ``executor="threads"`` or ``"dask"`` (every step one Dask task), against 100
  ``client.submit(noop)`` and one ``client.gather``; µs per step, fixed cost of
  the run included.

Every run is checked before its time is kept: every row succeeded and the
values, in row order, equal the serial loop's (so their sums do too); every
step succeeded. A check outside the timing makes sure the dask rows and steps
really ran in the worker processes. Repeats are interleaved over the systems.
Besides wall time, each run's CPU time is kept: this process's (all threads) and
the cluster workers' (``client.run(time.process_time)`` before and after, outside
the timing; it includes their idle heartbeats). The process pool's own processes
are not counted ("?").

``python -m benchmarks.dask_batch [--quick] [--repeat N]`` runs only these rows.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import importlib.util
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from flowmagic import Flow
from flowmagic.engine.batch import MAX_CHUNK

from .workloads import SYNC_NS, noop, wide

#: Loop iterations in :func:`crunch`: about 1 ms of CPython 3.11 on the machine of BENCHMARKS.md.
ITERATIONS = 13_000
SYSTEMS = ("flowmagic threads", "flowmagic dask", "serial loop", "process pool", "Dask, hand-written")
WORKERS = 32  # the thread executor's pool, as in the other rows
STEPS = 100


def crunch(x: int) -> int:
    """About 1 ms of pure-Python integer work; the same ``x`` always gives the same score."""
    h = x
    for _ in range(ITERATIONS):
        h = (h * 1103515245 + 12345) & 0xFFFFFFFF
    return h % 1000


def crunch_many(xs: list[int]) -> list[int]:
    return [crunch(x) for x in xs]


def add_one(x: int) -> int:
    return x + 1


def add_one_many(xs: list[int]) -> list[int]:
    return [x + 1 for x in xs]


def worker_pid(*_: Any) -> int:
    return os.getpid()


def sizes(quick: bool) -> tuple[int, int]:
    """Rows in the CPU-bound batch and in the no-op batch."""
    return (200, 500) if quick else (10_000, 2_000)


def default_chunk(n: int, slots: int) -> int:
    """The chunk size ``flow.batch(..., executor="dask")`` picks for ``n`` rows (flowmagic.engine.batch)."""
    return max(1, min(MAX_CHUNK, math.ceil(n / (slots * 8))))


def available() -> str | None:
    """None when Dask distributed is installed, else why these rows are not measured."""
    if importlib.util.find_spec("distributed") is None:
        return "not measured: Dask distributed is not installed (pip install 'flowmagic[dask]')"
    return None


# -- the systems --------------------------------------------------------------------------


def _batch(flow: Flow, rows: list[dict[str, int]], executor: str, step: str) -> Callable[[], list[Any]]:
    def run() -> list[Any]:
        batch = flow.batch(rows, executor=executor, progress=False)
        if batch.status != "succeeded" or len(batch) != len(rows):
            raise RuntimeError(f"{flow.name} on {executor} ended {batch.status}: {list(batch.errors.items())[:3]}")
        if [r.index for r in batch] != list(range(len(rows))):
            raise RuntimeError(f"{flow.name} on {executor}: rows out of order")
        return [r.values[step] for r in batch]

    return run


def batch_runners(
    name: str,
    text: str,
    fn: Callable[[int], int],
    many: Callable[[list[int]], list[int]],
    n: int,
    client: Any,
    pool: concurrent.futures.ProcessPoolExecutor,
    slots: int,
) -> dict[str, Callable[[], list[Any]]]:
    """One zero-argument callable per system, each returning the batch's values in row order."""
    arg, step = ("row", "score") if "row" in text else ("x", "y")
    xs = list(range(n))
    rows = [{arg: x} for x in xs]
    flow = Flow.from_source(text, name=name, namespace={fn.__name__: fn}, workers=WORKERS, cache=False)
    size = default_chunk(n, slots)
    chunks = [xs[i : i + size] for i in range(0, n, size)]

    def by_hand() -> list[Any]:
        futures = client.map(many, chunks, pure=False)
        return [v for part in client.gather(futures) for v in part]

    return {
        "serial loop": lambda: [fn(x) for x in xs],  # first: the reference the others are checked against
        "flowmagic threads": _batch(flow, rows, "threads", step),
        "flowmagic dask": _batch(flow, rows, "dask", step),
        "Dask, hand-written": by_hand,
        "process pool": lambda: list(pool.map(fn, xs, chunksize=size)),
    }


def step_runners(client: Any) -> dict[str, Callable[[], int]]:
    """100 independent no-op steps: one run per call, returning how many steps succeeded."""
    text = wide(STEPS).dsl()

    def fm(executor: str) -> Callable[[], int]:
        flow = Flow.from_source(text, name="steps", namespace=SYNC_NS, workers=WORKERS, executor=executor, cache=False)

        def run() -> int:
            result = flow.run()
            if result.status != "succeeded":
                raise RuntimeError(f"{STEPS} no-op steps on {executor} ended {result.status}: {result.failed()}")
            return len(result.outputs)

        return run

    def by_hand() -> int:
        return len(client.gather([client.submit(noop, pure=False) for _ in range(STEPS)]))

    return {"flowmagic threads": fm("threads"), "flowmagic dask": fm("dask"), "Dask, hand-written": by_hand}


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, this process's CPU seconds (all threads) and the result."""
    gc.collect()  # outside the timing
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    return wall, time.process_time() - c0, result


def workers_cpu(client: Any) -> float:
    """CPU seconds used so far by the cluster's worker processes (all their threads), summed."""
    return float(sum(client.run(time.process_time).values()))


Samples = dict[str, list[float]]


def _interleaved(
    fns: dict[str, Callable[[], Any]], repeat: int, check: Callable[[str, Any], None], client: Any
) -> tuple[Samples, Samples, Samples]:
    """Wall seconds, this process's CPU seconds and the workers' CPU seconds, per system and repeat."""
    samples: Samples = {s: [] for s in fns}
    cpu: Samples = {s: [] for s in fns}
    remote_cpu: Samples = {s: [] for s in fns}
    for _ in range(repeat):
        for system, fn in fns.items():
            before = workers_cpu(client)  # outside the timing, like the check
            wall, used, result = _timed(fn)
            remote_cpu[system].append(workers_cpu(client) - before)
            check(system, result)  # a wrong or partial result never posts a time
            samples[system].append(wall)
            cpu[system].append(used)
    return samples, cpu, remote_cpu


def _row(
    key: str,
    title: str,
    metric: str,
    scale: float,
    measured: tuple[Samples, Samples, Samples],
    **extra: Any,
) -> dict[str, Any]:
    factor = 1.0 if metric == "total_s" else 1e6
    samples, cpu, remote_cpu = measured
    return {
        "key": key,
        "title": title,
        "metric": metric,
        "scale": scale,
        "value": {s: statistics.median(v) / scale * factor for s, v in samples.items()},
        "min_value": {s: min(v) / scale * factor for s, v in samples.items()},
        "max_value": {s: max(v) / scale * factor for s, v in samples.items()},
        "samples": samples,
        "cpu_samples": cpu,
        "workers_cpu_samples": remote_cpu,
        # median CPU seconds per batch or run: this process (all threads), and the cluster's workers
        "cpu_s": {s: statistics.median(v) for s, v in cpu.items()},
        "workers_cpu_s": {s: statistics.median(v) for s, v in remote_cpu.items()},
        **extra,
    }


def measure_batch(
    key: str, title: str, metric: str, fns: dict[str, Callable[[], list[Any]]], n: int, repeat: int, client: Any
) -> dict[str, Any]:
    reference: list[Any] = []

    def check(system: str, values: list[Any]) -> None:
        if system == "serial loop" and not reference:
            reference.extend(values)
        if len(values) != n or values != reference:
            got = sum(v for v in values if isinstance(v, int))
            raise RuntimeError(f"{key}, {system}: {len(values)} values summing to {got}, not {n} and {sum(reference)}")

    measured = _interleaved(fns, repeat, check, client)
    return _row(key, title, metric, 1.0 if metric == "total_s" else n, measured, items=n, checksum=sum(reference))


def _check_on_cluster(client: Any) -> None:
    """The dask batch and the dask steps run in the worker processes, not in this one."""
    me = os.getpid()
    workers = set(client.run(os.getpid).values())
    flow = Flow.from_source("score = worker_pid(row)\n", name="where", namespace={"worker_pid": worker_pid})
    rows = [{"row": i} for i in range(40)]
    batch_pids = {r.values["score"] for r in flow.batch(rows, executor="dask", progress=False)}
    steps = Flow.from_source(
        "".join(f"p{i} = worker_pid()\n" for i in range(8)),
        name="where_steps",
        namespace={"worker_pid": worker_pid},
        executor="dask",
        cache=False,
    ).run()
    step_pids = set(steps.outputs.values())
    if me in batch_pids | step_pids or not (batch_pids | step_pids) <= workers:
        raise RuntimeError(f"dask rows ran in {batch_pids}, steps in {step_pids}; the workers are {workers}")


def measure(repeat: int, quick: bool) -> dict[str, Any]:
    """Start the cluster (timed on its own), then the three rows; the cluster is left running (close_all())."""
    missing = available()
    if missing is not None:
        return {"skipped": missing, "rows": []}
    from flowmagic.backends import dask as backend

    n_cpu, n_noop = sizes(quick)
    t0 = time.perf_counter()
    remote = backend.connect("dask")
    startup = time.perf_counter() - t0
    client, slots = remote.client, remote.slots

    warm = Flow.from_source("score = crunch(row)\n", name="warm", namespace={"crunch": crunch}, cache=False)
    t0 = time.perf_counter()
    warm.batch([{"row": i} for i in range(4 * slots)], executor="dask", progress=False)
    first_batch = time.perf_counter() - t0
    _check_on_cluster(client)

    t0 = time.perf_counter()
    pool = concurrent.futures.ProcessPoolExecutor(slots, mp_context=multiprocessing.get_context("spawn"))
    list(pool.map(crunch, range(4 * slots)))  # both processes up and importing this module
    pool_startup = time.perf_counter() - t0
    try:
        cpu = ("crunch", "score = crunch(row)\n", crunch, crunch_many)
        plus = ("plus_one", "y = x + 1\n", add_one, add_one_many)
        for spec in (cpu, plus):  # warm-up, small: first calls, the flows built on the workers
            for warm_up in batch_runners(*spec, 8 * slots, client, pool, slots).values():
                warm_up()
        cpu_fns = batch_runners(*cpu, n_cpu, client, pool, slots)
        noop_fns = batch_runners(*plus, n_noop, client, pool, slots)
        step_fns = step_runners(client)
        for fn in step_fns.values():
            fn()
        cpu_row = measure_batch(
            "dask_cpu",
            f"{n_cpu:,}-row batch of a CPU-bound step (~1 ms a row)",
            "total_s",
            cpu_fns,
            n_cpu,
            min(repeat, 3),
            client,
        )
        noop_row = measure_batch(
            "dask_rows",
            f"{n_noop:,}-row batch of a no-op step (y = x + 1)",
            "per_row",
            noop_fns,
            n_noop,
            repeat,
            client,
        )

        def steps_ok(system: str, count: int) -> None:
            if count != STEPS:
                raise RuntimeError(f"{STEPS} no-op steps, {system}: {count} results")

        measured = _interleaved(step_fns, repeat, steps_ok, client)
        step_row = _row("dask_steps", f"{STEPS} independent no-op steps, one run", "per_step", STEPS, measured)
    finally:
        pool.shutdown()
    return {
        "slots": slots,
        "cluster": f"LocalCluster, {len(client.nthreads())} worker processes x 1 thread",
        "chunk": {"cpu": default_chunk(n_cpu, slots), "noop": default_chunk(n_noop, slots)},
        "crunch_ms": cpu_row["cpu_s"]["serial loop"] / n_cpu * 1e3,
        "startup_s": startup,
        "first_batch_s": first_batch,
        "pool_startup_s": pool_startup,
        "rows": [cpu_row, noop_row, step_row],
    }


# -- printing -------------------------------------------------------------------------------

UNITS = {"total_s": ("s, whole batch", 3), "per_row": ("µs per row", 1), "per_step": ("µs per step", 1)}
RATIOS = (
    ("flowmagic threads", "flowmagic dask"),
    ("flowmagic dask", "process pool"),
    ("flowmagic dask", "Dask, hand-written"),
)


def _ratio(value: dict[str, float], a: str, b: str) -> str:
    x, y = value.get(a), value.get(b)
    return f"{x / y:.2f}" if x is not None and y else "-"


def report(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return str(result["skipped"])
    header = ["workload", "metric", *SYSTEMS, *(f"{a} ÷ {b}" for a, b in RATIOS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in result["rows"]:
        label, decimals = UNITS[r["metric"]]
        v = r["value"]
        cells = [f"{v[s]:.{decimals}f}" if s in v else "-" for s in SYSTEMS]
        lines.append("| " + " | ".join([r["title"], label, *cells, *(_ratio(v, a, b) for a, b in RATIOS)]) + " |")
    lines += ["", "| workload (min – max of the repeats) | " + " | ".join(SYSTEMS) + " |", "|" + "---|" * 6]
    for r in result["rows"]:
        decimals = UNITS[r["metric"]][1]
        lo, hi = r["min_value"], r["max_value"]
        spread = [f"{lo[s]:.{decimals}f} – {hi[s]:.{decimals}f}" if s in lo else "-" for s in SYSTEMS]
        lines.append("| " + " | ".join([r["title"], *spread]) + " |")
    lines += [
        "",
        "| workload (median CPU: this process + the workers, unit as above) | " + " | ".join(SYSTEMS) + " |",
        "|" + "---|" * 6,
    ]
    for r in result["rows"]:
        decimals = UNITS[r["metric"]][1]
        factor = (1.0 if r["metric"] == "total_s" else 1e6) / r["scale"]
        here, there = r["cpu_s"], r["workers_cpu_s"]
        cells = [
            "-"
            if s not in here
            else f"{here[s] * factor:.{decimals}f} + "
            + ("?" if s == "process pool" else f"{there[s] * factor:.{decimals}f}")
            for s in SYSTEMS
        ]
        lines.append("| " + " | ".join([r["title"], *cells]) + " |")
    cpu = result["rows"][0]
    speed_up = cpu["value"]["flowmagic threads"] / cpu["value"]["flowmagic dask"]
    there = cpu["workers_cpu_s"]
    extra = (there["flowmagic dask"] - there["Dask, hand-written"]) / cpu["items"] * 1e6
    lines += [
        "",
        f"Cluster: {result['cluster']} (flowmagic.backends.dask.connect('dask')); start-up "
        f"{result['startup_s']:.2f} s, then its first batch ({4 * result['slots']} rows) "
        f"{result['first_batch_s']:.2f} s, neither in the rows above. Process pool ({result['slots']} spawned "
        f"processes) start-up {result['pool_startup_s']:.2f} s, not timed either.",
        f"CPU-bound batch: threads ÷ dask = {speed_up:.2f} (dask {'faster' if speed_up > 1 else 'not faster'}); "
        f"crunch() took {result['crunch_ms']:.2f} ms of CPU a call in the serial loop; chunks of "
        f"{result['chunk']['cpu']} rows ({result['chunk']['noop']} in the no-op batch). "
        f"On the workers, flowmagic dask used {extra:.0f} µs of CPU a row more than hand-written Dask "
        "(the same chunks, on the same cluster).",
        f"Every result checked: values in row order equal the serial loop's (sum {cpu['checksum']:,}).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dask_batch", description="Only the Dask executor rows.")
    p.add_argument("--quick", action="store_true", help="small sizes and 1 repeat")
    p.add_argument("--repeat", type=int, default=None, help="repeats per system (default 5; 1 with --quick)")
    args = p.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 5)
    from flowmagic.backends.dask import close_all

    started = time.perf_counter()
    try:
        result = measure(repeat, args.quick)
    finally:
        close_all()
    print(report(result))
    print()
    print(f"took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
