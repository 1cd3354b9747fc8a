"""The live view: ipywidgets showing a run's DAG, timeline and one step in detail.

The executor's thread only bumps a counter per event (:class:`Watcher`). A
painter thread looks at it every ``INTERVAL`` seconds and, if anything changed,
repaints from the ``Run`` and sends the new widget values, so however many
events a flow makes, the browser gets at most about 20 updates a second. A
repaint that takes long stretches the interval, so the view never takes more
than a small share of the machine from the flow it watches.
"""

from __future__ import annotations

import threading
import time
from html import escape
from typing import Any

import ipywidgets as widgets

from ..engine.record import Run
from ..engine.summary import facts
from ..flow.shape import Shape
from .dag import DagPainter
from .detail import step_html
from .picture import painter, reserved_dag, run_frame, run_html
from .state import Watcher, critical_edges, node_states
from .style import GLYPHS, INK, THEME_CSS
from .timeline import paint_timeline, reserved_timeline

INTERVAL = 0.05  # seconds between repaints at most: about 20 updates a second
SHARE = 0.1  # at most this share of the time goes to repainting
BANDWIDTH = 2e6  # and at most about this many bytes a second go to the browser
TICK = 0.25  # while steps run, repaint this often even without events: the clock moves


class FlowView:
    """The live view of one run; ``watcher`` is its observer, ``widget`` what is shown."""

    def __init__(self, run: Run, shape: Shape) -> None:
        self.run = run
        self.shape = shape
        self.watcher = Watcher()
        self.status = widgets.HTML(self._status_html())
        self.dag = widgets.HTML("<i>laying out the flow…</i>")
        self.timeline = widgets.HTML()
        names = [n.name for n in shape.nodes]
        self.select = widgets.Dropdown(
            options=names, value=names[-1] if names else None, description="step", layout={"width": "320px"}
        )
        self.detail = widgets.HTML(layout={"height": "220px", "overflow": "auto"})
        self.theme = widgets.HTML(THEME_CSS)  # the theme's colours, sent once
        self._painter: DagPainter | None = None
        self._guarded(self._lay_out)  # once per flow shape (cached): its height is reserved now
        dag_height = reserved_dag(self._painter) if self._painter is not None else 0.0
        self.dag.layout = widgets.Layout(overflow="auto hidden", min_height=f"{dag_height:.0f}px")
        self.timeline.layout = widgets.Layout(overflow="auto hidden", min_height=f"{reserved_timeline(shape):.0f}px")
        self.widget = widgets.VBox(
            [self.theme, self.status, self.dag, self.timeline, widgets.VBox([self.select, self.detail])],
        )
        self.widget.add_class("flowmagic-view")
        self.select.observe(lambda _: self._paint_detail(), names="value")
        self._painted = -1
        self._painted_at = 0.0
        self._painted_final = False  # the widgets show the run's final state
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.updates = 0  # repaints sent, for tests and the benchmark
        self.error: Exception | None = None  # why the view could not draw, if it could not

    def _lay_out(self) -> None:
        self._painter = painter(self.shape)

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        """Paint in the background until :meth:`finish`."""
        self._thread = threading.Thread(target=self._loop, name="flowmagic-view", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """Stop the painter thread and paint the final state."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.repaint(force=True)

    def final_bundle(self) -> dict[str, Any]:
        """What the cell keeps once the run is over: its static picture, with every step's detail,
        and its text, in place of the widget (closed here). A saved or exported notebook then shows
        the picture whatever its widget state says, with no widget manager and no network."""
        html = None
        if self._painted_final:
            html = run_frame(self.run, self.dag.value, self.timeline.value, details=True)
        else:
            html = self._guarded(run_html, self.run)
        for part in (self.widget, *self.widget.children, self.select, self.detail):
            part.close()
        return {"text/html": html or f"<pre>{escape(self.run.summary())}</pre>", "text/plain": self.run.summary()}

    def mimebundle(self) -> dict[str, Any]:
        """The widget, plus what a reader without widgets sees: static HTML and text."""
        bundle: dict[str, Any] = dict(self.widget._repr_mimebundle_() or {})
        if self.run.finished is not None:
            if self._painted_final:
                html = run_frame(self.run, self.dag.value, self.timeline.value)
            else:
                html = self._guarded(run_html, self.run) or f"<pre>{escape(self.run.summary())}</pre>"
            bundle["text/html"] = html
            bundle["text/plain"] = self.run.summary()
        else:
            bundle["text/html"] = f"<pre>flow '{escape(self.run.flow)}' running…</pre>"
            bundle["text/plain"] = f"flow '{self.run.flow}' running…"
        return bundle

    # -- painting -----------------------------------------------------------------
    def _loop(self) -> None:
        with self._lock:
            if self._painter is None:  # the layout: once per flow shape, and not a repaint's cost
                self._painter = self._guarded(painter, self.shape)
        interval = INTERVAL
        while not self._stop.wait(interval):
            began = time.perf_counter()
            sent = self.repaint()
            interval = min(1.0, max(INTERVAL, (time.perf_counter() - began) / SHARE, sent / BANDWIDTH))

    def _guarded(self, fn: Any, *args: Any) -> Any:
        """Call ``fn``; if it raises, say so in the view: a broken view never breaks the run."""
        try:
            return fn(*args)
        except Exception as exc:
            self.error = exc
            self.dag.value = f"<pre>flowmagic could not draw this flow: {escape(repr(exc))}</pre>"
            return None

    def repaint(self, force: bool = False) -> int:
        """Send the widget values that changed, if anything happened since the last repaint
        (or, while steps run, every ``TICK`` seconds so their bars grow); return their size."""
        with self._lock:
            version = self.watcher.version
            ticking = self.run.finished is None and time.monotonic() - self._painted_at >= TICK
            if version == self._painted and not (force or ticking):
                return 0
            self._painted = version
            self._painted_at = time.monotonic()
            sent = self._guarded(self._paint)
            return 0 if sent is None else int(sent)

    def _paint(self) -> int:
        if self._painter is None:
            self._painter = painter(self.shape)  # once per flow shape: layouts are cached
        now = time.time()
        self.status.value = self._status_html()
        self.dag.value = self._painter.paint(node_states(self.run), critical_edges(self.run))
        self.timeline.value = paint_timeline(self.run, now) if self.run.started is not None else ""
        self._paint_detail(now)
        self._painted_final = self.run.finished is not None
        self.updates += 1
        # a value equal to the last one is not sent again (traitlets only notify changes)
        return len(self.dag.value) + len(self.timeline.value) + len(self.detail.value)

    def _paint_detail(self, now: float | None = None) -> None:
        name = self.select.value
        self.detail.value = step_html(self.run, name, now or time.time()) if name else ""

    def _status_html(self) -> str:
        run = self.run
        records = run.top_steps
        done = sum(r.status in ("succeeded", "failed", "skipped", "cancelled") for r in records)
        if run.finished is not None:
            status: str = run.status
            text = f"flow '{run.flow}' {run.status}" + (f" ({run.reason})" if run.reason else "")
            if run.wall_time is not None:
                text += f" in {run.wall_time:.2f}s"
            text = "  ·  ".join([text, *facts(run)])
        else:
            status = "running"
            elapsed = time.time() - run.started if run.started is not None else 0.0
            text = f"flow '{run.flow}' running: {done}/{len(records)} steps finished, {elapsed:.1f}s"
        if run.model and any(r.kind == "llm" for r in records):
            text += f"  [model: {run.model}]"
        glyph = GLYPHS.get(status, "\u25b8")
        return (
            f'<div class="fm-status" data-status="{status}" style="font-weight:600;font-size:14px;'
            f'color:{INK}">{glyph} {escape(text)}</div>'
        )
