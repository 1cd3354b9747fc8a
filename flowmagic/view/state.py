"""What the view shows, read off a run: node states, and when to repaint.

The :class:`Watcher` is the view's observer. It does almost nothing per event
(counts it, notes a map's size) so a fast flow pays little for being watched;
the painting happens elsewhere, at most a few dozen times a second, from the
``Run`` the recorder keeps current.
"""

from __future__ import annotations

from itertools import pairwise

from ..engine import events as ev
from ..engine.record import Run
from .dag import NodeState


class Watcher:
    """An observer that tells a painter whether anything changed since it last looked."""

    def __init__(self) -> None:
        self.version = 0

    def __call__(self, event: ev.Event) -> None:
        self.version += 1


def node_states(run: Run) -> dict[str, NodeState]:
    """Each top-level step's :class:`NodeState`; a map's counts its elements."""
    records = list(run.steps.values())  # one C-level copy: safe while the run adds elements
    progress: dict[str, list[int]] = {}
    rounds: dict[str, int] = {}  # a loop's iterations begun so far
    for r in records:
        if r.map is not None and "#" in r.name:
            k = r.name.rpartition("#")[2]
            if k.isdigit():
                rounds[r.map] = max(rounds.get(r.map, 0), int(k))
        if r.map is not None and r.status in ("succeeded", "failed"):
            counts = progress.setdefault(r.map, [0, 0])
            counts[0] += r.status == "succeeded"
            counts[1] += r.status == "failed"
    states: dict[str, NodeState] = {}
    for r in records:
        if r.map is None and r.kind == "loop":
            states[r.name] = NodeState(r.status, r.cached, r.duration, rounds.get(r.name, 0), r.elements)
        elif r.map is None:
            done, failed = progress.get(r.name, (0, 0))
            states[r.name] = NodeState(r.status, r.cached, r.duration, done, r.elements, failed)
    return states


def critical_edges(run: Run) -> frozenset[tuple[str, str]]:
    path = run.critical_path if run.finished is not None else []
    return frozenset(pairwise(path))
