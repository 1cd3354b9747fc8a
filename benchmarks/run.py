"""``python -m benchmarks.run [--quick] [--repeat N] [--json OUT]``

Compares flowmagic with a plain thread-pool scheduler and a plain asyncio
scheduler (:mod:`benchmarks.baselines`) on the same DAGs
(:mod:`benchmarks.workloads`), and prints a markdown table of medians.

Every number is ``time.perf_counter()`` around one whole run call:

* flowmagic: ``flow.run()`` (it starts a private event-loop thread and a thread
  pool each time; that is part of its cost). Parsing (``Flow.from_source``) is
  done once, outside the timing, and reported separately.
* thread-pool: ``run_threadpool(graph)``, pool creation and shutdown included.
* asyncio: ``asyncio.run(...)``, loop creation and shutdown included.

"flowmagic" runs sync step functions (on its thread pool); "flowmagic async"
runs the same DSL with ``async def`` step functions (on its event loop).
Repeats are interleaved (round-robin over the systems) to spread drift evenly.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import flowmagic
from flowmagic import Flow

from .baselines import Node, run_asyncio, run_threadpool
from .workloads import ASYNC_NS, SYNC_NS, Workload, all_workloads, anoop, noop

WORKERS = 32
SYSTEMS = ("flowmagic", "flowmagic async", "thread-pool", "asyncio")
MAKESPAN_TARGET = 1.05  # makespan within 5 % of the critical path
PER_STEP_TARGET = 2.0  # per-step time within 2x the baseline


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or "-",
        "cpu_count": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "flowmagic": flowmagic.__version__,
    }


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "-"


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, process CPU seconds (all threads, user + system) and the result."""
    gc.collect()  # outside the timing: every run starts from the same heap state
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    return wall, time.process_time() - c0, result


def _check_flow(run: Any, w: Workload) -> None:
    if run.status != "succeeded":
        raise RuntimeError(f"flowmagic run of {w.key} ended {run.status}: {run.failed()}")
    if w.dsl_override is None and len(run.outputs) != w.size:
        raise RuntimeError(f"flowmagic run of {w.key} produced {len(run.outputs)} of {w.size} outputs")


def _check_graph(values: dict[str, Any], w: Workload) -> None:
    if len(values) != w.size:
        raise RuntimeError(f"baseline run of {w.key} produced {len(values)} of {w.size} values")


