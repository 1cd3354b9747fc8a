"""A batch's progress in a notebook: a bar and a line (rows done, failed, seconds, where)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from html import escape
from typing import Any

#: Seconds between two redraws of the bar while rows stream in.
EVERY = 0.1


def live_progress(batch: Any) -> Callable[..., None] | None:
    """Show a progress bar for ``batch`` if this runs in a Jupyter kernel; return what redraws it."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    import ipywidgets as widgets
    from IPython.display import display

    bar = widgets.IntProgress(value=0, min=0, max=max(batch.total, 1), description=batch.flow)
    line = widgets.HTML(escape(batch.progress()))
    box = widgets.HBox([bar, line])
    box.add_class("fm-batch-progress")
    display(box)  # type: ignore[no-untyped-call]
    last = 0.0

    def redraw(final: bool = False) -> None:
        nonlocal last
        now = time.monotonic()
        if not final and now - last < EVERY:
            return
        last = now
        bar.value = batch.done
        bar.bar_style = "danger" if batch.failures else ("success" if final and batch.done == batch.total else "")
        line.value = escape(batch.progress() + (f" ({batch.status})" if final else ""))

    return redraw
