"""The DAG as SVG: laid out once, then repainted with each node's state.

Everything that does not change during a run (clusters, edges, the frame of
each node) is rendered once into fragments; ``paint`` only joins them with the
parts that carry state, so repainting a 1,000-node flow is cheap.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from html import escape

from ..flow.shape import Shape
from .layout import Box, Edge, Layout
from .style import (
    ARM_STROKE,
    BRANCH_STROKE,
    CRITICAL,
    EDGE,
    FONT,
    GLYPHS,
    GROUP_STROKE,
    LABELS,
    LEGEND,
    LOOP_STROKE,
    SUBFLOW_STROKE,
    look,
)


@dataclass(frozen=True, slots=True)
class NodeState:
    """What one node shows: its status, and for a map its elements' progress."""

    status: str = "pending"
    cached: bool = False
    seconds: float | None = None  # the duration, once finished
    done: int = 0  # map elements succeeded
    total: int | None = None  # map elements, once the map has expanded
    failed: int = 0  # map elements failed


PENDING = NodeState()
_LEGEND_HEIGHT = 26.0
_LEGEND_WIDTH = sum(34 + 6.8 * len(LABELS.get(s, s)) for s in LEGEND) + 8
PROJECTOR_NODES = 12  # a flow of up to this many nodes is drawn at PROJECTOR_SCALE
PROJECTOR_SCALE = 14 / 12  # 12 px names become 14 px
_WIDTH = {"failed": 3.0, "running": 2.5}  # a state is told by its outline's weight and dash too


class DagPainter:
    """Paints one flow's DAG; build it once per view, call :meth:`paint` per update."""

    def __init__(self, shape: Shape, layout: Layout) -> None:
        self.shape = shape
        self.layout = layout
        self.kinds = {n.name: n.kind for n in shape.nodes}
        self.width = max(layout.width, _LEGEND_WIDTH)
        self.height = layout.height + _LEGEND_HEIGHT
        # a small flow is drawn larger, for a projector (names 14 px); a larger one at its own size,
        # never smaller: it scrolls rather than shrinking its text
        self.scale = PROJECTOR_SCALE if len(shape.nodes) <= PROJECTOR_NODES else 1.0
        self._background = "".join(self._cluster(cid, box, shape) for cid, box in layout.clusters.items())
        self._edges = {(e.tail, e.head): _edge_path(e) for e in layout.edges}
        self._legend = _legend(self.layout.height + 6, self.width)

    @functools.cached_property
    def pending(self) -> str:
        """The DAG with every node pending: what the live view is sent first (made once per shape)."""
        return self.paint({})

    def paint(self, states: dict[str, NodeState], critical: frozenset[tuple[str, str]] = frozenset()) -> str:
        """The SVG document of the DAG with these node states (a missing node is pending).

        ``critical`` holds the edges of the critical path, drawn dark and thick.
        """
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="fm-dag" width="{self.width * self.scale:.0f}" '
            f'height="{self.height * self.scale:.0f}" viewBox="0 0 {self.width:.1f} {self.height:.1f}" '
            f'font-family="{FONT}" style="max-width:none">',
            _ARROW_DEFS,
            self._background,
        ]
        for key, path in self._edges.items():
            if key in critical:
                parts.append(
                    f'<path class="fm-edge-critical" data-edge="{escape(key[0])}\u2192{escape(key[1])}" d="{path}" '
                    f'fill="none" stroke="{CRITICAL}" stroke-width="2.2" '
                    'marker-end="url(#fm-arrow-critical)"/>'
                )
            else:
                parts.append(
                    f'<path class="fm-edge" data-edge="{escape(key[0])}\u2192{escape(key[1])}" d="{path}" fill="none" '
                    f'stroke="{EDGE}" stroke-width="1.2" '
                    'marker-end="url(#fm-arrow)"/>'
                )
        for name, box in self.layout.nodes.items():
            parts.append(self._node(name, box, states.get(name, PENDING)))
        parts.append(self._legend)
        parts.append("</svg>")
        return "".join(parts)

    @functools.cached_property
    def _frames(self) -> dict[str, tuple[str, str, str, str, str, str]]:
        """Each node's fragments that no state changes (its name, outline and text positions),
        rendered once: a repaint only fills in the state."""
        frames = {}
        for name, box in self.layout.nodes.items():
            kind, label = self.kinds[name], escape(name)
            x, y, w, h = box.x, box.y, box.width, box.height
            cx = x + w / 2
            frames[name] = (
                f'<g class="fm-node" data-step="{label}" data-state="',
                f"<title>{label}: ",
                _outline(kind, x, y, w, h) + ' class="fm-box" ',
                "</polygon>" if kind == "if" else "</rect>",
                f'<text x="{cx:.1f}" y="{y + 17:.1f}" text-anchor="middle" font-size="12" font-weight="600" fill="',
                f'">{label}</text><text class="fm-caption" x="{cx:.1f}" y="{y + 33:.1f}" text-anchor="middle" '
                'font-size="12" fill="',
            )
        return frames

    def _node(self, name: str, box: Box, state: NodeState) -> str:
        head, title, outline, close, name_text, caption_text = self._frames[name]
        kind = self.kinds[name]
        words = caption(kind, state)
        opening, style, ink = _state_parts(state.status, state.cached)
        svg = f"{head}{opening}{title}{words}</title>{outline}{style}"
        if state.status == "running":
            svg += '<animate attributeName="stroke-opacity" values="1;0.35;1" dur="1.2s" repeatCount="indefinite"/>'
        svg += f'{close}{name_text}{ink}{caption_text}{ink}">{words}</text>'
        if kind == "map":
            svg += _progress(box.x + 8, box.y + 41, box.width - 16, state)
        return svg + "</g>"

    @staticmethod
    def _cluster(cid: str, box: Box, shape: Shape) -> str:
        cluster = next(c for c in shape.clusters if c.id == cid)
        group = cluster.kind == "group"
        strokes = {"group": GROUP_STROKE, "arm": ARM_STROKE, "loop": LOOP_STROKE, "subflow": SUBFLOW_STROKE}
        stroke = strokes.get(cluster.kind, BRANCH_STROKE)
        dash = ' stroke-dasharray="5 3"' if group else ' stroke-dasharray="2 2"' if cluster.kind == "arm" else ""
        fill = "#f8faff" if group else "#ffffff"
        return (
            f'<g class="fm-cluster" data-cluster="{escape(cid)}" data-kind="{cluster.kind}">'
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" rx="9" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.2"{dash}/>'
            f'<text x="{box.x + 8:.1f}" y="{box.y + 13:.1f}" font-size="12" fill="{stroke}" '
            f'font-weight="600">{escape(cluster.label)}</text></g>'
        )


