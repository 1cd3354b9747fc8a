"""The live view: a widget showing a run's DAG, timeline and the step the reader clicks, in detail.

The run's record counts its events (``Run.changes``); nothing is called per
event for the view. A painter thread looks at the count every ``INTERVAL`` seconds and, if anything changed,
sends the state that changed (:mod:`.live`: the DAG's SVG once, then node states
and the timeline's bars as numbers), so however many events a flow makes, the
browser gets at most about 20 updates a second. A repaint that takes long
stretches the interval, so the view never takes more than a small share of the
machine from the flow it watches.
"""

from __future__ import annotations

import json
import threading
import time
from html import escape
from typing import Any

from ..engine.record import Run
from ..engine.summary import facts
from ..flow.shape import Shape
from .dag import DagPainter, caption
from .detail import step_html
from .live import LiveWidget
from .picture import painter, reserved_dag, run_frame
from .state import critical_edges, node_states
from .timeline import HATCH, paint_timeline, reserved_timeline, timeline_data

INTERVAL = 0.05  # seconds between repaints at most: about 20 updates a second
SHARE = 0.05  # at most this share of the time goes to repainting (a 1,000-step repaint: about 10 ms)
BANDWIDTH = 2e6  # and at most about this many bytes a second go to the browser
TICK = 0.25  # while steps run, repaint this often even without events: the clock moves
FULL_EVERY = 40  # repaints between two sends of every node and bar (between them, only those that changed)
MAX_DETAILED = 200  # a run with more steps sends the details of its failed steps only


