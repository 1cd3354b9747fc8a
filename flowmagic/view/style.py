"""Where a node is coloured: one palette for the DAG, the timeline and the legend."""

from __future__ import annotations

from typing import NamedTuple


class Look(NamedTuple):
    fill: str
    stroke: str
    text: str
    dash: str = ""  # an SVG stroke-dasharray, or nothing


LOOKS: dict[str, Look] = {
    "pending": Look("#f3f4f6", "#9ca3af", "#4b5563"),
    "queued": Look("#f3f4f6", "#6b7280", "#374151"),
    "running": Look("#dbeafe", "#2563eb", "#1e3a8a"),
    "succeeded": Look("#dcfce7", "#16a34a", "#14532d"),
    "cached": Look("#e0f2f1", "#0f766e", "#134e4a", "4 2"),
    "failed": Look("#fee2e2", "#dc2626", "#7f1d1d"),
    "skipped": Look("#f9fafb", "#d1d5db", "#9ca3af", "3 3"),
    "cancelled": Look("#fef3c7", "#d97706", "#78350f", "3 3"),
}

LEGEND = ("pending", "running", "succeeded", "cached", "failed", "skipped", "cancelled")
LABELS = {"succeeded": "done"}

FONT = "-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
CRITICAL = "#111827"
EDGE = "#9ca3af"
GROUP_STROKE = "#5b8def"
BRANCH_STROKE = "#b6bcc6"
ARM_STROKE = "#b07d2b"  # an arm of an if block
LOOP_STROKE = "#7c3aed"  # a for loop
SUBFLOW_STROKE = "#0f766e"  # a step that runs another flow


def look(state: str, cached: bool = False) -> Look:
    if cached and state == "succeeded":
        return LOOKS["cached"]
    return LOOKS.get(state, LOOKS["pending"])
