"""``python -m benchmarks.run [--quick] [--peers | --no-peers] [--repeat N] [--json OUT]``

Compares flowmagic with a plain thread-pool scheduler and a plain asyncio
scheduler (:mod:`benchmarks.baselines`) on the same DAGs
(:mod:`benchmarks.workloads`), and, in the same table, with its peers
(LangGraph, WayFlow, LLMFlows, Dask: :mod:`benchmarks.peers`), and prints a
markdown table of medians. The Dask executor (a local cluster of worker
processes) has its own table, beside a serial loop and a process pool
(:mod:`benchmarks.dask_batch`).

The full run measures the peers, each in its own virtual environment under
``benchmarks/.peers-venv/`` (created on first use) and in its own processes;
``--no-peers`` leaves them out. ``--quick`` is the CI smoke run: small sizes,
one repeat, no peers unless ``--peers`` is given too.

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
from .llm_server import LLMServerProcess
from .peers import runner
from .peers.env import CAVEATS, COLUMNS, KIND
from .workloads import ASYNC_NS, SYNC_NS, Workload, all_workloads, anoop, noop, slow_fast, wide_fan_out

WORKERS = 32
SYSTEMS = ("flowmagic", "flowmagic async", "thread-pool", "asyncio")
MAKESPAN_TARGET = 1.03  # makespan within 3 % of the critical path
PER_STEP_US = {"wide": 15.0, "chain": 25.0}  # µs per step, sync and async steps alike


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


DECIMALS = {"makespan": 3, "per_step": 1, "per_run": 1, "gap_ms": 1, "total_s": 3, "peak_mb": 1, "ms": 1}


def _fmt(metric: str, v: float) -> str:
    return f"{v:.{DECIMALS.get(metric, 3)}f}"


def _cell(metric: str, v: float | str | None) -> str:
    """A number, "-" for not measured, or a word saying why there is no number."""
    if v is None:
        return "-"
    return v if isinstance(v, str) else _fmt(metric, v)


def _metric_label(r: dict[str, Any]) -> str:
    if r["metric"] == "makespan":
        return f"makespan / {r['scale']:g} s"
    return {
        "per_step": "µs per step",
        "per_run": "µs per run",
        "gap_ms": "ms from fast's end to its start",
        "total_s": "s, build + run",
        "peak_mb": "MB peak, tracemalloc",
        "ms": "ms, median",
    }[r["metric"]]


def _ratio(r: dict[str, Any], a: str, b: str) -> str:
    """a / b, when both are numbers and a ratio means something (not for the ms gaps near 0)."""
    v = r["value"]
    x, y = v.get(a), v.get(b)
    if r["metric"] == "gap_ms" or not isinstance(x, float | int) or not isinstance(y, float | int) or y == 0:
        return "-"
    return f"{x / y:.2f}"


def _best_peer(r: dict[str, Any], columns: tuple[str, ...], kind: str) -> tuple[str, float] | None:
    """The lowest number among the peer columns of one kind ("sync" or "async"), caveated cells left out."""
    numbers = [
        (c, v)
        for c in columns
        if KIND[c] == kind and (c, r["key"]) not in CAVEATS and isinstance(v := r["value"].get(c), float | int)
    ]
    return min(numbers, key=lambda cv: cv[1]) if numbers else None


#: flowmagic's column compared with each kind of peer: sync steps with sync steps, async with async.
VERSUS = (("flowmagic", "sync"), ("flowmagic async", "async"))


def _versus(r: dict[str, Any], peers: tuple[str, ...], system: str, kind: str) -> str:
    best, mine = _best_peer(r, peers, kind), r["value"].get(system)
    if best is None or not best[1] or r["metric"] == "gap_ms" or not isinstance(mine, float | int):
        return "-"
    return f"{mine / best[1]:.2f}"


def results_table(results: list[dict[str, Any]], peers: tuple[str, ...] = ()) -> str:
    header = [
        "workload",
        "metric",
        *SYSTEMS,
        *peers,
        "flowmagic ÷ thread-pool",
        "flowmagic ÷ asyncio",
        "flowmagic async ÷ asyncio",
        *([f"{system} ÷ best {kind} peer" for system, kind in VERSUS] if peers else []),
    ]
    rows = []
    for r in results:
        cells = [_cell(r["metric"], r["value"].get(s)) for s in SYSTEMS]
        cells += [_cell(r["metric"], r["value"].get(c)) + ("*" if (c, r["key"]) in CAVEATS else "") for c in peers]
        rows.append(
            [
                r["title"],
                _metric_label(r),
                *cells,
                _ratio(r, "flowmagic", "thread-pool"),
                _ratio(r, "flowmagic", "asyncio"),
                _ratio(r, "flowmagic async", "asyncio"),
                *([_versus(r, peers, system, kind) for system, kind in VERSUS] if peers else []),
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
        elif r["key"] in PER_STEP_US:
            limit = PER_STEP_US[r["key"]]
            for s in ("flowmagic", "flowmagic async"):
                ok = v[s] < limit
                lines.append(
                    f"- {r['title']}, {s}: {v[s]:.1f} µs per step, {v[s] / v['thread-pool']:.2f}x thread-pool "
                    f"(target < {limit:g} µs): {'met' if ok else 'MISSED'}"
                )
    return lines


# -- the rows added for the side-by-side table, and the peers -------------------------

#: Table order: the sleep shapes, then the no-op rows, then the rest.
ROW_ORDER = (
    "fanout",
    "fanout16",
    "soundtrack",
    "soundtrack_map",
    "slowfast",
    "wide",
    "chain",
    "loop",
    "llm",
    "eval_overhead",
    "eval_llm",
    "map_time",
    "map_memory",
    "import",
    "load_ext",
)


def measure_rows(server: LLMServerProcess, repeat: int, quick: bool) -> list[dict[str, Any]]:
    """The slow/fast gap, the LLM fan-out, the big map and the start-up rows (flowmagic, baselines)."""
    from . import bigmap, evaluation, llm, loops, slowfast, startup

    rows = [slowfast.measure(repeat, WORKERS), loops.measure(repeat, WORKERS), llm.measure(server, repeat, quick)]
    rows += [evaluation.overhead(repeat, quick), evaluation.llm_makespan(server, repeat, quick)]
    rows += bigmap.measure(min(repeat, 3), WORKERS, quick)
    rows += startup.measure(3 if quick else 7)
    return rows


def peer_tasks(workloads: list[Workload], server: LLMServerProcess, repeat: int, quick: bool) -> list[dict[str, Any]]:
    """The same workloads for the peers (the critics-as-a-map row is flowmagic's spelling of soundtrack)."""
    from . import bigmap, llm

    tasks = [runner.dag_task(w) for w in workloads if w.key != "soundtrack_map"]
    calls, workers = llm.sizes(quick)
    tasks.append(runner.llm_task(server.base_url, calls, workers, llm.MODEL, llm.API_KEY))
    tasks.append({**runner.map_task(bigmap.size(quick)), "repeat": min(repeat, 3)})
    return tasks


def peers_report(outcomes: list[runner.Outcome], rows: list[dict[str, Any]]) -> str:
    table = _table(
        ["peer column", "version", "environment", "import, ms"],
        [
            [o.column, o.version or "-", o.status, f"{o.import_ms:.0f}" if o.import_ms is not None else "-"]
            for o in outcomes
        ],
    )
    titles = {r["key"]: r["title"] for r in rows}
    titles["map"] = next((r["title"] for r in rows if r["key"] == "map_time"), "map")
    notes = [n for o in outcomes for n in runner.notes(o, titles)]
    notes += [f"{column}, {titles.get(key, key)} (*): {text}" for (column, key), text in CAVEATS.items()]
    lines = [table, ""]
    if notes:
        lines += ["Notes:", "", *(f"- {n}" for n in notes), ""]
    lines.append(
        "Each peer runs in its own environment (benchmarks/.peers-venv/) and its own processes; "
        "how each workload maps onto each peer: BENCHMARKS.md and benchmarks/peers/."
    )
    return "\n".join(lines)


def more_targets(rows: list[dict[str, Any]], peers: tuple[str, ...]) -> list[str]:
    """The issue's targets for the added rows, and flowmagic against the best peer on every row."""
    from . import bigmap, evaluation, llm, slowfast, startup

    def line(text: str, ok: bool) -> str:
        return f"- {text}: {'met' if ok else 'MISSED'}"

    by_key = {r["key"]: r for r in rows}
    out = []
    gap = by_key["slowfast"]["value"]
    for s in ("flowmagic", "flowmagic async"):
        out.append(
            line(
                f"slow/fast, {s}: starts {gap[s]:.1f} ms after its dependency (target <= {slowfast.TARGET_MS:g} ms)",
                gap[s] <= slowfast.TARGET_MS,
            )
        )
    fm_llm = by_key["llm"]["value"]["flowmagic"]
    out.append(line(f"llm fan-out, flowmagic: {fm_llm:.3f}x ideal (target <= {llm.TARGET:.2f})", fm_llm <= llm.TARGET))
    over = by_key["eval_overhead"]["value"]
    ratio = over["flowmagic"] / over["thread-pool"]
    bare = over["flowmagic"] / over[evaluation.ONE_CALL]
    out.append(
        line(
            f"{by_key['eval_overhead']['title']}: {over['flowmagic']:.0f} µs per run, {ratio:.2f}x thread-pool "
            f"(target <= 1.5x; {bare:.1f}x one plain call per run, {over[evaluation.ONE_CALL]:.0f} µs)",
            ratio <= 1.5,
        )
    )
    eval_llm = by_key["eval_llm"]["value"]["flowmagic"]
    out.append(line(f"{by_key['eval_llm']['title']}: {eval_llm:.3f}x ideal (target <= 1.10)", eval_llm <= 1.10))
    total = by_key["map_time"]["value"]["flowmagic"]
    out.append(
        line(
            f"{by_key['map_time']['title']}, flowmagic: {total:.3f} s (target < {bigmap.TARGET_S:g} s)",
            total < bigmap.TARGET_S,
        )
    )
    load = by_key["load_ext"]["value"]["flowmagic"]
    out.append(
        line(
            f"%load_ext flowmagic: {load:.0f} ms (target < {startup.LOAD_EXT_TARGET_MS:.0f} ms)",
            load < startup.LOAD_EXT_TARGET_MS,
        )
    )
    for r in rows if peers else []:
        for system, kind in VERSUS:
            best, mine = _best_peer(r, peers, kind), r["value"].get(system)
            if best is None or not isinstance(mine, float | int) or r["metric"] == "gap_ms":
                continue  # the gaps have their own target: sub-millisecond differences are noise
            out.append(
                line(
                    f"{r['title']}: {system} {_fmt(r['metric'], mine)} vs best {kind} peer {best[0]} "
                    f"{_fmt(r['metric'], best[1])} (target: lower)",
                    mine < best[1],
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="small sizes and 1 repeat, for CI smoke; no peers unless --peers"
    )
    p.add_argument(
        "--repeat", type=int, default=None, help="repeats per system and workload (default 5; 1 with --quick)"
    )
    p.add_argument("--json", metavar="OUT", help="also write every sample and the machine to this JSON file")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--peers",
        action="store_true",
        default=None,
        help="measure the peers too (the default in a full run; creates their environments on first use)",
    )
    which.add_argument("--no-peers", dest="peers", action="store_false", help="leave the peers out of a full run")
    args = p.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 5)
    if repeat < 1:
        p.error("--repeat must be >= 1")
    with_peers = args.peers if args.peers is not None else not args.quick

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
    workloads = all_workloads(args.quick)
    workloads.insert(1, wide_fan_out())
    results = []
    for w in workloads:
        warmup = 1 if w.metric == "per_step" else 0
        results.append(measure(w, repeat, warmup))
    oh = overhead(max(5, repeat * 10))
    from . import cache, view  # the live view: loads ipywidgets
    from .llm import DELAY_S

    view_cost = view.measure(repeat, n=200 if args.quick else 1000)
    cache_cost = cache.measure(repeat)

    outcomes: list[runner.Outcome] = []
    with LLMServerProcess(DELAY_S) as server:
        rows = measure_rows(server, repeat, args.quick)
        if with_peers:
            tasks = peer_tasks([*workloads, slow_fast()], server, repeat, args.quick)
            outcomes = runner.measure(
                tasks,
                repeat,
                import_samples=3 if args.quick else 7,
                task_timeout=120 if args.quick else 900,
                log=lambda text: print(text, file=sys.stderr, flush=True),
            )
    from flowmagic.backends.dask import close_all

    from . import dask_batch

    try:  # last: its worker processes never run beside the other rows
        dask_cost = dask_batch.measure(repeat, args.quick)
    finally:
        close_all()
    table = sorted([*results, *rows], key=lambda r: ROW_ORDER.index(r["key"]))
    for o in outcomes:
        for r in table:
            r["value"][o.column] = runner.cell_value(o, r["key"], r["metric"], r["scale"])
    peers = COLUMNS if with_peers else ()

    print(results_table(table, peers))
    print()
    print(
        "makespan rows: median wall time / critical path (1.000 is ideal); the llm row: over "
        "ceil(calls / workers) x 0.2 s. µs rows: median wall time / step count (fixed per-run overhead "
        "not subtracted). slow/fast: ms from the fast branch's end to the start of the step that needs "
        "only it. map rows: from the item list to the results, building included; peak of traced "
        "allocations in a separate run. import rows: fresh processes. '-': not applicable."
    )
    print()
    print("## Peers")
    print()
    if with_peers:
        print(peers_report(outcomes, table))
    else:
        print("peers: not measured in --quick (run with --peers)" if args.quick else "peers: not measured (--no-peers)")
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
    print("## The Dask executor: batches and steps on a local cluster of worker processes")
    print()
    print(dask_batch.report(dask_cost))
    print()
    print("## Targets")
    print()
    print("\n".join(targets(results) + more_targets(table, peers)))
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
                    "rows": rows,
                    "peers": [
                        {
                            "column": o.column,
                            "status": o.status,
                            "version": o.version,
                            "import_ms": o.import_ms,
                            "results": o.results,
                        }
                        for o in outcomes
                    ],
                    "overhead": oh,
                    "view": view_cost,
                    "cache": cache_cost,
                    "dask": dask_cost,
                    "elapsed_s": elapsed,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
