"""Where a node is coloured: one palette for the DAG, the timeline and the legend.

Every SVG carries its colours twice: as attributes (what a reader with no CSS shows, the light
look) and through :data:`THEME_CSS`, which takes them from the notebook's own theme (JupyterLab's
``--jp-*`` variables, then VS Code's ``--vscode-*``, then the light colours), so light, dark and
high-contrast themes read well. A state is told by a word, a glyph and the outline's dash as
well as by colour.
"""

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


#: A glyph before each state's word, for readers who do not tell the colours apart.
GLYPHS = {
    "pending": "·",
    "queued": "·",
    "running": "▸",
    "succeeded": "✓",
    "cached": "↺",
    "failed": "✗",
    "skipped": "–",
    "cancelled": "■",
}


def _var(jp: str, vscode: str, fallback: str) -> str:
    return f"var(--jp-{jp}, var(--vscode-{vscode}, {fallback}))"


INK = _var("ui-font-color0", "foreground", "#111827")  # the strongest text of the theme
SOFT_INK = _var("ui-font-color1", "descriptionForeground", "#374151")
PAPER = _var("layout-color1", "editor-background", "#ffffff")
LINE = _var("border-color1", "editorWidget-border", "#9ca3af")
_STATE = {  # the colour of each state's outline and bar
    "pending": _var("border-color1", "disabledForeground", "#9ca3af"),
    "queued": _var("border-color1", "disabledForeground", "#6b7280"),
    "running": _var("brand-color1", "charts-blue", "#2563eb"),
    "succeeded": _var("success-color1", "charts-green", "#16a34a"),
    "cached": _var("info-color1", "charts-purple", "#0f766e"),
    "failed": _var("error-color1", "charts-red", "#dc2626"),
    "skipped": _var("border-color2", "disabledForeground", "#d1d5db"),
    "cancelled": _var("warn-color1", "charts-yellow", "#d97706"),
}


#: A state's outline: its weight, and its dash, told apart without colour.
_OUTLINE = {
    "failed": "stroke-width:3",
    "running": "stroke-width:2.5;animation:fm-pulse 1.2s infinite",
    "skipped": "stroke-dasharray:3 3;opacity:.75",
    "cancelled": "stroke-dasharray:3 3",
    "cached": "stroke-dasharray:4 2",
    "succeeded": "stroke-width:1.5",
    "pending": "stroke-width:1",
}


def state_colour(state: str) -> str:
    """The theme's colour of ``state`` (a CSS value)."""
    return _STATE.get(state, _STATE["pending"])


def _state_rules() -> str:
    rules = ["@keyframes fm-pulse{50%{stroke-opacity:.35}}"]
    for state, outline in _OUTLINE.items():
        sel = f'[data-state="{state}"]' if state != "cached" else '[data-cached="true"]'
        rules.append(f".fm-node{sel}>.fm-box{{{outline}}}")
    for state, colour in _STATE.items():
        sel = f'[data-state="{state}"]' if state != "cached" else '[data-cached="true"]'
        tint = "8%" if state in ("pending", "queued", "skipped") else "22%"
        rules.append(
            f".fm-node{sel}>.fm-box{{stroke:{colour};fill:color-mix(in srgb,{colour} {tint},{PAPER})}}"
            f".fm-bar{sel}{{stroke:{colour};fill:color-mix(in srgb,{colour} 45%,{PAPER})}}"
            f".fm-key{sel}>rect{{stroke:{colour};fill:color-mix(in srgb,{colour} {tint},{PAPER})}}"
        )
    return "".join(rules)


#: The theme's colours for the view's SVGs (see the module docstring).
THEME_CSS = (
    "<style>"
    f".fm-ink{{fill:{INK}}}.fm-soft{{fill:{SOFT_INK}}}"
    f".fm-node text,.fm-bar-label,.fm-key text{{fill:{INK}}}.fm-node .fm-caption{{fill:{SOFT_INK}}}"
    f".fm-edge{{stroke:{LINE}}}.fm-arrow{{fill:{LINE}}}.fm-edge-critical{{stroke:{INK}}}.fm-arrow-critical{{fill:{INK}}}"
    f".fm-cluster>rect{{fill:{PAPER}}}"
    f'.fm-cluster[data-kind="group"]>rect{{fill:color-mix(in srgb,{PAPER} 94%,#5b8def)}}'
    f".fm-cluster>text{{fill:{SOFT_INK}}}.fm-grid{{stroke:color-mix(in srgb,{LINE} 35%,{PAPER})}}"
    f'.fm-bar[data-critical="true"]{{stroke:{INK};stroke-width:2.5}}'
    f".fm-track{{fill:color-mix(in srgb,{LINE} 30%,{PAPER})}}"
    f'.fm-node[data-selected="true"]>.fm-box,.fm-bar[data-selected="true"]{{stroke:{INK};stroke-width:3.5}}'
    f".flowmagic-view,.fm-ink-text{{color:{INK}}}"
    ".flowmagic-view svg{display:block}" + _state_rules() + "</style>"
)
