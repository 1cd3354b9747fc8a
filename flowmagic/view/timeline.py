"""The per-branch timeline as SVG: one lane per branch, a bar per step.

Steps outside any branch share one lane (``steps``, or ``outside branches`` beside branch
lanes), the steps of a loop's iterations (``draft#2``) or of a subflow (``cats/notes``) a lane
named after the loop or the calling step, and a map's elements (``reviews[3]``) a lane of
their own, a thin bar each; steps of one lane that
overlapped in time get rows of their own, so no bar hides another. The
critical path is outlined, and the header gives wall time, summed step time
and the speed-up parallelism bought.
"""

from __future__ import annotations

import functools
import heapq
import math
import time
from html import escape
from typing import Any

from ..engine.record import Run, StepRecord
from ..flow.shape import Shape
from .style import CRITICAL, FONT, look

LABEL_WIDTH = 120.0  # at least; wider for longer lane names, which are never cut
PLOT_WIDTH = 560.0
ROW = 22.0
BAR = 16.0
HEADER = 30.0
AXIS = 24.0
MAX_LANES = 30
MAX_ELEMENTS = 100  # a map with more elements is one bar: its elements would be a wall of rows
CHAR = 7.0  # the width of a character of 12 px text


def lanes(run: Run) -> dict[str, list[list[StepRecord]]]:
    """Lane name -> rows of bars; a lane per branch, in order of first start.

    A flow with more than ``MAX_LANES`` branches gets a lane per parallel group
    instead, its steps packed into as few rows as they allow.
    """
    every = list(run.steps.values())
    # a loop's iterations and a subflow's steps get a lane of their own
    nested = {r.name for r in every if r.kind == "loop"}
    nested |= {r.map for r in every if r.map is not None and r.name.startswith(r.map + "/")}
    sizes: dict[str, int] = {}
    for r in every:
        if r.map is not None:
            sizes[r.map] = sizes.get(r.map, 0) + 1
    nested |= {m for m, count in sizes.items() if count <= MAX_ELEMENTS}  # a map's elements, each a bar
    records = sorted(
        (r for r in every if r.started is not None and (r.map is None or (r.map in nested and r.kind != "if"))),
        key=lambda r: (r.started or 0.0, r.name),
    )
    by_group = len({r.branch for r in records}) > MAX_LANES
    outside = "outside branches" if any(r.branch for r in records) else "steps"
    result: dict[str, list[list[StepRecord]]] = {}
    packers: dict[str, _Rows] = {}
    for record in records:
        if record.map is not None:
            element = not record.name.startswith(record.map + "/") and "#" not in record.name
            lane = f"{record.map} {'elements' if element else 'steps'}"
        else:
            lane = (_group_lane(record.group) if by_group and record.group else record.branch) or outside
        if lane not in packers:
            packers[lane] = _Rows(result.setdefault(lane, []))
        packers[lane].place(record)
    return result


class _Rows:
    """A lane's rows, filled in order of start: each bar goes in the first row whose last bar ended
    before it started, else in a new row. Bars come in order of start, so a row that is free for one
    stays free for the next: free rows are kept in a heap by number, busy ones by their end."""

    def __init__(self, rows: list[list[StepRecord]]) -> None:
        self.rows = rows
        self.free: list[int] = []
        self.busy: list[tuple[float, int]] = []

    def place(self, record: StepRecord) -> None:
        started = record.started or 0.0
        while self.busy and self.busy[0][0] <= started:
            heapq.heappush(self.free, heapq.heappop(self.busy)[1])
        if self.free:
            number = heapq.heappop(self.free)
            self.rows[number].append(record)
        else:
            number = len(self.rows)
            self.rows.append([record])
        ended = record.finished if record.finished is not None else math.inf  # still running: busy
        heapq.heappush(self.busy, (ended, number))


def _group_lane(group: str) -> str:
    return group if group.startswith("parallel-") else f"parallel {group}"  # unnamed: parallel-1


#: The hatching over the part of a bar an ``llm`` step spent in a server's queue (Run.queued).
HATCH = (
    '<defs><pattern id="fm-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="6" height="6" fill="#ffffff" fill-opacity="0.5"/>'
    '<line x1="0" y1="0" x2="0" y2="6" stroke="#6b7280" stroke-width="2"/></pattern></defs>'
)


