"""The live view's widget: an anywidget whose front end (``live.js``, inside this package) draws
the run from state the kernel sends.

The DAG's SVG goes once per view (``dag``); after that only what changes goes: each node's
state and caption, the critical path, the timeline's frame and the bars that changed (as numbers),
the status line, and the
details of the steps that changed since the last repaint (``details``: step -> HTML, merged by the
front end), so a click on a node or a bar shows its detail at once, even while the cell that
started the run is still executing (when the kernel reads no message from the page).
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

from .style import THEME_CSS


class LiveWidget(anywidget.AnyWidget):
    _esm = Path(__file__).with_name("live.js")
    theme = traitlets.Unicode(THEME_CSS).tag(sync=True)
    dag = traitlets.Unicode("").tag(sync=True)  # the DAG's SVG, sent once
    dag_height = traitlets.Float(0.0).tag(sync=True)
    timeline_height = traitlets.Float(0.0).tag(sync=True)
    # what changed since the last update, as JSON text (a nested list would be walked, item by item,
    # by the widget's serialiser): name -> state for nodes, name -> numbers for bars, name -> HTML
    nodes = traitlets.Unicode("{}").tag(sync=True)
    critical: traitlets.List[list[str]] = traitlets.List().tag(sync=True)
    timeline = traitlets.Dict().tag(sync=True)  # the timeline's frame: header, span, lanes in order
    bars = traitlets.Unicode("{}").tag(sync=True)
    hatch = traitlets.Unicode("").tag(sync=True)  # the pattern a server's queue is hatched with
    status: traitlets.List[str] = traitlets.List().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)  # the step whose detail shows first
    details = traitlets.Unicode("{}").tag(sync=True)


__all__ = ["LiveWidget"]