class FlowView:
    """The live view of one run: ``widget`` is what is shown, painted from the run's record."""

    def __init__(self, run: Run, shape: Shape) -> None:
        self.run = run
        self.shape = shape
        self.kinds = {n.name: n.kind for n in shape.nodes}
        names = [n.name for n in shape.nodes]
        self._painter: DagPainter | None = None
        self.error: Exception | None = None  # why the view could not draw, if it could not
        try:  # the layout: once per flow shape (cached); its height is reserved now
            self._painter = painter(shape)
        except Exception as exc:
            self.error = exc
        dag = self._painter.pending if self._painter is not None else ""
        self.widget = LiveWidget(
            selected=names[-1] if names else "",
            status=self._status(),
            dag=dag,  # the DAG's SVG: sent with the widget, once
            dag_height=reserved_dag(self._painter) if self._painter is not None else 0.0,
            timeline_height=reserved_timeline(shape),
            hatch=HATCH,
        )
        self._painted = -1
        self._painted_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.updates = 0  # repaints sent, for tests and the benchmark
        self._marks: dict[str, tuple[Any, ...]] = {}  # what each step's sent detail was made from
        self._sent_details: dict[str, str] = {}
        self._bars: dict[str, list[Any]] = {}  # each bar as last sent
        self._final: tuple[str, str] | None = None  # the finished run's DAG and timeline, painted once
        self._nodes: dict[str, list[Any]] = {}  # each node as last sent

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        """Paint in the background until :meth:`finish`."""
        self._thread = threading.Thread(target=self._loop, name="flowmagic-view", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the painter thread: the widget keeps what it last showed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def finish(self) -> None:
        """Stop the painter thread and paint the final state in the widget (a view that stays live;
        a cell's view gives way to :meth:`final_bundle` instead)."""
        self.stop()
        self.repaint(force=True)

    def picture(self, details: bool = False) -> str:
        """The run's static picture (with ``details``, every step's detail below it); the DAG and the
        timeline are painted once, when the run is over."""
        if self._painter is None or self.run.finished is None:
            return f"<pre>{escape(self.run.summary())}</pre>"
        if self._final is None:
            dag = self._painter.paint(node_states(self.run), critical_edges(self.run))
            self._final = (dag, self._guarded(paint_timeline, self.run) or "")
        html = self._guarded(lambda: run_frame(self.run, *self._final, details=details))
        return html or f"<pre>{escape(self.run.summary())}</pre>"

    def final_bundle(self) -> dict[str, Any]:
        """What the cell keeps once the run is over: its static picture, with every step's detail,
        and its text, in place of the widget (closed here). A saved or exported notebook then shows
        the picture whatever its widget state says, with no widget manager and no network. The
        widget is not painted once more first: it is about to go."""
        self.stop()
        html = self.picture(details=True)
        self.widget.close()
        return {"text/html": html, "text/plain": self.run.summary()}

    def mimebundle(self) -> dict[str, Any]:
        """The widget, plus what a reader without widgets sees: static HTML and text."""
        shown = self.widget._repr_mimebundle_()
        bundle: dict[str, Any] = dict(shown[0] if isinstance(shown, tuple) else shown or {})
        if self.run.finished is not None:
            bundle["text/html"] = self.picture()
            bundle["text/plain"] = self.run.summary()
        else:
            bundle["text/html"] = f"<pre>flow '{escape(self.run.flow)}' running…</pre>"
            bundle["text/plain"] = f"flow '{self.run.flow}' running…"
        return bundle

    # -- painting -----------------------------------------------------------------
    def _loop(self) -> None:
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
            broken = f"<pre>flowmagic could not draw this flow: {escape(repr(exc))}</pre>"
            self.widget.details = json.dumps(dict.fromkeys(self.kinds, broken))
            return None

    def repaint(self, force: bool = False) -> int:
        """Send the state that changed, if anything happened since the last repaint (or, while
        steps run, every ``TICK`` seconds so their bars grow); return its size in bytes."""
        with self._lock:
            version = self.run.changes
            ticking = self.run.finished is None and time.monotonic() - self._painted_at >= TICK
            if version == self._painted and not (force or ticking):
                return 0
            self._painted = version
            self._painted_at = time.monotonic()
            sent = self._guarded(self._paint)
            return 0 if sent is None else int(sent)

    def _paint(self) -> int:
        now = time.time()
        widget = self.widget
        if self.updates % FULL_EVERY == 0:  # now and then everything: a view opened late catches up
            self._nodes, self._bars = {}, {}
        nodes = {
            name: [s.status, int(s.cached), caption(self.kinds.get(name, "call"), s), s.done, s.total, s.failed]
            for name, s in node_states(self.run).items()
        }
        _let_the_run_go()
        values: dict[str, Any] = {
            "status": self._status(),
            "critical": sorted([a, b] for a, b in critical_edges(self.run)),
        }
        moved = {"nodes": _moved(nodes, self._nodes), "details": self._details(now)}  # only what changed
        if self.run.started is not None:
            _let_the_run_go()
            values["timeline"], bars = timeline_data(self.run, now)
            moved["bars"] = _moved(bars, self._bars)
        _let_the_run_go()
        changed = {k: v for k, v in values.items() if getattr(widget, k) != v}
        changed.update({k: json.dumps(v, separators=(",", ":")) for k, v in moved.items() if v})
        _let_the_run_go()
        sent = sum(len(v) for k, v in changed.items() if k in moved)  # about what goes out
        with widget.hold_sync():  # one message for all of them
            for key, value in changed.items():
                setattr(widget, key, value)
        self.updates += 1
        return sent

    def _details(self, now: float) -> dict[str, str]:
        """The details of the steps that changed since they were last sent (a running step's each
        time: its answer streams in). A run of more than ``MAX_DETAILED`` steps sends only its failed
        steps' details and the first one shown: a click on another says where to look."""
        records = list(self.run.steps.values())
        if len(records) > MAX_DETAILED:  # a large run: what a reader most wants, its failures
            chosen = self.widget.selected
            records = [r for r in records if r.map is None and (r.status == "failed" or r.name == chosen)]
        changed: dict[str, str] = {}
        for r in records:
            mark = (r.status, r.finished, r.attempts, len((r.llm or {}).get("answer") or ""), r.cached)
            if r.status == "running" or self._marks.get(r.name) != mark:
                self._marks[r.name] = mark
                html = step_html(self.run, r.name, now)
                if self.error is not None:  # what went wrong drawing stays in sight
                    html = f"<pre>flowmagic could not draw this flow: {escape(repr(self.error))}</pre>" + html
                if self._sent_details.get(r.name) != html:
                    self._sent_details[r.name] = html
                    changed[r.name] = html
        return changed

    def _status(self) -> list[str]:
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
        return [status, text]


def _let_the_run_go() -> None:
    """Between the parts of a repaint (each a few milliseconds on a 1,000-step run), let the run's
    threads have the interpreter: a step that ended waits for it to finish, and otherwise waits up
    to the interpreter's switch interval (5 ms) each time the painter holds it."""
    time.sleep(0)  # (gives up the interpreter lock)


def _moved(now: dict[str, list[Any]], sent: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The entries of ``now`` that differ from what was ``sent`` (which is brought up to date)."""
    moved = {name: value for name, value in now.items() if sent.get(name) != value}
    sent.update(moved)
    return moved
