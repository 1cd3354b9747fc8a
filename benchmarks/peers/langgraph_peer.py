"""LangGraph (``langgraph`` 1.2): every workload as a ``StateGraph`` run with ``invoke``.

Mapping:

* A DAG: one node per step. The state is one ``values`` dict merged by an
  ``operator.or_`` reducer: a node reads its parents' values from it and
  returns ``{"values": {name: value}}``, so nodes that run together never
  conflict. (One state key per step is the other common style; with 1,000 keys
  every superstep costs LangGraph more: about 4x per step on the chain here.)
  Edges follow the dependencies: ``START -> root``, ``parent -> child`` for a step
  with one parent, ``add_edge([p1, p2], child)`` for a step with several (the
  child waits for all of them). Steps are sync functions. The graph is compiled once; a run is
  ``graph.invoke(inputs, config)`` with no checkpointer and ``recursion_limit``
  raised above the step count (a chain of 1,000 is 1,000 supersteps, over the
  default limit of 25). ``max_concurrency`` is left at its default, so sync
  nodes run on a ``ThreadPoolExecutor`` of Python's default size,
  ``min(32, CPUs + 4)``: 6 threads on 2 cores.
* LLM calls: LangGraph's map-reduce. A conditional edge from ``START`` returns
  one ``Send("ask", {"i": i})`` per call; ``ask`` calls the official ``openai``
  client (one ``OpenAI`` instance shared by all calls, made once) and appends
  the answer to an ``operator.add`` list. ``max_concurrency`` = the workload's
  workers (32). LangGraph has no LLM client of its own; LangChain's
  ``ChatOpenAI`` wraps this same client.
* A map of N items: the same ``Send`` fan-out to a no-op node that appends to
  an ``operator.add`` list. Timed from building the graph to the N results.

LangGraph runs in lock-step supersteps: a node triggered in superstep k+1 waits
for every node of superstep k, which is what the slow/fast row shows.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from langgraph.graph import START, StateGraph
from langgraph.types import Send

from .common import DagTask, LlmTask, MapTask, Recorder, Step


class _Values(TypedDict):
    values: Annotated[dict[str, Any], operator.or_]


def _node(step: Step, rec: Recorder) -> Callable[[_Values], _Values]:
    name, seconds, deps = step.name, step.seconds, step.deps

    def node(state: _Values) -> _Values:
        parents = [state["values"][d] for d in deps]  # what a real step would read
        del parents
        return {"values": {name: rec.run(name, seconds)}}

    return node


def dag(task: DagTask, variant: str, rec: Recorder) -> Callable[[], object]:
    builder = StateGraph(_Values)
    for s in task.steps:
        builder.add_node(s.name, _node(s, rec))
        if not s.deps:
            builder.add_edge(START, s.name)
        elif len(s.deps) == 1:
            builder.add_edge(s.deps[0], s.name)
        else:
            builder.add_edge(list(s.deps), s.name)
    graph = builder.compile()
    config: Any = {"recursion_limit": len(task.steps) + 10}
    return lambda: graph.invoke({"values": {}}, config)


class _Answers(TypedDict, total=False):
    n: int
    answers: Annotated[list[Any], operator.add]


def _fan_out(node: str) -> Callable[[_Answers], list[Send]]:
    def fan(state: _Answers) -> list[Send]:
        return [Send(node, {"i": i}) for i in range(state["n"])]

    return fan


def llm(task: LlmTask, variant: str) -> Callable[[], int]:
    from openai import OpenAI

    client = OpenAI(base_url=task.base_url, api_key=task.api_key)

    def ask(item: dict[str, int]) -> dict[str, list[str]]:
        response = client.chat.completions.create(
            model=task.model, messages=[{"role": "user", "content": task.prompt(item["i"])}]
        )
        return {"answers": [response.choices[0].message.content or ""]}

    builder = StateGraph(_Answers)
    builder.add_node("ask", ask)
    builder.add_conditional_edges(START, _fan_out("ask"), ["ask"])
    graph = builder.compile()
    config: Any = {"max_concurrency": task.workers}

    def run() -> int:
        return len(graph.invoke({"n": task.calls}, config)["answers"])

    return run


def map_items(task: MapTask, variant: str) -> Callable[[], int]:
    def item(payload: dict[str, int]) -> dict[str, list[Any]]:
        return {"answers": [payload["i"]]}

    def run() -> int:
        builder = StateGraph(_Answers)
        builder.add_node("item", item)
        builder.add_conditional_edges(START, _fan_out("item"), ["item"])
        graph = builder.compile()
        return len(graph.invoke({"n": task.items})["answers"])

    return run
