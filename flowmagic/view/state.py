"""What the view shows, read off a run: node states and the critical path.

The view is no observer of the run: it polls the ``Run`` the recorder keeps
current (``Run.changes`` counts its events), at most a few dozen times a second,
so a watched run hands no event to anyone and wakes no event loop for the view.
"""

from __future__ import annotations

from itertools import pairwise

from ..engine.record import Run
from .dag import NodeState


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
