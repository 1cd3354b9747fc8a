"""Nested runs: a loop's iteration or a subflow, run inside a step of another run.

A nested run is an :class:`~flowmagic.engine.driver.Execution` of its own on the parent's
event loop, worker threads, cache and cluster, with the parent's settings (its ``--timeout`` is
the parent's to enforce). :func:`run_nested` runs one, cancelled with the parent, and
:class:`Relay` puts each of its step events, as it is recorded, into the parent's record under
a new name, as elements of the parent's step, so the record, the observers and the view see
them as they happen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import events as ev
from .record import Run

if TYPE_CHECKING:
    from ..flow.compiled import CompiledFlow
    from .on_loop import OnLoop


async def run_nested(
    host: OnLoop, name: str, flow: CompiledFlow, inputs: dict[str, Any], relay: Relay
) -> tuple[Run, dict[str, Any]]:
    """Run ``flow`` nested in ``host``'s run; its record and its steps' values."""
    from .driver import Execution  # (the driver runs nested runs: they are its own kind)

    settings = host.settings if host.settings.timeout is None else host.settings.changed(timeout=None)
    child = Execution(
        name,
        flow,
        inputs,
        settings,
        (),
        host.cache,
        remote=host.remote,
        pool=host.places.pool,
        threads=host.places.pool is not None,
    )
    child.journal.forward = relay  # each event, as it is recorded
    host.nested.add(child)  # (a cancel of the host cancels it, wherever the step waits for it)
    try:
        run = await child.execute()
    finally:
        host.nested.discard(child)
    return run, child.values


class Relay:
    """Forwards a nested run's events (under its lock): each step event goes into the parent's
    record, renamed by ``rename`` and made an element of the parent's step ``parent``."""

    def __init__(self, host: OnLoop, parent: str, kinds: Mapping[str, str], rename: Callable[[str], str]) -> None:
        self.host = host
        self.parent = parent
        self.kinds = kinds
        self.rename = rename

    def __call__(self, event: ev.Event) -> None:
        if event.step is None:  # the nested run's own start and end
            return
        detail = dict(event.detail or {})
        inner = detail.get("map")
        detail["kind"] = detail.get("kind") or self.kinds.get(event.step if inner is None else inner, "call")
        detail["map"] = self.parent
        self.host.relay(event._replace(step=self.rename(event.step), detail=detail))


__all__ = ["Relay", "run_nested"]
