"""Static pictures: the DAG (and, after a run, its timeline) as HTML with inline SVG.

They are what ``Flow.show()`` and ``Run.show()`` return, and what a saved
notebook keeps beside the live widget, so nbconvert and GitHub still show the
final state. A terminal shows their text instead.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from .dag import DagPainter, NodeState
from .layout import layout
from .state import critical_edges, node_states
from .timeline import paint_timeline

if TYPE_CHECKING:
    from ..engine.record import Run
    from ..flow.flow import Flow
    from ..flow.shape import Shape


def painter(shape: Shape) -> DagPainter:
    return DagPainter(shape, layout(shape))


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


def run_frame(run: Run, dag_svg: str, timeline_svg: str) -> str:
    return _frame(_title(run), dag_svg + "<br/>" + timeline_svg)


def pending_html(shape: Shape, title: str, states: dict[str, NodeState] | None = None) -> str:
    return _frame(title, painter(shape).paint(states or {}))


def _title(run: Run) -> str:
    from ..engine.summary import facts

    head = f"flow '{run.flow}' {run.status}"
    if run.reason:
        head += f" ({run.reason})"
    return "  ·  ".join([head, *facts(run)])


def _frame(title: str, body: str) -> str:
    return (
        '<div class="flowmagic-static" style="font-family:-apple-system,\'Segoe UI\',Helvetica,Arial,sans-serif">'
        f'<div style="font-weight:600;font-size:13px;margin:4px 0">{escape(title)}</div>{body}</div>'
    )


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
