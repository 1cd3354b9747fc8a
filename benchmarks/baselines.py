"""Two plain, hand-written DAG schedulers to measure flowmagic against.

Both take the same graph: ``{name: Node(fn, args, deps)}``; a node runs
``fn(*args, *parent_values)`` once all of ``deps`` are done, and the run returns
``{name: value}``. Each run builds its own pool / event loop, as
``flowmagic.Flow.run`` does, so the set-up cost is on both sides of the ratio.

* :func:`run_threadpool` -- ``concurrent.futures.ThreadPoolExecutor`` (32
  workers); a node is submitted from its last parent's done-callback, so a
  completion costs O(children), never O(pending) as repeated
  ``wait(FIRST_COMPLETED)`` over a large pending set would.
* :func:`run_asyncio` -- one ``asyncio`` task per node, created up front; each
  task awaits its parents' tasks, then awaits ``fn(...)`` (an ``async def``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any


@dataclass(frozen=True)
class Node:
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    deps: tuple[str, ...] = ()


Graph = dict[str, Node]


def _children(graph: Graph) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {n: [] for n in graph}
    for name, node in graph.items():
        for d in node.deps:
            children[d].append(name)
    return children


def run_threadpool(graph: Graph, workers: int = 32) -> dict[str, Any]:
    """Topological scheduling on a thread pool, driven by done-callbacks."""
    children = _children(graph)
    remaining = {n: len(node.deps) for n, node in graph.items()}
    values: dict[str, Any] = {}
    lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []
    left = [len(graph)]

    if not graph:
        return values

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="baseline") as pool:

        def submit(name: str) -> None:
            node = graph[name]
            args = (*node.args, *(values[d] for d in node.deps))
            fut = pool.submit(node.fn, *args)
            fut.add_done_callback(partial(finished, name))

        def finished(name: str, fut: Future[Any]) -> None:
            error = fut.exception()
            if error is not None:
                errors.append(error)
                done.set()
                return
            ready = []
            with lock:
                values[name] = fut.result()
                left[0] -= 1
                for child in children[name]:
                    remaining[child] -= 1
                    if remaining[child] == 0:
                        ready.append(child)
                if left[0] == 0:
                    done.set()
            for child in ready:
                submit(child)

        roots = [n for n, r in remaining.items() if r == 0]
        for name in roots:
            submit(name)
        done.wait()
    if errors:
        raise errors[0]
    return values


async def arun_asyncio(graph: Graph) -> dict[str, Any]:
    """One task per node; each awaits its parents' tasks, then its own coroutine."""
    tasks: dict[str, asyncio.Task[Any]] = {}

    async def node_task(node: Node) -> Any:
        parents = [await tasks[d] for d in node.deps]
        return await node.fn(*node.args, *parents)

    for name, node in graph.items():
        tasks[name] = asyncio.ensure_future(node_task(node))
    results = await asyncio.gather(*tasks.values())
    return dict(zip(tasks, results, strict=True))


def run_asyncio(graph: Graph) -> dict[str, Any]:
    """:func:`arun_asyncio` on a fresh event loop (``asyncio.run``)."""
    return asyncio.run(arun_asyncio(graph))
