"""The timeline as text, for terminals: a lane per branch, a bar per step.

    timeline of 1.28s: █ critical path, ▒ other steps
    main        │██████         ████                    │
    song        │      ██████                           │
"""

from __future__ import annotations

from ..engine.record import Run
from .timeline import lanes

CRITICAL, OTHER = "█", "▒"


def text_timeline(run: Run, width: int = 48) -> str:
    if run.started is None or run.finished is None:
        return ""
    span = max(run.finished - run.started, 1e-9)
    by_lane = lanes(run)
    critical = set(run.critical_path)
    label = min(max((len(name) for name in by_lane), default=4), 24)
    lines = [f"timeline of {span:.2f}s: {CRITICAL} critical path, {OTHER} other steps"]
    for lane, rows in by_lane.items():
        for i, row in enumerate(rows):
            cells = [" "] * width
            for record in row:
                start = (record.started or run.started) - run.started
                end = (record.finished if record.finished is not None else run.finished) - run.started
                first = min(width - 1, int(start / span * width))
                last = max(first, min(width - 1, int(end / span * width - 1e-9)))
                mark = CRITICAL if record.name in critical else OTHER
                for cell in range(first, last + 1):
                    cells[cell] = mark
            name = lane[:label] if i == 0 else ""
            lines.append(f"  {name:<{label}}  │{''.join(cells)}│")
    return "\n".join(lines)
