"""The timeline as text, for terminals: a row per step (a map is one row), in the order the
steps started, each labelled with its step.

    timeline of 1.28s: █ critical path, ▒ other steps
    title       │██████                                 │
    song        │      ██████                           │
    characters  │      ▒▒▒                              │
"""

from __future__ import annotations

from ..engine.record import Run

CRITICAL, OTHER = "█", "▒"


def text_timeline(run: Run, width: int = 48) -> str:
    if run.started is None or run.finished is None:
        return ""
    begun = run.started
    span = max(run.finished - begun, 1e-9)
    steps = sorted((r for r in run.top_steps if r.started is not None), key=lambda r: r.started or begun)
    critical = set(run.critical_path)
    label = min(max((len(r.name) for r in steps), default=4), 24)
    lines = [f"timeline of {span:.2f}s: {CRITICAL} critical path, {OTHER} other steps"]
    for record in steps:
        cells = [" "] * width
        start = (record.started or begun) - begun
        end = (record.finished if record.finished is not None else run.finished) - begun
        first = min(width - 1, int(start / span * width))
        last = max(first, min(width - 1, int(end / span * width - 1e-9)))
        mark = CRITICAL if record.name in critical else OTHER
        for cell in range(first, last + 1):
            cells[cell] = mark
        lines.append(f"  {record.name[:label]:<{label}}  │{''.join(cells)}│")
    return "\n".join(lines)
