"""The per-branch timeline as SVG: one lane per branch, a bar per step.

Steps outside any branch share the ``main`` lane, the steps of a loop's iterations
(``draft#2``) or of a subflow (``cats/notes``) a lane named after the loop or the calling
step; steps of one lane that
overlapped in time get rows of their own, so no bar hides another. The
critical path is outlined, and the header gives wall time, summed step time
and the speed-up parallelism bought.
"""

from __future__ import annotations

import math
import time
from html import escape

from ..engine.record import Run, StepRecord
from .style import CRITICAL, FONT, look

LABEL_WIDTH = 120.0
PLOT_WIDTH = 560.0
ROW = 20.0
BAR = 14.0
HEADER = 30.0
AXIS = 22.0
MAX_LANES = 30


def lanes(run: Run) -> dict[str, list[list[StepRecord]]]:
    """Lane name -> rows of bars; a lane per branch, in order of first start.

    A flow with more than ``MAX_LANES`` branches gets a lane per parallel group
    instead, its steps packed into as few rows as they allow.
    """
    every = list(run.steps.values())
    # a loop's iterations and a subflow's steps get a lane of their own
    nested = {r.name for r in every if r.kind == "loop"}
    nested |= {r.map for r in every if r.map is not None and r.name.startswith(r.map + "/")}
    records = sorted(
        (r for r in every if r.started is not None and (r.map is None or (r.map in nested and r.kind != "if"))),
        key=lambda r: (r.started or 0.0, r.name),
    )
    by_group = len({r.branch for r in records}) > MAX_LANES
    result: dict[str, list[list[StepRecord]]] = {}
    for record in records:
        if record.map is not None:
            lane = f"{record.map} steps"
        else:
            lane = (_group_lane(record.group) if by_group and record.group else record.branch) or "main"
        rows = result.setdefault(lane, [])
        for row in rows:  # the first row whose last bar ended before this one started
            last = row[-1]
            if last.finished is not None and last.finished <= (record.started or 0.0):
                row.append(record)
                break
        else:
            rows.append([record])
    return result


def _group_lane(group: str) -> str:
    return group if group.startswith("parallel-") else f"parallel {group}"  # unnamed: parallel-1


#: The hatching over the part of a bar an ``llm`` step spent in a server's queue (Run.queued).
HATCH = (
    '<defs><pattern id="fm-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="6" height="6" fill="#ffffff" fill-opacity="0.5"/>'
    '<line x1="0" y1="0" x2="0" y2="6" stroke="#6b7280" stroke-width="2"/></pattern></defs>'
)


def paint_timeline(run: Run, now: float | None = None) -> str:
    """The timeline SVG of ``run``; bars of running steps reach ``now``."""
    now = time.time() if now is None else now
    start = run.started if run.started is not None else now
    end = run.finished if run.finished is not None else now
    span = max(end - start, 1e-3)
    scale = PLOT_WIDTH / span
    by_lane = lanes(run)
    queued = run.queued() if run.finished is not None else {}
    rows = sum(len(r) for r in by_lane.values())
    height = HEADER + max(rows, 1) * ROW + AXIS + 6
    width = LABEL_WIDTH + PLOT_WIDTH + 70
    critical = set(run.critical_path) if run.finished is not None else set()
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="fm-timeline" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" style="max-width:100%;height:auto">',
        HATCH,
        f'<text x="8" y="18" font-size="12" font-weight="600" fill="#111827">'
        f"{escape(_header(run, end - start))}</text>",
    ]
    y = HEADER
    for lane, lane_rows in by_lane.items():
        top = y
        for row in lane_rows:
            for record in row:
                out.append(_bar(record, y, start, scale, now, record.name in critical, queued.get(record.name, 0.0)))
            y += ROW
        out.append(
            f'<text x="{LABEL_WIDTH - 8:.0f}" y="{top + BAR - 2:.1f}" text-anchor="end" font-size="11" '
            f'fill="#374151">{escape(lane)}</text>'
        )
        out.append(f'<line x1="8" x2="{width - 8:.0f}" y1="{y - 2:.1f}" y2="{y - 2:.1f}" stroke="#f0f1f3"/>')
    out.append(_axis(y + 2, span, scale))
    if critical:
        out.append(
            f'<text x="{width - 8:.0f}" y="18" text-anchor="end" font-size="10" fill="{CRITICAL}">'
            "outlined: critical path</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _header(run: Run, wall: float) -> str:
    parts = [f"wall {wall:.2f}s", f"step time {run.step_time:.2f}s"]
    queued = run.step_time - run.served_time
    if queued >= 0.05:
        parts.append(f"{queued:.2f}s of it queued at the server (hatched)")
    if run.finished is not None and run.speedup is not None:
        parts.append(f"speed-up {run.speedup:.1f}x")
    return "  ·  ".join(parts)


def _bar(
    record: StepRecord, y: float, start: float, scale: float, now: float, critical: bool, wait: float = 0.0
) -> str:
    began = record.started or start
    ended = record.finished if record.finished is not None else now
    x = LABEL_WIDTH + (began - start) * scale
    w = max((ended - began) * scale, 2.0)
    colours = look(record.status, record.cached)
    stroke = f'stroke="{CRITICAL}" stroke-width="2"' if critical else f'stroke="{colours.stroke}" stroke-width="1"'
    seconds = ended - began
    label = escape(record.name)
    inside = len(record.name) * 6.2 + 8 < w
    text_x = x + 4 if inside else x + w + 4
    title = f"{record.name}: {record.status}, {seconds:.3f}s" + (
        f", {record.attempts} attempts" if record.attempts > 1 else ""
    )
    waiting = ""
    if wait * scale >= 2.0:  # its time in a server's queue, hatched
        title += f", {wait:.3f}s of it queued at the server"
        waiting = (
            f'<rect class="fm-wait" x="{x:.1f}" y="{y:.1f}" width="{min(wait * scale, w):.1f}" height="{BAR}" '
            f'rx="3" fill="url(#fm-hatch)"/>'
        )
    return (
        f"<g><title>{escape(title)}</title>"
        f'<rect class="fm-bar" data-step="{label}" data-state="{record.status}" x="{x:.1f}" y="{y:.1f}" '
        f'width="{w:.1f}" height="{BAR}" rx="3" fill="{colours.fill}" {stroke}/>{waiting}'
        f'<text x="{text_x:.1f}" y="{y + BAR - 3.5:.1f}" font-size="10" fill="{colours.text}">{label}</text></g>'
    )


def _axis(y: float, span: float, scale: float) -> str:
    step = _tick(span)
    out = [
        f'<line x1="{LABEL_WIDTH:.0f}" x2="{LABEL_WIDTH + PLOT_WIDTH:.0f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#9ca3af"/>'
    ]
    count = int(span / step + 1e-9)
    for i in range(count + 1):
        x = LABEL_WIDTH + i * step * scale
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y:.1f}" y2="{y + 4:.1f}" stroke="#9ca3af"/>'
            f'<text x="{x:.1f}" y="{y + 15:.1f}" text-anchor="middle" font-size="9.5" fill="#6b7280">'
            f"{_seconds(i * step)}</text>"
        )
    return "".join(out)


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
