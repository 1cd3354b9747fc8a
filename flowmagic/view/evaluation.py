"""An evaluation as HTML: variants x scorers, changes since the last evaluation marked."""

from __future__ import annotations

from html import escape
from typing import Any

from .compare import table

_UP, _DOWN = "#15803d", "#b91c1c"


def evaluation_html(ev: Any) -> str:
    header = ["variant", *ev.scorers, "failed", "tokens", "cost", "mean time"]
    rows = []
    for t in ev.table_rows():
        cells = [_cell(t["cells"][s]) for s in ev.scorers]
        cost = "-" if t["cost"] is None else f"${t['cost']:.4f}"
        rows.append(
            [
                escape(t["variant"]),
                *cells,
                f"{t['failed']}/{t['runs']}",
                f"{t['tokens']:,}",
                cost,
                f"{t['seconds']:.2f}s",
            ]
        )
    title = escape(ev.text().splitlines()[0])
    note = escape(ev.text().splitlines()[-1])
    return (
        f'<div class="fm-evaluation"><div style="font-weight:600;font-size:13px">{title}</div>'
        f"{table(header, rows, 'fm-evaluation-table', raw=True)}"
        f'<div style="font-size:11px;color:#6b7280">{note}; ev.df for every row, ev.examples() for the failing ones, '
        "ev.show(i) for one run</div></div>"
    )


def _cell(c: Any) -> str:
    if c.mean is None:
        return "-"
    text = f"<b>{c.mean:.2f}</b> <span style='color:#6b7280'>±{c.spread:.2f} · {c.pass_rate:.0%} pass</span>"
    if c.change is not None and abs(c.change) > 1e-9:
        colour, mark = (_UP, "▲") if c.change > 0 else (_DOWN, "▼")
        text += f" <span class='fm-change' style='color:{colour};font-weight:600'>{mark}{c.change:+.2f}</span>"
    return text
