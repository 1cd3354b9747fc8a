"""Subflows: a flow called like a function inside a step runs as a nested run of the caller's run.

``cats = research(question="cats")``, where ``research`` is a :class:`~flowmagic.flow.flow.Flow`:
a flow's class marks itself ``__flowmagic_subflow__``, so the driver evaluates such a call on
the run's event loop (or, among other calls, on a worker thread), where the driver has said
which run and step are evaluating (:func:`.capture.enter`). The flow's ``__call__`` then hands the nested run to the
step (:func:`call`); called anywhere else, it runs the flow and returns its value.

The nested run (:mod:`.nested`) has the caller's settings, worker threads, cache and cluster; a
cancel of the caller cancels it; its steps are relayed into the caller's record as
``cats/notes``, elements of the calling step. Its value is its final step's value, or a dict of
them when it has several; a nested run that did not succeed fails the calling step.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from . import capture
from .nested import Relay, run_nested
from .record import Run
from .vocabulary import RunStatus, Status

if TYPE_CHECKING:
    from .on_loop import OnLoop

class SubflowError(Exception):
    """A subflow's run did not succeed."""


def call(flow: Any, inputs: dict[str, Any]) -> Any:
    """A flow called in a step: on the run's loop, the nested run for the step to await; on a worker
    thread (the call sits among other calls), its value once the nested run, on the loop, is over.
    :data:`OUTSIDE` when no step is calling."""
    calling = capture.running()  # the run and step whose code calls the flow, if any
    if calling is None:
        return OUTSIDE
    host, unit = calling
    nested = run_subflow(host, unit, flow, inputs)
    loop = host.places.loop
    if loop is None or host.places.on_loop_thread():
        return nested
    return asyncio.run_coroutine_threadsafe(nested, loop).result()


OUTSIDE = object()


def value_of(run: Run, finals: tuple[str, ...]) -> Any:
    """A finished run's value: its final step's, or a dict of its final steps' values."""
    if len(finals) == 1:
        return run[finals[0]]
    return {name: run[name] for name in finals}


async def run_subflow(host: OnLoop, unit: Any, flow: Any, inputs: dict[str, Any]) -> Any:
    """Run ``flow`` with ``inputs`` as a nested run of ``host``'s, for step ``unit``; its value."""
    label = host._record_name(unit)
    kinds = {n: s.kind for n, s in flow.steps.items()}
    relay = Relay(host, label, kinds, lambda step: f"{label}/{step}")
    run, _ = await run_nested(host, flow.name, flow.compiled, flow.resolve_inputs(inputs), relay)
    if run.status is not RunStatus.SUCCEEDED:
        failed = [(n, r) for n, r in run.steps.items() if r.status is Status.FAILED and r.map is None]
        why = f"{label}/{failed[0][0]}: {type(failed[0][1].error).__name__}: {failed[0][1].error}" if failed else ""
        raise SubflowError(f"subflow '{flow.name}' {run.status}" + (f" ({why})" if why else ""))
    return value_of(run, flow.final_steps)


__all__ = ["OUTSIDE", "SubflowError", "call", "run_subflow", "value_of"]
