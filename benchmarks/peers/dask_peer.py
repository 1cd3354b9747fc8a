"""Dask (``dask.delayed``, default threaded scheduler): every workload as a graph of delayed calls.

Mapping:

* A DAG: ``delayed(step)(name, seconds, *parents, dask_key_name=name)``, the
  parents being the delayed values of the steps it depends on. The graph is
  built once; a run is ``dask.compute(*finals)`` over the steps nothing else
  reads (the results a user asks for; Dask runs every ancestor once). Nothing
  is passed to ``compute``: the default scheduler for delayed values is the
  local thread pool with one thread per CPU (2 on this machine), which is the
  worker cap the fan-out rows show.
* LLM calls: one delayed call per request of the official ``openai`` client
  (one ``OpenAI`` instance shared by all calls, made once), computed with
  ``num_workers`` = the workload's workers (32).
* A map of N items: ``[delayed(item)(x) for x in items]`` and one
  ``dask.compute``. Timed from building the delayed calls to the N results.

The threaded scheduler passes Python objects between threads (no
serialisation); every task still goes through Dask's graph building,
tokenising and scheduling loop, which is its per-step cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask
from dask import delayed

from .common import DagTask, LlmTask, MapTask, Recorder


def dag(task: DagTask, variant: str, rec: Recorder) -> Callable[[], object]:
    def step(name: str, seconds: float | None, *parents: Any) -> str:
        return rec.run(name, seconds)

    values: dict[str, Any] = {}
    for s in task.steps:
        parents = [values[d] for d in s.deps]
        values[s.name] = delayed(step, pure=False)(s.name, s.seconds, *parents, dask_key_name=s.name)
    finals = [values[n] for n in task.finals]
    return lambda: dask.compute(*finals)


def llm(task: LlmTask, variant: str) -> Callable[[], int]:
    from openai import OpenAI

    client = OpenAI(base_url=task.base_url, api_key=task.api_key)

    def ask(i: int) -> str:
        response = client.chat.completions.create(
            model=task.model, messages=[{"role": "user", "content": task.prompt(i)}]
        )
        return response.choices[0].message.content or ""

    calls = [delayed(ask, pure=False)(i) for i in range(task.calls)]
    return lambda: len(dask.compute(*calls, num_workers=task.workers))


def map_items(task: MapTask, variant: str) -> Callable[[], int]:
    def item(x: int) -> int:
        return x

    def run() -> int:
        parts = [delayed(item, pure=False)(x) for x in range(task.items)]
        return len(dask.compute(*parts))

    return run
