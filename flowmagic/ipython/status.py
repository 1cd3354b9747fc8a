"""Text for places without widgets: a status line while a background run goes on, then the summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..engine import events as ev
from ..engine.record import Run


class Text:
    """Plain text shown as-is by IPython, in a terminal and in a notebook."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text)


class TextStatus:
    """An observer that keeps one display updated with progress, at most a few times a second.

    ``describe()`` gives the progress line: :func:`progress_line` of a run, or
    :func:`variants_line` of several.
    """

    INTERVAL = 0.25

    def __init__(self, describe: Callable[[], str], display_id: str | None, update: Any) -> None:
        self.describe = describe
        self.display_id = display_id
        self.update = update
        self.last = 0.0

    def __call__(self, event: ev.Event) -> None:
        if self.display_id is None or event.kind not in (ev.FINISHED, ev.FAILED, ev.STARTED):
            return
        now = time.monotonic()
        if now - self.last < self.INTERVAL:
            return
        self.last = now
        self.update(Text(self.describe()), display_id=self.display_id)


def progress_line(run: Run) -> str:
    steps = run.top_steps
    counts: dict[str, int] = {}
    for r in steps:
        counts[r.status] = counts.get(r.status, 0) + 1
    done = counts.get("succeeded", 0)
    parts = [f"{done}/{len(steps)} steps done"]
    for status in ("running", "failed", "skipped"):
        if counts.get(status):
            parts.append(f"{counts[status]} {status}")
    running = [r.name for r in steps if r.status == "running"][:5]
    line = f"flow '{run.flow}' running: " + ", ".join(parts)
    return line + (f" (now: {', '.join(running)})" if running else "")


def variants_line(flow: str, runs: list[Run]) -> str:
    finished = sum(r.finished is not None for r in runs)
    steps = [r for run in runs for r in run.top_steps]
    done = sum(r.status == "succeeded" for r in steps)
    failed = sum(r.status == "failed" for r in steps)
    line = f"flow '{flow}': {finished} of {len(runs)} variants finished, {done}/{len(steps)} steps done"
    return line + (f", {failed} failed" if failed else "")
