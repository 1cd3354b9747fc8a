"""Several runs on one time axis: ``flowmagic.compare(sequential, parallel)``.

Each run gets a block with its title, lanes and bars as its own timeline draws them, but
every block shares one scale (the same pixels per second, the longest run filling the
width), so a run that took 2.6 times as long is drawn 2.6 times as wide. One axis runs
under the last block, its ticks carried up through the others as faint lines, and a
dashed line marks where each run ended. A terminal shows a line per run and the result::

    sequential  wall 2.41s  speed-up 1.0x   ████████████████████████
    parallel    wall 0.91s  speed-up 3.9x   █████████                 2.6x faster than sequential
    parallel 0.91 s vs sequential 2.41 s: 2.6x faster
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from ..engine.history import default_history
from ..engine.record import Run, StepRecord
from ..flow.flow import Flow
from .picture import scrolling
from .style import FONT, INK, THEME_CSS
from .timeline import AXIS, BAR, CHAR, HATCH, HEADER, LABEL_WIDTH, PLOT_WIDTH, ROW, _bar, _seconds, _tick, lanes

GAP = 10.0  # between two runs' blocks
TEXT_BAR = 24  # characters of the longest run's bar in the text form
_GRID, _END = "#e5e7eb", "#6b7280"
Lanes = dict[str, list[list[StepRecord]]]


def compare(*runs: Run | Flow, labels: Sequence[str] | None = None) -> Comparison:
    """Runs (or flows, meaning their last runs) drawn on one shared time axis.

    ``labels`` names them in the same order (default: ``flow NAME #N``, N its number in
    ``%flow history NAME``). Shows as a picture in a notebook and as text in a terminal.
    """
    if not runs:
        raise ValueError("compare needs at least one run, e.g. compare(sequential, parallel)")
    picked = [_run_of(item) for item in runs]
    if labels is None:
        names = [default_label(run) for run in picked]
    else:
        names = [str(label) for label in labels]
        if len(names) != len(picked):
            raise ValueError(f"{len(picked)} runs but {len(names)} labels: give one label per run")
    return Comparison(picked, names)


def _run_of(item: Any) -> Run:
    if isinstance(item, Flow):
        if item.last is None:
            raise ValueError(f"flow '{item.name}' has not run yet: run it, then compare its runs")
        item = item.last
    if not isinstance(item, Run):
        raise TypeError(f"compare takes runs (or flows, for their last run), not {type(item).__name__}")
    if item.started is None or item.finished is None:
        raise ValueError(f"a run of flow '{item.flow}' is still going on ({item.status}): compare it once it is over")
    return item


def default_label(run: Run) -> str:
    """``flow NAME #N`` (its number in the history, when it is kept there), and how it was run."""
    numbers = [e.number for e in default_history.entries(run.flow) if e.run is run]
    label = f"flow {run.flow}" + (f" #{numbers[0]}" if numbers else "")
    how = [
        key if value is True else f"{key} {value}"
        for key, value in run.settings.items()
        if key in ("sequential", "workers") and value not in (False, None)
    ]
    return label + (f" ({', '.join(how)})" if how else "")


