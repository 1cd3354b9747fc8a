"""A ``for`` loop at run time: its body once per element, in order, each time as a nested run.

The loop step pulls its iterable (on a worker thread, at most :data:`~flowmagic.flow.loops.MAX_ITERATIONS`
elements: more is an error before the first iteration), then runs the body's own compiled
flow as a nested :class:`~flowmagic.engine.driver.Execution` per element, on the same event
loop, worker threads, cache and settings. The nested run's events are relayed into the
parent's record as they happen, each step named ``step#k`` (k counts iterations from 1; a
nested loop's ``step#k#j``), so
the view, the summary and ``Run.to_json()`` show every iteration.

Between iterations, each carried name takes the value its last assignment in the iteration
gave it (or keeps the one it had, where the iteration assigned it no value: a skipped arm,
a ``break``). An iteration that fails fails the loop; a cancel of the run (an interrupt,
``--timeout``) cancels the iteration under way and no other begins.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from ..flow.loops import CARRIED, MAX_ITERATIONS, Loop
from . import events as ev
from .attempts import evaluate as evaluate_code
from .elements import Pull
from .evaluate import namespace
from .nested import Relay, run_nested
from .vocabulary import RunStatus, Status

if TYPE_CHECKING:
    from .on_loop import OnLoop


class LoopError(Exception):
    """An iteration of a loop failed, or its iterable could not be read."""


async def run_loop(host: OnLoop, name: str) -> dict[str, Any]:
    """Run loop step ``name`` of ``host``'s run; its value: each name the body assigns, at its last value."""
    loop: Loop = host.flow.loops[name]
    compiled = host.code[name]
    ns = namespace(compiled.reads, host._lookup, host._blocking_llm(name, {}), compiled.binds)
    iterable = await evaluate_code(host, name, compiled.expr, ns, {}, send=False)  # a call: on a thread
    items = await host.in_thread(Pull(iter(iterable), MAX_ITERATIONS).pull)
    if len(items) > MAX_ITERATIONS:
        limit = f"{MAX_ITERATIONS:,}"
        raise LoopError(f"'{loop.label}' would run more than {limit} iterations; the limit is {limit}")
    outer = {read: ns[read] for read in loop.outer}
    values: dict[str, Any] = {read: ns[read] for read in loop.carried if read in ns}
    kinds = {n: s.kind for n, s in loop.body.steps.items()}
    done = 0
    try:
        for k, item in enumerate(items, start=1):
            inputs = {**outer, loop.target: item, **{read + CARRIED: values.get(read) for read in loop.carried}}
            relay = Relay(host, name, kinds, functools.partial(_iteration, f"#{k}"))
            run, got = await run_nested(host, host.name, loop.body, inputs, relay)
            done = k
            if run.status is not RunStatus.SUCCEEDED:
                failed = [n for n, r in run.steps.items() if r.status is Status.FAILED]
                error = run.steps[failed[0]].error if failed else None
                why = f"{failed[0]}#{k}: {type(error).__name__}: {error}" if error is not None else run.status
                raise LoopError(f"iteration {k} of '{loop.label}' {run.status}: {why}")
            for out, units in loop.outputs.items():
                for unit in reversed(units):  # the last assignment that ran in this iteration
                    if unit in got:
                        values[out] = got[unit]
                        break
            if any(got.get(cond) == arm for cond, arm in loop.breaks):
                break
            await asyncio.sleep(0)  # a cancel between iterations lands here
    finally:
        host.emit(ev.EXPANDED, name, detail={"count": done})  # the iterations begun, however it ended
    return values


def _iteration(suffix: str, step: str) -> str:
    """``step`` of iteration ``suffix`` ('#2'): 'draft#2'; a nested loop's 'draft#1' is 'draft#2#1'."""
    base, sep, inner = step.partition("#")
    return base + suffix + sep + inner


__all__ = ["LoopError", "run_loop"]
