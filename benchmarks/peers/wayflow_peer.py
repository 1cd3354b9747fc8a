"""WayFlow (``wayflowcore`` 26.3): every workload as a ``Flow`` of steps, parallel steps for parallelism.

Mapping:

* A step: a ``ServerTool`` around a sync function (inputs: its parents'
  values, one ``AnyProperty`` each, named after the parent; output: its own
  value, named after the step) run by a ``ToolExecutionStep``. Values travel
  along the data edges WayFlow creates by name. WayFlow runs a sync tool on an
  ``anyio`` worker thread.
* A DAG: WayFlow (like Agent Spec) runs steps in parallel only inside a
  ``ParallelFlowExecutionStep``, whose branches are sub-flows; control flow
  between steps is sequential. So the DAG becomes its levels in order: a level
  with one step is that step, a level with several is one
  ``ParallelFlowExecutionStep`` with a one-step sub-flow per step (its default
  ``max_workers``: 20). A workload that says how a person would group it into
  branches (the slow/fast shape: ``[slow]`` beside ``[fast, uses_fast]``) gets
  one multi-step sub-flow per branch instead. The flow is built once; a run
  is ``flow.start_conversation(inputs).execute()`` (a conversation holds one
  run's state, so making it is part of the run).
* LLM calls: a ``MapStep`` with ``parallel_execution=True`` and
  ``max_workers`` = the workload's workers (32) over a sub-flow holding one
  ``PromptExecutionStep`` on an ``OpenAICompatibleModel`` pointed at the local
  server (WayFlow's own HTTP client).
* A map of N items: a parallel ``MapStep`` (default ``max_workers``, 20) over a
  sub-flow with one no-op ``ToolExecutionStep``. Timed from building the flow
  to the N results.

Levels make the DAG run in lock-step rounds wherever it is not written as
branches: a step waits for the slowest step of the level before its own.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from wayflowcore.executors.executionstatus import FinishedStatus
from wayflowcore.flow import Flow
from wayflowcore.models import OpenAICompatibleModel
from wayflowcore.property import AnyProperty
from wayflowcore.steps import MapStep, ParallelFlowExecutionStep, PromptExecutionStep, ToolExecutionStep
from wayflowcore.steps.step import Step as WayflowStep
from wayflowcore.tools import ServerTool

from .common import DagTask, LlmTask, MapTask, Recorder, Step, levels

# WayFlow warns (through logging and warnings) that it created the data edges by name: it is meant here.
logging.getLogger("wayflowcore").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module="wayflowcore")


def _tool_step(step: Step, rec: Recorder) -> ToolExecutionStep:
    name, seconds = step.name, step.seconds

    def body(**parents: Any) -> str:
        return rec.run(name, seconds)

    tool = ServerTool(
        name=f"tool_{name}",
        description=f"step {name}",
        input_descriptors=[AnyProperty(name=d) for d in step.deps],
        output_descriptors=[AnyProperty(name=name)],
        func=body,
    )
    return ToolExecutionStep(name=f"step_{name}", tool=tool)


def _run(flow: Flow, inputs: dict[str, Any]) -> dict[str, Any]:
    status = flow.start_conversation(inputs=inputs).execute()
    if not isinstance(status, FinishedStatus):
        raise RuntimeError(f"the flow ended with {status!r}")
    return dict(status.output_values)


def _level(index: int, branches: Sequence[Sequence[Step]], rec: Recorder) -> WayflowStep:
    if len(branches) == 1 and len(branches[0]) == 1:
        return _tool_step(branches[0][0], rec)
    flows = [
        Flow.from_steps([_tool_step(s, rec) for s in branch], name=f"branch_{branch[0].name}") for branch in branches
    ]
    return ParallelFlowExecutionStep(flows=flows, name=f"level_{index}")


def dag(task: DagTask, variant: str, rec: Recorder) -> Callable[[], object]:
    by_name = {s.name: s for s in task.steps}
    if task.branches is not None:
        grouped = [[[by_name[n] for n in branch] for branch in level] for level in task.branches]
    else:
        grouped = [[[s] for s in level] for level in levels(task.steps)]
    flow = Flow.from_steps([_level(i, level, rec) for i, level in enumerate(grouped)], name=task.key)
    return lambda: _run(flow, {})


def llm(task: LlmTask, variant: str) -> Callable[[], int]:
    model = OpenAICompatibleModel(model_id=task.model, base_url=task.root_url, api_key=task.api_key)
    ask = PromptExecutionStep(prompt_template="Question {{i}}: say something short.", llm=model, name="ask")
    step = MapStep(
        flow=Flow.from_steps([ask], name="ask_one"),
        unpack_input={"i": "."},
        parallel_execution=True,
        max_workers=task.workers,
        output_descriptors=[AnyProperty(name=PromptExecutionStep.OUTPUT)],
        name="ask_all",
    )
    flow = Flow.from_steps([step], name="llm")
    items = list(range(task.calls))

    def run() -> int:
        return len(_run(flow, {MapStep.ITERATED_INPUT: items})[PromptExecutionStep.OUTPUT])

    return run


def map_items(task: MapTask, variant: str) -> Callable[[], int]:
    def item(x: Any) -> Any:
        return x

    items = list(range(task.items))

    def run() -> int:
        tool = ServerTool(
            name="item",
            description="one item",
            input_descriptors=[AnyProperty(name="x")],
            output_descriptors=[AnyProperty(name="y")],
            func=item,
        )
        step = MapStep(
            flow=Flow.from_steps([ToolExecutionStep(name="one", tool=tool)], name="one_item"),
            unpack_input={"x": "."},
            parallel_execution=True,
            output_descriptors=[AnyProperty(name="y")],
            name="each",
        )
        flow = Flow.from_steps([step], name="map")
        return len(_run(flow, {MapStep.ITERATED_INPUT: items})["y"])

    return run
