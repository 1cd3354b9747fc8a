"""Static pictures: the DAG (and, after a run, its timeline) as HTML with inline SVG.

They are what ``Flow.show()`` and ``Run.show()`` return, and what a saved
notebook keeps beside the live widget, so nbconvert and GitHub still show the
final state. A terminal shows their text instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from html import escape
from typing import TYPE_CHECKING, Any

from .dag import DagPainter, NodeState
from .layout import layout
from .state import critical_edges, node_states
from .style import INK as INK_CSS
from .style import THEME_CSS
from .timeline import paint_timeline

if TYPE_CHECKING:
    from ..engine.record import Run
    from ..flow.flow import Flow
    from ..flow.shape import Shape


_painters: OrderedDict[str, DagPainter] = OrderedDict()
_painters_lock = threading.Lock()


def painter(shape: Shape) -> DagPainter:
    """The painter of ``shape``'s DAG: one per flow shape, kept for the next run of the same flow
    (a few of them), since its fragments and its all-pending picture do not change."""
    key = shape.key
    with _painters_lock:
        found = _painters.get(key)
        if found is not None:
            _painters.move_to_end(key)
            return found
    made = DagPainter(shape, layout(shape))
    with _painters_lock:
        _painters[key] = made
        while len(_painters) > 16:
            _painters.popitem(last=False)
    return made


def reserved_dag(dag: DagPainter) -> float:
    """The height the DAG is drawn at (it does not change during a run)."""
    return dag.height * dag.scale


def flow_html(shape: Shape, title: str) -> str:
    return _frame(title, painter(shape).paint({}))


def run_html(run: Run, dag: DagPainter | None = None) -> str:
    """The run's DAG in its final states, then its timeline."""
    if dag is None:
        if run.shape is None:
            return f"<pre>{escape(run.summary())}</pre>"
        dag = painter(run.shape)
    svg = dag.paint(node_states(run), critical_edges(run))
    return run_frame(run, svg, paint_timeline(run))


def run_frame(run: Run, dag_svg: str, timeline_svg: str, details: bool = False) -> str:
    """The run's picture; with ``details``, each step's detail below it, opened by a click on its
    name (what the live view's step list shows, kept in the saved notebook)."""
    body = dag_svg + "<br/>" + timeline_svg + (step_details(run) if details else "")
    return _frame(_title(run), body, status=str(run.status))


#: A run with more top-level steps than this keeps no step details in its final picture.
MAX_DETAILS = 60


def step_details(run: Run) -> str:
    """Each top-level step's detail as a ``<details>`` block, collapsed, named by its state and time."""
    from .detail import step_html
    from .style import GLYPHS

    records = run.top_steps
    if len(records) > MAX_DETAILS:
        return f"<div style='font-size:13px'>{len(records)} steps: see NAME.last.steps[...] for each one</div>"
    blocks = []
    for record in records:
        state = "cached" if record.cached else str(record.status)
        took = f" · {record.duration:.2f}s" if record.duration is not None and not record.cached else ""
        blocks.append(
            f'<details class="fm-step" data-step="{escape(record.name)}"><summary style="cursor:pointer">'
            f"{GLYPHS.get(state, '')} {escape(record.name)} · {escape(state)}{took}</summary>"
            f"{step_html(run, record.name)}</details>"
        )
    return (
        f'<div class="fm-details" style="font-size:13px;margin-top:6px;color:{INK_CSS}">'
        '<div style="font-weight:600">steps (click one for its detail)</div>' + "".join(blocks) + "</div>"
    )


def pending_html(shape: Shape, title: str, states: dict[str, NodeState] | None = None) -> str:
    return _frame(title, painter(shape).paint(states or {}))


def _title(run: Run) -> str:
    from ..engine.summary import facts

    head = f"flow '{run.flow}' {run.status}"
    if run.reason:
        head += f" ({run.reason})"
    return "  ·  ".join([head, *facts(run)])


def _frame(title: str, body: str, status: str | None = None) -> str:
    """A picture: its title (a run's carries its status, as the live view's status line does), then
    ``body``, in a box that scrolls sideways."""
    state = f' class="fm-status" data-status="{escape(status)}"' if status else ""
    return (
        '<div class="flowmagic-view flowmagic-static" '
        'style="font-family:-apple-system,\'Segoe UI\',Helvetica,Arial,sans-serif">'
        f"{THEME_CSS}"
        f'<div{state} style="font-weight:600;font-size:14px;margin:4px 0;color:{INK_CSS}">{escape(title)}</div>'
        f"{scrolling(body)}</div>"
    )


def scrolling(svg: str) -> str:
    """``svg`` in a box that scrolls sideways: a wide flow keeps its text size rather than shrinking."""
    return f'<div class="fm-scroll" style="overflow-x:auto;max-width:100%">{svg}</div>'


class FlowPicture:
    """The DAG of a flow, before any run: SVG in a notebook, an outline in a terminal."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..flow.outline import outline

        title = f"flow '{self.flow.name}': {len(self.flow.steps)} steps"
        return {"text/plain": outline(self.flow), "text/html": flow_html(self.flow.shape, title)}

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        from ..flow.outline import outline

        p.text(outline(self.flow))

    def __repr__(self) -> str:
        from ..flow.outline import outline

        return outline(self.flow)


class RunPicture:
    """The final DAG and timeline of a run: SVG in a notebook, the summary in a terminal."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.run.summary(), "text/html": run_html(self.run)}

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.run.summary())

    def __repr__(self) -> str:
        return self.run.summary()