def paint_timeline(run: Run, now: float | None = None) -> str:
    """The timeline SVG of ``run``; bars of running steps reach ``now``.

    While the run goes on, its time axis grows in round steps (1, 2, 5 x 10^k seconds), so it is
    not rescaled at every repaint; once the run is over, it spans the wall time.
    """
    now, start, end, span, queued, critical = _window(run, now)
    scale = PLOT_WIDTH / span
    by_lane = lanes(run)
    rows = sum(len(r) for r in by_lane.values())
    left = max(LABEL_WIDTH, max((len(lane) for lane in by_lane), default=0) * CHAR + 20)
    height = HEADER + max(rows, 1) * ROW + AXIS + 20
    width = left + PLOT_WIDTH + 70
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="fm-timeline" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" style="max-width:none">',
        HATCH,
        f'<text class="fm-ink" x="8" y="19" font-size="13" font-weight="600" fill="#111827">'
        f"{escape(_header(run, end - start))}</text>",
    ]
    y = HEADER
    for lane, lane_rows in by_lane.items():
        top = y
        for row in lane_rows:
            for i, record in enumerate(row):
                after = row[i + 1].started if i + 1 < len(row) else None
                bar = _bar(record, y, start, scale, now, record.name in critical, queued.get(record.name, 0.0))
                out.append(bar.paint(left, after, start, scale))
            y += ROW
        out.append(
            f'<text class="fm-soft" x="{left - 8:.0f}" y="{top + BAR - 3:.1f}" text-anchor="end" font-size="12" '
            f'fill="#374151">{escape(lane)}</text>'
        )
        out.append(
            f'<line class="fm-grid" x1="8" x2="{width - 8:.0f}" y1="{y - 2:.1f}" y2="{y - 2:.1f}" stroke="#e5e7eb"/>'
        )
    out.append(_axis(y + 2, span, scale, left))
    if critical:
        out.append(
            f'<text class="fm-ink" x="{width - 8:.0f}" y="{y + AXIS + 12:.1f}" text-anchor="end" font-size="12" '
            f'fill="{CRITICAL}">outlined: critical path</text>'
        )
    out.append("</svg>")
    return "".join(out)


def timeline_data(run: Run, now: float | None = None) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """What the live view's front end draws the timeline from: its frame (header, span, the time
    since the start, lane order) and every bar as numbers, ``name -> [lane, row, start, end, state,
    cached, critical, queued, thin]`` in seconds from the run's start (``end`` None while it runs:
    the front end draws it to ``elapsed``). The same placement rules as :func:`paint_timeline`."""
    now, start, end, span, queued, critical = _window(run, now)
    bars: dict[str, list[Any]] = {}
    order = []
    for lane, lane_rows in lanes(run).items():
        order.append(lane)
        for number, row in enumerate(lane_rows):
            for r in row:
                began = round((r.started or start) - start, 3)
                ended = round(r.finished - start, 3) if r.finished is not None else None
                wait = round(queued.get(r.name, 0.0), 3)
                bars[r.name] = [lane, number, began, ended, str(r.status), r.cached, r.name in critical, wait, _thin(r)]
    frame = {
        "header": _header(run, end - start),
        "span": round(span, 3),
        "elapsed": round(end - start, 3),
        "lanes": order,
        "critical_note": bool(critical),
    }
    return frame, bars


def _header(run: Run, wall: float) -> str:
    step_time = run.step_time  # (each of these walks every step: once each here)
    queued = sum(run.queued().values())
    parts = [f"wall {wall:.2f}s", f"step time {step_time:.2f}s"]
    if queued >= 0.05:
        parts.append(f"{queued:.2f}s of it queued at the server (hatched)")
    if run.finished is not None and wall > 0:
        parts.append(f"speed-up {(step_time - queued) / wall:.1f}x")
    return "  ·  ".join(parts)


class _Bar:
    """One step's bar, placed once the lane's label column is known."""

    def __init__(self, record: StepRecord, y: float, began: float, ended: float, critical: bool, wait: float) -> None:
        self.record, self.y, self.began, self.ended, self.critical, self.wait = record, y, began, ended, critical, wait

    def paint(self, left: float, after: float | None, start: float, scale: float) -> str:
        record, y = self.record, self.y
        x = left + (self.began - start) * scale
        w = max((self.ended - self.began) * scale, 2.0)
        state, paint, ink = _bar_parts(record.status, record.cached, self.critical)
        label = escape(record.name)
        title = f"{label}: {record.status}, {self.ended - self.began:.3f}s" + (  # (escaped: the name is)
            f", {record.attempts} attempts" if record.attempts > 1 else ""
        )
        waiting = ""
        if self.wait * scale >= 2.0:  # its time in a server's queue, hatched
            title += f", {self.wait:.3f}s of it queued at the server"
            waiting = (
                f'<rect class="fm-wait" x="{x:.1f}" y="{y:.1f}" width="{min(self.wait * scale, w):.1f}" '
                f'height="{BAR}" rx="3" fill="url(#fm-hatch)"/>'
            )
        needed = len(record.name) * CHAR + 8
        room = (left + (after - start) * scale) - (x + w) if after is not None else float("inf")
        text = ""
        if needed < w or needed + 4 < room:  # inside the bar, or right of it where no bar follows too soon
            text_x = x + 4 if needed < w else x + w + 4
            text = (
                f'<text class="fm-bar-label" x="{text_x:.1f}" y="{y + BAR - 4:.1f}" font-size="12" '
                f'fill="{ink}">{label}</text>'
            )
        return (
            f"<g><title>{title}</title>"
            f'<rect class="fm-bar" data-step="{label}" {state} x="{x:.1f}" y="{y:.1f}" '
            f'width="{w:.1f}" height="{BAR}" rx="3" {paint}/>{waiting}{text}</g>'
        )