def runners(w: Workload) -> tuple[dict[str, Callable[[], Any]], dict[str, float]]:
    """One zero-argument callable per system, and flowmagic's parse times."""
    text = w.dsl()
    parse: dict[str, float] = {}
    t0 = time.perf_counter()
    fm_sync = Flow.from_source(text, name=w.key, namespace=SYNC_NS, workers=WORKERS, cache=False)
    parse["flowmagic"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fm_async = Flow.from_source(text, name=w.key, namespace=ASYNC_NS, workers=WORKERS, cache=False)
    parse["flowmagic async"] = time.perf_counter() - t0
    g_sync, g_async = w.graph(asynchronous=False), w.graph(asynchronous=True)
    return {
        "flowmagic": fm_sync.run,
        "flowmagic async": fm_async.run,
        "thread-pool": lambda: run_threadpool(g_sync, WORKERS),
        "asyncio": lambda: run_asyncio(g_async),
    }, parse


def measure(w: Workload, repeat: int, warmup: int) -> dict[str, Any]:
    fns, parse = runners(w)
    samples: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    cpu: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    inner: list[float] = []  # flowmagic's own run.wall_time (inside execute())
    for _ in range(warmup):
        for s in SYSTEMS:
            fns[s]()
    for _ in range(repeat):
        for s in SYSTEMS:
            dt, ct, result = _timed(fns[s])
            cpu[s].append(ct)
            if s.startswith("flowmagic"):
                _check_flow(result, w)
                if s == "flowmagic":
                    inner.append(result.wall_time)
            else:
                _check_graph(result, w)
            samples[s].append(dt)
    medians = {s: statistics.median(v) for s, v in samples.items()}
    factor = 1.0 if w.metric == "makespan" else 1e6  # per_step values are in µs
    values = {s: m / w.scale * factor for s, m in medians.items()}
    return {
        "key": w.key,
        "title": w.title,
        "metric": w.metric,
        "scale": w.scale,
        "steps": w.size,
        "samples_s": samples,
        "cpu_samples_s": cpu,
        "median_s": medians,
        "value": values,
        "min_value": {s: min(v) / w.scale * factor for s, v in samples.items()},
        "max_value": {s: max(v) / w.scale * factor for s, v in samples.items()},
        "cpu_value": {s: statistics.median(v) / w.scale * factor for s, v in cpu.items()},
        "flowmagic_inner_wall_median_s": statistics.median(inner),
        "flowmagic_parse_s": parse,
        "dsl_lines": w.dsl().count("\n"),
    }


def _one_step() -> dict[str, Callable[[], Any]]:
    """A 1-step no-op flow / graph per system."""
    fm_sync = Flow.from_source("a = noop()\n", name="one", namespace=SYNC_NS, workers=WORKERS, cache=False)
    fm_async = Flow.from_source("a = noop()\n", name="one", namespace=ASYNC_NS, workers=WORKERS, cache=False)
    g_sync = {"a": Node(noop)}
    g_async = {"a": Node(anoop)}
    return {
        "flowmagic": fm_sync.run,
        "flowmagic async": fm_async.run,
        "thread-pool": lambda: run_threadpool(g_sync, WORKERS),
        "asyncio": lambda: run_asyncio(g_async),
    }


def warm_up() -> None:
    """Run every system once, so lazy imports and first-call costs are not timed."""
    for fn in _one_step().values():
        fn()


def overhead(repeat: int) -> dict[str, Any]:
    """The fixed cost of one run: a 1-step no-op flow / graph."""
    fns = _one_step()
    for s in SYSTEMS:  # warm-up
        fns[s]()
    samples: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    inner: list[float] = []
    for _ in range(repeat):
        for s in SYSTEMS:
            dt, _, result = _timed(fns[s])
            samples[s].append(dt)
            if s == "flowmagic":
                inner.append(result.wall_time)
    return {
        "samples_s": samples,
        "median_s": {s: statistics.median(v) for s, v in samples.items()},
        "flowmagic_inner_wall_median_s": statistics.median(inner),
    }


# -- printing ---------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def _fmt(metric: str, v: float) -> str:
    return f"{v:.3f}" if metric == "makespan" else f"{v:.1f}"


def _metric_label(r: dict[str, Any]) -> str:
    if r["metric"] == "makespan":
        return f"makespan / {r['scale']:g} s"
    return "µs per step"


def results_table(results: list[dict[str, Any]]) -> str:
    header = [
        "workload",
        "metric",
        *SYSTEMS,
        "flowmagic ÷ thread-pool",
        "flowmagic ÷ asyncio",
        "flowmagic async ÷ asyncio",
    ]
    rows = []
    for r in results:
        v = r["value"]
        rows.append(
            [
                r["title"],
                _metric_label(r),
                *(_fmt(r["metric"], v[s]) for s in SYSTEMS),
                f"{v['flowmagic'] / v['thread-pool']:.2f}",
                f"{v['flowmagic'] / v['asyncio']:.2f}",
                f"{v['flowmagic async'] / v['asyncio']:.2f}",
            ]
        )
    return _table(header, rows)


def spread_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        rows.append(
            [
                r["title"],
                *(f"{_fmt(r['metric'], r['min_value'][s])} – {_fmt(r['metric'], r['max_value'][s])}" for s in SYSTEMS),
            ]
        )
    return _table(["workload (min – max of the repeats)", *SYSTEMS], rows)


def cpu_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        if r["metric"] != "per_step":
            continue
        c = r["cpu_value"]
        rows.append([r["title"], *(f"{c[s]:.1f}" for s in SYSTEMS)])
    return _table(["workload (process CPU µs per step)", *SYSTEMS], rows)


def overhead_table(oh: dict[str, Any]) -> str:
    m = oh["median_s"]
    rows = [[s, f"{m[s] * 1e6:.0f}"] for s in SYSTEMS]
    return _table(["system (1 no-op step)", "µs per run"], rows)


def targets(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        v = r["value"]
        if r["metric"] == "makespan":
            for s in ("flowmagic", "flowmagic async"):
                ok = v[s] <= MAKESPAN_TARGET
                lines.append(
                    f"- {r['title']}, {s}: makespan {v[s]:.3f}x the critical path "
                    f"(target <= {MAKESPAN_TARGET:.2f}): {'met' if ok else 'MISSED'}"
                )
        else:
            for s, base in (("flowmagic", "thread-pool"), ("flowmagic async", "asyncio")):
                ratio = v[s] / v[base]
                ok = ratio <= PER_STEP_TARGET
                lines.append(
                    f"- {r['title']}, {s}: {ratio:.2f}x {base} "
                    f"(target <= {PER_STEP_TARGET:g}x): {'met' if ok else 'MISSED'}"
                )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (100 steps) and 1 repeat, for CI smoke")
    p.add_argument(
        "--repeat", type=int, default=None, help="repeats per system and workload (default 5; 1 with --quick)"
    )
    p.add_argument("--json", metavar="OUT", help="also write every sample and the machine to this JSON file")
    args = p.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 5)
    if repeat < 1:
        p.error("--repeat must be >= 1")

    started = time.perf_counter()
    info = machine()
    print("# flowmagic benchmark")
    print()
    print(
        f"machine: {info['platform']} ({info['machine']}), {info['cpu_count']} CPUs; "
        f"Python {info['python']}; flowmagic {info['flowmagic']}"
    )
    print(f"load average at start: {_load()}")
    print(
        f"mode: {'quick' if args.quick else 'full'}; median of {repeat} repeat(s) per cell; "
        f"workers={WORKERS}; timing = perf_counter around one whole run call"
    )
    print()
    sys.stdout.flush()

    warm_up()
    results = []
    for w in all_workloads(args.quick):
        warmup = 1 if w.metric == "per_step" else 0
        results.append(measure(w, repeat, warmup))
    oh = overhead(max(5, repeat * 10))
    from . import cache, view  # the live view: loads ipywidgets

    view_cost = view.measure(repeat, n=200 if args.quick else 1000)
    cache_cost = cache.measure(repeat)

    print(results_table(results))
    print()
    print(
        "makespan rows: median wall time / critical path (1.000 is ideal). "
        "µs rows: median wall time / step count (fixed per-run overhead not subtracted)."
    )
    print()
    print("## Spread")
    print()
    print(spread_table(results))
    print()
    print("## CPU time (time.process_time, all threads, user + system) on the no-op rows")
    print()
    print(cpu_table(results))
    print()
    print("## Fixed per-run overhead (1-step no-op flow)")
    print()
    print(overhead_table(oh))
    print()
    inner = oh["flowmagic_inner_wall_median_s"] * 1e6
    print(
        f"flowmagic run.wall_time (inside execute(), without the loop thread start/stop) for that flow: {inner:.0f} µs"
    )
    print()
    print("## flowmagic parse time (Flow.from_source, not in the timings above)")
    print()
    print(
        _table(
            ["workload", "steps", "ms"],
            [[r["title"], str(r["steps"]), f"{r['flowmagic_parse_s']['flowmagic'] * 1e3:.1f}"] for r in results],
        )
    )
    print()
    print("## The live view's cost (the same flow with and without the view)")
    print()
    print(view.report(view_cost))
    print()
    print("## The step cache: rerunning an unchanged cell")
    print()
    print(cache.report(cache_cost))
    print()
    print("## Targets")
    print()
    print("\n".join(targets(results)))
    elapsed = time.perf_counter() - started
    print()
    print(f"benchmark took {elapsed:.1f} s; load average at end: {_load()}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": info,
                    "repeat": repeat,
                    "quick": args.quick,
                    "workers": WORKERS,
                    "results": results,
                    "overhead": oh,
                    "view": view_cost,
                    "cache": cache_cost,
                    "elapsed_s": elapsed,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
