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


def batch_html(batch: Any) -> str:
    """A batch as a table: the first rows and the failed ones, each row's final values or its error."""
    head = "".join(f"<th>{escape(s)}</th>" for s in ("row", *batch.final_steps, "error"))
    shown = [*batch.results[:10], *[r for r in batch.results[10:] if not r.ok][:10]]
    body = []
    for r in shown:
        values = [_short(r.values[s]) if s in r.values else "" for s in batch.final_steps]
        cells = [str(r.index), *values, r.error or ""]
        body.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    more = f"<p>{len(batch.results) - len(shown):,} more rows in .results</p>" if len(shown) < batch.done else ""
    return (
        f"<div class='fm-batch'><p>{escape(batch.flow)}: {escape(batch.progress())} ({escape(batch.status)})</p>"
        f"<table><tr>{head}</tr>{''.join(body)}</table>{more}</div>"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