@functools.cache
def _state_parts(status: str, cached: bool) -> tuple[str, str, str]:
    """What a node's state adds to its fragments: the end of its opening tag, its outline's
    colours, weight and dash, and its text colour (one per state, made once)."""
    colours = look(status, cached)
    dash = f' stroke-dasharray="{colours.dash}"' if colours.dash else ""
    opening = f'{status}"' + (' data-cached="true"' if cached else "") + ">"
    style = f'fill="{colours.fill}" stroke="{colours.stroke}" stroke-width="{_WIDTH.get(status, 1.5)}"{dash}>'
    return opening, style, colours.text


def _outline(kind: str, x: float, y: float, w: float, h: float) -> str:
    """The opening tag of a node's outline: a decision (hexagon) for a condition, else a rounded box."""
    if kind != "if":
        return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="7"'
    d = min(12.0, w / 4)
    points = [(x + d, y), (x + w - d, y), (x + w, y + h / 2), (x + w - d, y + h), (x + d, y + h), (x, y + h / 2)]
    return '<polygon points="' + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + '"'


def caption(kind: str, state: NodeState) -> str:
    if state.status == "running":
        word = "running"
    elif state.cached:
        word = "cached"
    elif state.status in ("succeeded", "failed") and state.seconds is not None:
        word = f"{state.seconds:.2f}s" + (" failed" if state.status == "failed" else "")
    else:
        word = LABELS.get(state.status, state.status)
    glyph = GLYPHS["cached" if state.cached else state.status] if state.status in GLYPHS else ""
    word = f"{glyph} {word}" if glyph else word
    if kind == "map" and state.total is not None:
        word = f"{state.done}/{state.total} · {word}"
    elif kind == "loop" and state.done:
        word = f"#{state.done} · {word}" if state.total is None else f"{state.total}x · {word}"
    return f"{kind} · {word}"


def _progress(x: float, y: float, width: float, state: NodeState) -> str:
    total = state.total or 0
    good = width * min(1.0, state.done / total) if total else 0.0
    bad = width * min(1.0, state.failed / total) if total else 0.0
    return (
        f'<rect class="fm-progress fm-track" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="5" rx="2.5" '
        'fill="#e5e7eb"/>'
        f'<rect class="fm-progress-done" x="{x:.1f}" y="{y:.1f}" width="{good:.1f}" height="5" rx="2.5" '
        'fill="#16a34a"/>'
        f'<rect class="fm-progress-failed" x="{x + good:.1f}" y="{y:.1f}" width="{bad:.1f}" height="5" rx="2.5" '
        'fill="#dc2626"/>'
    )


def _edge_path(edge: Edge) -> str:
    (x0, y0), rest = edge.points[0], edge.points[1:]
    d = [f"M{x0:.1f},{y0:.1f}"]
    for i in range(0, len(rest) - 2, 3):
        (x1, y1), (x2, y2), (x3, y3) = rest[i : i + 3]
        d.append(f"C{x1:.1f},{y1:.1f} {x2:.1f},{y2:.1f} {x3:.1f},{y3:.1f}")
    tx, ty = edge.tip
    d.append(f"L{tx:.1f},{ty:.1f}")
    return " ".join(d)


_ARROW_DEFS = (
    "<defs>"
    f'<marker id="fm-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
    f'orient="auto-start-reverse"><path class="fm-arrow" d="M0,0 L10,5 L0,10 z" fill="{EDGE}"/></marker>'
    f'<marker id="fm-arrow-critical" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" '
    f'orient="auto-start-reverse"><path class="fm-arrow-critical" d="M0,0 L10,5 L0,10 z" fill="{CRITICAL}"/>'
    "</marker>"
    "</defs>"
)


def _legend(y: float, width: float) -> str:
    parts = ['<g class="fm-legend" font-size="12">']
    x = 8.0
    for state in LEGEND:
        colours = look(state)
        label = LABELS.get(state, state)
        dash = f' stroke-dasharray="{colours.dash}"' if colours.dash else ""
        cached = ' data-cached="true"' if state == "cached" else ""
        parts.append(
            f'<g class="fm-key" data-state="{"succeeded" if state == "cached" else state}"{cached}>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="12" height="12" rx="3" fill="{colours.fill}" '
            f'stroke="{colours.stroke}"{dash}/><text x="{x + 16:.1f}" y="{y + 10.5:.1f}" fill="#374151">'
            f"{GLYPHS[state]} {label}</text></g>"
        )
        x += 34 + 6.8 * len(label)
    parts.append("</g>")
    return "".join(parts)