@functools.cache
def _bar_parts(status: str, cached: bool, critical: bool) -> tuple[str, str, str]:
    """What a bar's state adds to it: its state attributes, its fill and outline (the critical path's
    dark and thick), and its label's colour (one per state, made once)."""
    colours = look(status, cached)
    state = f'data-state="{status}"' + (' data-cached="true"' if cached else "")
    if critical:
        stroke = f'data-critical="true" stroke="{CRITICAL}" stroke-width="2"'
    else:
        stroke = f'stroke="{colours.stroke}" stroke-width="1"'
    return state, f'fill="{colours.fill}" {stroke}', colours.text


def _bar(
    record: StepRecord, y: float, start: float, scale: float, now: float, critical: bool, wait: float = 0.0
) -> _Bar:
    began = record.started or start
    ended = record.finished if record.finished is not None else now
    return _Bar(record, y + (3 if _thin(record) else 0), began, ended, critical, wait)


def _thin(record: StepRecord) -> bool:
    """A map's element: drawn as a thin bar."""
    return record.map is not None and "[" in record.name


def _window(run: Run, now: float | None) -> tuple[float, float, float, float, dict[str, float], set[str]]:
    """What a timeline of ``run`` is drawn against: now, its start and end (now while it runs), the
    span of its axis (grown in round steps while it runs), and, once it is over, the time its steps
    were queued at a server and its critical path."""
    now = time.time() if now is None else now
    start = run.started if run.started is not None else now
    end = run.finished if run.finished is not None else now
    span = max(end - start, 1e-3)
    if run.finished is None:
        return now, start, end, _round_up(span), {}, set()
    return now, start, end, span, run.queued(), set(run.critical_path)


def _axis(y: float, span: float, scale: float, left: float = LABEL_WIDTH) -> str:
    step = _tick(span)
    out = [
        f'<line class="fm-edge" x1="{left:.0f}" x2="{left + PLOT_WIDTH:.0f}" y1="{y:.1f}" y2="{y:.1f}" '
        'stroke="#9ca3af"/>'
    ]
    count = int(span / step + 1e-9)
    for i in range(count + 1):
        x = left + i * step * scale
        out.append(
            f'<line class="fm-edge" x1="{x:.1f}" x2="{x:.1f}" y1="{y:.1f}" y2="{y + 4:.1f}" stroke="#9ca3af"/>'
            f'<text class="fm-soft" x="{x:.1f}" y="{y + 17:.1f}" text-anchor="middle" font-size="12" '
            f'fill="#374151">{_seconds(i * step)}</text>'
        )
    return "".join(out)


def reserved_timeline(shape: Shape) -> float:
    """The height a run of ``shape`` will likely need, reserved at its start so the view does not
    push the cells below as lanes appear: a lane per step in a parallel group, one for the rest,
    a few rows for each loop, subflow and map."""
    grouped = {c.id for c in shape.clusters if c.kind in ("group", "branch")}
    rows = 1 + sum(1 for n in shape.nodes if n.cluster in grouped)
    rows += sum(6 if n.kind == "map" else 2 for n in shape.nodes if n.kind in ("map", "loop"))
    rows += sum(2 for c in shape.clusters if c.kind == "subflow")
    return HEADER + min(rows, 40) * ROW + AXIS + 20


def _round_up(span: float) -> float:
    """The round span (1, 2 or 5 x 10^k seconds) at or above ``span``."""
    magnitude = 10.0 ** math.floor(math.log10(span))
    for factor in (1, 2, 5, 10):
        if span <= factor * magnitude * (1 + 1e-9):
            return factor * magnitude
    return 10 * magnitude


def _tick(span: float) -> float:
    """A round interval giving about five ticks."""
    raw = span / 5
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _seconds(value: float) -> str:
    return f"{value:.3g}s" if value else "0"
