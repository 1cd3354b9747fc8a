"""HTML for comparing runs: the history table and a run-to-run diff with changed words marked."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine.diff import RunDiff
    from ..engine.history import HistoryTable

_CELL = "padding:3px 10px;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top"
_PRE = "white-space:pre-wrap;overflow-wrap:anywhere;margin:0;font-size:12px;max-height:20em;overflow:auto"
_DELETED = "background:#fee2e2;color:#991b1b;text-decoration:line-through"
_INSERTED = "background:#dcfce7;color:#166534"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], css_class: str, raw: bool = False) -> str:
    """A plain HTML table; cells are escaped unless ``raw``."""
    head = "".join(f'<th style="{_CELL};font-weight:600">{escape(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td style="{_CELL}">{c if raw else escape(c)}</td>' for c in row) + "</tr>" for row in rows
    )
    return (
        f'<table class="{css_class}" style="border-collapse:collapse;font-size:12px;margin:4px 0">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def history_html(history: HistoryTable) -> str:
    if not history.rows:
        return f"<i>flow '{escape(history.name)}' has not run yet</i>"
    return table(history.HEADER, history.cells(), "fm-history")


def diff_html(diff: RunDiff) -> str:
    title = f"<div style=\"font-weight:600;font-size:13px\">run {escape(diff.before)} → run {escape(diff.after)}</div>"
    if not diff.changes:
        return f'<div class="fm-diff">{title}<i>every output is the same</i></div>'
    rows = []
    for change in diff.changes:
        old, new = marked(change.before, change.after)
        rows.append(
            [
                f'<span data-step="{escape(change.step)}">{escape(change.step)}</span>'
                + (f" <i>({escape(change.kind)})</i>" if change.kind != "changed" else ""),
                f'<pre style="{_PRE}">{old}</pre>',
                f'<pre style="{_PRE}">{new}</pre>',
            ]
        )
    unchanged = ""
    if diff.unchanged:
        unchanged = f'<div style="font-size:12px;color:#6b7280">unchanged: {escape(", ".join(diff.unchanged))}</div>'
    header = ["step", f"run {diff.before}", f"run {diff.after}"]
    return f'<div class="fm-diff">{title}{table(header, rows, "fm-diff-table", raw=True)}{unchanged}</div>'


def marked(before: str, after: str) -> tuple[str, str]:
    """Both texts as HTML, words only in ``before`` struck out and words only in ``after`` highlighted."""
    a, b = re.split(r"(\s+)", before), re.split(r"(\s+)", after)
    old: list[str] = []
    new: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        left, right = escape("".join(a[i1:i2])), escape("".join(b[j1:j2]))
        if op == "equal":
            old.append(left)
            new.append(right)
            continue
        if left:
            old.append(f'<del style="{_DELETED}">{left}</del>')
        if right:
            new.append(f'<ins style="{_INSERTED}">{right}</ins>')
    return "".join(old), "".join(new)
