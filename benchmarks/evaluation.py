"""Evaluation rows: what ``flow.evaluate`` costs per run, and how well it fills the workers.

* overhead: 1,000 examples x 2 variants of a three-step flow of no-op tools, one trivial scorer,
  32 runs at once (``cache=False``, so every run runs). The row is µs per run (wall time of the
  whole evaluation / 2,000). The thread-pool baseline (:func:`.baselines.run_threadpool`, the
  suite's own) runs the same flows with plain functions as steps: one graph holding every
  (variant, example)'s three steps and its scorer, on one pool of 32 threads (the evaluation's
  limit), so the pool is built once, as the evaluation's workers are. Beside it, and not in
  the ratio, the least any runner could do: one plain call per run (the three functions and
  the scorer in a row) submitted to a ``ThreadPoolExecutor(32)``, nothing scheduled or
  recorded.
* llm makespan: 1,000 x 2 runs of a one-``llm``-step flow against the local OpenAI-compatible
  server that answers in 0.2 s, 32 runs at once; the row is the makespan over the ideal,
  ``ceil(runs / 32) x 0.2 s``. (``--quick``: 100 examples.)
"""

from __future__ import annotations

import math
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flowmagic import Flow

from .baselines import Graph, Node, run_threadpool
from .llm import DELAY_S, MODEL, openai_env
from .llm_server import LLMServerProcess

WORKERS = 32
#: The overhead row's extra column: one plain call per run, nothing scheduled or recorded.
ONE_CALL = "one call per run"
VARIANTS = {"a": {"k": 1}, "b": {"k": 2}}


def a(x: int, k: int) -> int:
    return x + k


def b(y: int) -> int:
    return y * 2


def c(z: int) -> int:
    return z - 1


def score(w: int) -> bool:
    return w >= 0


def right(example: dict[str, Any], outputs: Any) -> bool:
    return score(outputs.final)


def graph(data: list[dict[str, Any]]) -> Graph:
    """Every (variant, example)'s run of the flow as four nodes of one graph: its steps, its scorer."""
    nodes: Graph = {}
    for variant, values in VARIANTS.items():
        for i, row in enumerate(data):
            run = f"{variant}/{i}/"
            nodes[run + "y"] = Node(a, (row["x"], values["k"]))
            nodes[run + "z"] = Node(b, deps=(run + "y",))
            nodes[run + "w"] = Node(c, deps=(run + "z",))
            nodes[run + "right"] = Node(score, deps=(run + "w",))
    return nodes


def overhead(repeat: int, quick: bool) -> dict[str, Any]:
    n = 100 if quick else 1000
    data = [{"x": i} for i in range(n)]
    flow = Flow.from_source(
        "y = a(x, k)\nz = b(y)\nw = c(z)", name="eval-bench", namespace={"a": a, "b": b, "c": c}, cache=False
    )
    pool = ThreadPoolExecutor(WORKERS)

    def plain(x: int, k: int) -> bool:
        return score(c(b(a(x, k))))

    def fm() -> int:
        ev = flow.evaluate(data, scorers={"right": right}, variants=VARIANTS, workers=WORKERS, progress=False)
        if ev.status != "succeeded" or ev.cell("a", "right").mean != 1.0:
            raise RuntimeError(f"the evaluation row ended {ev.status}")
        return len(ev.rows)

    def threadpool() -> int:
        values = run_threadpool(graph(data), WORKERS)
        return sum(1 for name, value in values.items() if name.endswith("/right") and value)

    def one_call() -> int:
        futures = [pool.submit(plain, row["x"], v["k"]) for v in VARIANTS.values() for row in data]
        return sum(f.result() for f in futures)

    fns = {"flowmagic": fm, "thread-pool": threadpool, ONE_CALL: one_call}
    for fn in fns.values():
        fn()  # warm-up
    samples: dict[str, list[float]] = {s: [] for s in fns}
    runs = n * len(VARIANTS)
    for _ in range(max(repeat, 3)):
        for system, fn in fns.items():
            t0 = time.perf_counter()
            if fn() != runs:
                raise RuntimeError(f"{system}: not every run came back")
            samples[system].append(time.perf_counter() - t0)
    pool.shutdown()
    return {
        "key": "eval_overhead",
        "title": f"evaluation, {n:,} examples x 2 variants of a 3-step no-op flow",
        "metric": "per_run",
        "scale": float(runs),
        "value": {s: statistics.median(v) / runs * 1e6 for s, v in samples.items()},
        "samples": samples,
    }


def llm_makespan(server: LLMServerProcess, repeat: int, quick: bool) -> dict[str, Any]:
    n = 100 if quick else 1000
    data = [{"i": i} for i in range(n)]
    runs = n * len(VARIANTS)
    ideal = math.ceil(runs / WORKERS) * DELAY_S
    samples: list[float] = []
    with openai_env(server.base_url):
        flow = Flow.from_source(
            'answer = llm("Question {i} with {k}: say something short.")',
            name="eval-llm-bench",
            model=MODEL,
            cache=False,
        )
        for attempt in range(max(1, min(repeat, 3)) + 1):  # the first: warm-up
            before = server.requests()
            t0 = time.perf_counter()
            ev = flow.evaluate(
                data,
                scorers={"any": lambda ex, out: bool(out.final)},
                variants=VARIANTS,
                workers=WORKERS,
                progress=False,
            )
            wall = time.perf_counter() - t0
            sent = server.requests() - before
            if ev.status != "succeeded" or sent != runs:
                raise RuntimeError(f"the evaluation llm row: {ev.status}, {sent} requests for {runs} runs")
            if attempt:
                samples.append(wall)
    return {
        "key": "eval_llm",
        "title": f"evaluation, {n:,} examples x 2 variants, one 0.2 s llm step, {WORKERS} at once",
        "metric": "makespan",
        "scale": ideal,
        "value": {"flowmagic": statistics.median(samples) / ideal},
        "samples": {"flowmagic": samples},
    }
