"""LLMFlows (``llmflows`` 0.2.1): every workload as an ``AsyncFlow`` of connected flow steps.

Two variants, two columns, both ``AsyncFlow`` (LLMFlows' parallel flow):

* ``async``: a step's work is awaited: ``asyncio.sleep`` for the sleep
  shapes, ``AsyncChatFlowStep`` on ``OpenAIChat`` for LLM calls (the pre-1.0
  ``openai`` SDK that LLMFlows pins, ``openai.api_base`` set to the local
  server; it opens an ``aiohttp`` session per request).
* ``blocking``: the same flow, but each step's work is a blocking call made
  inside the step: ``time.sleep``, or the sync ``OpenAIChat.generate``, as
  with any sync tool or SDK. It blocks the event loop, so nothing overlaps.

LLMFlows has no async step for plain Python functions (its
``FunctionalFlowStep`` belongs to the sync ``Flow``), so a step is a small
``AsyncBaseFlowStep`` subclass whose ``generate`` runs the step.

Mapping:

* A DAG: one flow step per step; ``parent.connect(child)`` for each dependency.
  A flow starts from one first step, so a no-op ``start`` step (not counted)
  connects to every root. A step's output key is its name; its required keys
  are its parents' names. ``AsyncFlow`` keeps its results and completed steps
  after ``start`` (it runs once), so a run is ``AsyncFlow(start)`` and
  ``asyncio.run(flow.start())``.
* LLM calls: ``start`` connected to one step per call (a chat step keeps its
  message history, so the steps are made for each run, inside the timing).
  There is no concurrency limit: every call is sent at once.
* A map of N items: no map construct: ``start`` connected to N steps, each
  holding its item. Timed from making the steps to the N results.

``AsyncFlow`` runs a step once per finished parent that finds all of its
inputs ready, so a step whose parents finish together runs twice (and so does
everything after it): the soundtrack's ``d`` and critics. The worker counts
those extra runs and the table's notes list them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import openai
from llmflows.flows import AsyncChatFlowStep, AsyncFlow
from llmflows.flows.async_base_flowstep import AsyncBaseFlowStep
from llmflows.llms import MessageHistory, OpenAIChat
from llmflows.prompts import PromptTemplate

from .common import DagTask, LlmTask, MapTask, Recorder, Step


class _Step(AsyncBaseFlowStep):  # type: ignore[misc]
    """A flow step that runs one function: awaited (``async``) or called (``blocking``)."""

    def __init__(
        self,
        name: str,
        body: Callable[[], Awaitable[Any]] | Callable[[], Any] | None = None,
        deps: tuple[str, ...] = (),
        blocking: bool = False,
    ) -> None:
        super().__init__(name, output_key=name, callbacks=None)
        self.body = body
        self.blocking = blocking
        self.required_keys = set(deps)

    async def generate(self, inputs: dict[str, Any]) -> tuple[Any, Any, Any]:
        if self.body is None:  # the start step
            return "", {}, {}
        result = self.body() if self.blocking else await self.body()
        return result, {}, {}


def _start(first: _Step, steps: dict[str, _Step], specs: tuple[Step, ...]) -> _Step:
    first.connect(*(steps[s.name] for s in specs if not s.deps))
    for s in specs:
        for d in s.deps:
            steps[d].connect(steps[s.name])
    return first


def dag(task: DagTask, variant: str, rec: Recorder) -> Callable[[], object]:
    blocking = variant == "blocking"
    body = rec.run if blocking else rec.arun
    steps = {s.name: _Step(s.name, partial(body, s.name, s.seconds), s.deps, blocking) for s in task.steps}
    start = _start(_Step("start"), steps, task.steps)
    return lambda: asyncio.run(AsyncFlow(start).start())


def llm(task: LlmTask, variant: str) -> Callable[[], int]:
    openai.api_base = task.base_url  # type: ignore[attr-defined]  # how the pre-1.0 SDK is pointed at a server
    chat = OpenAIChat(api_key=task.api_key, model=task.model)
    inputs = {f"q{i}": task.prompt(i) for i in range(task.calls)}

    def ask(i: int) -> str:
        history = MessageHistory()
        history.add_user_message(task.prompt(i))
        return str(chat.generate(history)[0])

    def asks() -> list[Any]:
        if variant == "blocking":
            return [_Step(f"ask{i}", partial(ask, i), blocking=True) for i in range(task.calls)]
        return [
            AsyncChatFlowStep(
                name=f"ask{i}",
                llm=chat,
                output_key=f"a{i}",
                message_key=f"q{i}",
                message_history=MessageHistory(),
                message_prompt_template=PromptTemplate(f"{{q{i}}}"),
            )
            for i in range(task.calls)
        ]

    def run() -> int:
        start = _Step("start")
        start.connect(*asks())
        results = asyncio.run(AsyncFlow(start).start(**inputs))
        return sum(1 for name in results if name.startswith("ask"))

    return run


def map_items(task: MapTask, variant: str) -> Callable[[], int]:
    async def aitem(x: int) -> str:
        return str(x)

    blocking = variant == "blocking"
    item: Callable[[int], Any] = str if blocking else aitem

    def run() -> int:
        start = _Step("start")
        start.connect(*(_Step(f"x{i}", partial(item, i), blocking=blocking) for i in range(task.items)))
        results = asyncio.run(AsyncFlow(start).start())
        return sum(1 for name in results if name != "start")

    return run