class Comparison:
    """Runs side by side in time: SVG in a notebook, a line per run in a terminal."""

    def __init__(self, runs: list[Run], labels: list[str]) -> None:
        self.runs = runs
        self.labels = labels

    def wall(self, index: int) -> float:
        run = self.runs[index]
        return max((run.finished or 0.0) - (run.started or 0.0), 0.0)

    @property
    def longest(self) -> float:
        return max(max(self.wall(i) for i in range(len(self.runs))), 1e-3)

    @property
    def scale(self) -> float:
        """Pixels per second, the same for every run: the longest run fills the plot."""
        return PLOT_WIDTH / self.longest

    def relative(self, index: int) -> str:
        """How run ``index`` did against the first, in words (nothing for the first)."""
        if index == 0:
            return ""
        return _faster(self.wall(0), self.wall(index), f" than {self.labels[0]}")

    def result(self) -> str:
        """One line: the fastest run against the slowest."""
        order = sorted(range(len(self.runs)), key=self.wall)
        fast, slow = order[0], order[-1]
        if fast == slow:
            return f"{self.labels[fast]} {self.wall(fast):.2f} s"
        said = _faster(self.wall(slow), self.wall(fast), "") or "no time to compare"
        return f"{self.labels[fast]} {self.wall(fast):.2f} s vs {self.labels[slow]} {self.wall(slow):.2f} s: {said}"

    def text(self) -> str:
        width = max(len(label) for label in self.labels)
        lines = []
        for i, (run, label) in enumerate(zip(self.runs, self.labels, strict=True)):
            bar = "█" * max(1, round(self.wall(i) / self.longest * TEXT_BAR))
            speedup = f"{run.speedup:.1f}x" if run.speedup is not None else "-"
            line = f"{label:<{width}}  wall {self.wall(i):.2f}s  speed-up {speedup:<5}  {bar:<{TEXT_BAR}}"
            lines.append(f"{line}  {self.relative(i)}".rstrip())
        return "\n".join([*lines, self.result()])

    def svg(self) -> str:
        scale, by_run = self.scale, [lanes(run) for run in self.runs]
        names = [lane for by_lane in by_run for lane in by_lane]
        left = max(LABEL_WIDTH, max((len(lane) for lane in names), default=0) * CHAR + 20)
        width = left + PLOT_WIDTH + 70
        step = _tick(self.longest)
        ticks = [left + k * step * scale for k in range(int(self.longest / step + 1e-9) + 1)]
        out = [HATCH]
        y = 0.0
        for i, by_lane in enumerate(by_run):
            y = self._block(out, i, by_lane, y, left, ticks)
        out.append(
            f'<g class="fm-axis" data-scale="{scale:.4f}"><line class="fm-edge" x1="{left:.0f}" '
            f'x2="{left + PLOT_WIDTH:.0f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#9ca3af"/>'
        )
        for k, x in enumerate(ticks):
            out.append(
                f'<line class="fm-edge" x1="{x:.1f}" x2="{x:.1f}" y1="{y:.1f}" y2="{y + 4:.1f}" stroke="#9ca3af"/>'
                f'<text class="fm-soft" x="{x:.1f}" y="{y + 17:.1f}" text-anchor="middle" font-size="12" '
                f'fill="#374151">{_seconds(k * step)}</text>'
            )
        height = y + AXIS + 8
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="fm-timeline fm-together" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" '
            f'style="max-width:100%;height:auto">{"".join(out)}</g></svg>'
        )

    def _block(self, out: list[str], index: int, by_lane: Lanes, top: float, left: float, ticks: list[float]) -> float:
        """Add run ``index``'s title, lanes and bars from ``top`` down to ``out``; return where they end."""
        run, scale = self.runs[index], self.scale
        start, end = run.started or 0.0, run.finished or 0.0
        critical, queued = set(run.critical_path), run.queued()
        speedup = f"speed-up {run.speedup:.1f}x" if run.speedup is not None else ""
        status = run.status if run.status != "succeeded" else ""
        facts = (self.labels[index], f"wall {end - start:.2f}s", speedup, status, self.relative(index))
        title = "  ·  ".join(p for p in facts if p)
        out.append(
            f'<g class="fm-run" data-run="{index}" data-label="{escape(self.labels[index])}" '
            f'data-wall="{end - start:.4f}"><text class="fm-ink" x="8" y="{top + 19:.1f}" font-size="13" '
            f'font-weight="600" fill="#111827">{escape(title)}</text>'
        )
        y = first = top + HEADER
        rows = sum(len(r) for r in by_lane.values())
        out.extend(  # the shared axis's ticks, carried up through every block
            f'<line class="fm-grid" x1="{x:.1f}" x2="{x:.1f}" y1="{y - 4:.1f}" y2="{y + max(rows, 1) * ROW - 2:.1f}" '
            f'stroke="{_GRID}" stroke-dasharray="2 3"/>'
            for x in ticks
        )
        for lane, lane_rows in by_lane.items():
            lane_top = y
            for row in lane_rows:
                for i, record in enumerate(row):
                    after = row[i + 1].started if i + 1 < len(row) else None
                    wait = queued.get(record.name, 0.0)
                    bar = _bar(record, y, start, scale, end, record.name in critical, wait)
                    out.append(bar.paint(left, after, start, scale))  # as the run's own timeline draws it
                y += ROW
            out.append(
                f'<text class="fm-soft" x="{left - 8:.0f}" y="{lane_top + BAR - 3:.1f}" text-anchor="end" '
                f'font-size="12" fill="#374151">{escape(lane)}</text><line class="fm-grid" x1="8" '
                f'x2="{left + PLOT_WIDTH + 62:.0f}" y1="{y - 2:.1f}" y2="{y - 2:.1f}" stroke="{_GRID}"/>'
            )
        y = max(y, first + ROW)
        x = left + (end - start) * scale  # where this run ended, on the shared scale
        out.append(
            f'<line class="fm-end" x1="{x:.1f}" x2="{x:.1f}" y1="{first - 4:.1f}" y2="{y - 2:.1f}" stroke="{_END}" '
            f'stroke-dasharray="4 3"/><text class="fm-soft" x="{x + 4:.1f}" y="{first + 8:.1f}" font-size="11" '
            f'fill="{_END}">{end - start:.2f}s</text></g>'
        )
        return y + GAP

    def html(self) -> str:
        note = ""
        if any(run.critical_path for run in self.runs):
            note = f'<span style="font-weight:400;font-size:12px;color:{INK}">  (outlined: critical path)</span>'
        return (
            '<div class="flowmagic-static fm-compare" style="font-family:-apple-system,\'Segoe UI\',Helvetica,'
            f'Arial,sans-serif">{THEME_CSS}<div style="font-weight:600;font-size:14px;margin:4px 0;color:{INK}">'
            f"{escape(self.result())}{note}</div>{scrolling(self.svg())}</div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.text(), "text/html": self.html()}

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def __repr__(self) -> str:
        return self.text()


def _faster(before: float, after: float, than: str) -> str:
    """``2.6x faster`` when ``after`` took less time than ``before``, ``1.3x slower`` when more."""
    if before <= 0 or after <= 0:
        return ""
    ratio = before / after
    if 1 / 1.05 < ratio < 1.05:
        return f"about as fast{than}"
    if ratio >= 1:
        return f"{ratio:.1f}x faster{than}"
    return f"{1 / ratio:.1f}x slower{than}"
