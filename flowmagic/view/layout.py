"""Where each node, edge and cluster of a flow's DAG is drawn.

Three engines, best first: the Graphviz layout libraries bundled in the
``pygraphviz`` wheel (``flowmagic[layout]``), Graphviz's ``dot`` program when it
is on PATH, and a pure-Python layered layout, so a machine with only pip still
draws the DAG. The wheel comes first because it is the newer Graphviz: the
``dot`` of Debian 12 (2.43) draws the members of a group right to left, against
the order they are written in. A layout depends only
on the flow's shape and is computed once per shape: a run restyles nodes, it
never lays them out again.

Coordinates are SVG points: origin top left, y grows downwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..flow.dot import nested, quote
from ..flow.shape import Node, Shape

# text metrics of the renderer (dag.py): 12px labels and captions in a sans-serif font
CHAR_WIDTH = 7.2
NODE_HEIGHT = 40.0
MAP_HEIGHT = 52.0  # room for the count and the progress bar
CLUSTER_LABEL = 18.0  # room above a cluster's first row for its title
MARGIN = 8.0


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle: ``x``, ``y`` is its top-left corner."""

    x: float
    y: float
    width: float
    height: float

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.width / 2, self.y + self.height / 2)


@dataclass(frozen=True, slots=True)
class Edge:
    """An edge: a cubic Bezier spline (a start point, then three points per segment)
    ending at the base of its arrowhead, whose point is ``tip``."""

    tail: str
    head: str
    points: tuple[tuple[float, float], ...]
    tip: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Layout:
    width: float
    height: float
    nodes: dict[str, Box]
    clusters: dict[str, Box]  # by cluster id
    edges: tuple[Edge, ...]
    engine: str  # "dot" | "pygraphviz" | "layered"


def node_size(node: Node) -> tuple[float, float]:
    """The box a node needs for its label (its name, and its kind below)."""
    caption = len(node.kind) + (24 if node.kind == "map" else 14)  # "map · 100/100 · ✓ 0.25s"
    width = max(64.0, CHAR_WIDTH * len(node.name) + 20, 6.6 * caption + 16)
    return width, MAP_HEIGHT if node.kind == "map" else NODE_HEIGHT


def layout(shape: Shape, engine: str | None = None) -> Layout:
    """The layout of ``shape``, from the cache when this shape was laid out before.

    ``engine`` forces one of ``"dot"``, ``"pygraphviz"`` or ``"layered"``.
    """
    key = (shape.key, engine)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    result = _compute(shape, engine)
    with _lock:
        _cache[key] = result
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def available_engine() -> str:
    """The engine ``layout`` uses on this machine."""
    try:
        import pygraphviz  # noqa: F401
    except ImportError:
        return "dot" if shutil.which("dot") else "layered"
    return "pygraphviz"


_CACHE_SIZE = 64
_cache: OrderedDict[tuple[str, str | None], Layout] = OrderedDict()
_lock = threading.Lock()


def _compute(shape: Shape, engine: str | None) -> Layout:
    chosen = engine or available_engine()
    if chosen not in ("dot", "pygraphviz", "layered"):
        raise ValueError(f"unknown layout engine {chosen!r}: use 'dot', 'pygraphviz' or 'layered'")
    if chosen != "layered" and shape.nodes:
        try:
            return _graphviz(shape, chosen)
        except Exception as exc:  # a broken Graphviz install must not cost the user the picture
            if engine is not None:
                raise
            warnings.warn(f"Graphviz layout failed ({exc!r}); using the built-in layout", RuntimeWarning, stacklevel=3)
    from .layered import layered

    return layered(shape)


def _graphviz(shape: Shape, engine: str) -> Layout:
    text = layout_dot(shape)
    if engine == "dot":
        import graphviz  # the Python package runs the dot program

        out = graphviz.Source(text).pipe(format="json", engine="dot", quiet=True)
    else:
        import pygraphviz

        with _quiet_stderr():
            out = pygraphviz.AGraph(string=text).draw(format="json", prog="dot")
    return from_graphviz_json(shape, json.loads(out), engine)


_fonts_loaded = False


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for the wheel's first layout in this process.

    The Graphviz in the wheel loads its own fontconfig, which warns on stderr about
    newer system font configuration it cannot read (Debian 12's, for one). A kernel
    forwards that descriptor into the cell, so a notebook would show the warning.
    Only the first call loads fontconfig, so only that one is silenced.
    """
    global _fonts_loaded
    if _fonts_loaded:
        yield
        return
    _fonts_loaded = True
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def layout_dot(shape: Shape) -> str:
    """DOT for Graphviz to place: fixed-size boxes of our own size, no labels but the clusters'."""

    def box(node: Node) -> str:
        width, height = node_size(node)
        return f"{quote(node.name)} [width={width / 72:.3f}, height={height / 72:.3f}];"

    lines = [
        "digraph {",
        # ordering=out: a step's successors left to right in the order they are written
        '  graph [rankdir=TB, nodesep=0.25, ranksep=0.45, margin=0, pad=0.1, fontsize=11, fontname="Helvetica", '
        "ordering=out];",
        '  node [shape=box, fixedsize=true, label=""];',
        *nested(shape, box, lambda cluster: f"label={quote(cluster.label)}; margin=10;"),
        *(f"  {quote(a)} -> {quote(b)};" for a, b in shape.edges),
        "}",
    ]
    return "\n".join(lines) + "\n"


def from_graphviz_json(shape: Shape, data: dict[str, Any], engine: str) -> Layout:
    """Read positions from Graphviz's ``-Tjson`` output, turning y downwards."""
    x0, y0, x1, y1 = (float(v) for v in data["bb"].split(","))
    height = y1 - y0

    def point(x: float, y: float) -> tuple[float, float]:
        return (x - x0 + MARGIN, height - (y - y0) + MARGIN)

    nodes: dict[str, Box] = {}
    clusters: dict[str, Box] = {}
    by_id: dict[int, str] = {}
    for obj in data.get("objects", []):
        name = obj["name"]
        if "bb" in obj:  # a cluster
            bx0, by0, bx1, by1 = (float(v) for v in obj["bb"].split(","))
            left, top = point(bx0, by1)
            clusters[name] = Box(left, top, bx1 - bx0, by1 - by0)
        elif "pos" in obj:
            by_id[obj["_gvid"]] = name
            cx, cy = (float(v) for v in obj["pos"].split(","))
            w, h = float(obj["width"]) * 72, float(obj["height"]) * 72
            left, top = point(cx, cy)
            nodes[name] = Box(left - w / 2, top - h / 2, w, h)
    edges: list[Edge] = []
    for edge in data.get("edges", []):
        parts = edge["pos"].split(" ")
        points = tuple(_point(p, point) for p in parts if not p.startswith(("e,", "s,")))
        end = next((p[2:] for p in parts if p.startswith("e,")), None)
        tip = _point(end, point) if end is not None else points[-1]
        edges.append(Edge(by_id[edge["tail"]], by_id[edge["head"]], _as_bezier(points), tip))
    missing = {n.name for n in shape.nodes} - set(nodes)
    if missing:
        raise ValueError(f"the layout has no position for {sorted(missing)}")
    order = {edge: i for i, edge in enumerate(shape.edges)}
    edges.sort(key=lambda e: order[(e.tail, e.head)])
    return Layout(x1 - x0 + 2 * MARGIN, height + 2 * MARGIN, nodes, clusters, tuple(edges), engine)


def _point(text: str, point: Any) -> tuple[float, float]:
    x, y = text.split(",")
    result: tuple[float, float] = point(float(x), float(y))
    return result


def _as_bezier(points: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """Trim to a start point plus whole segments of three points."""
    usable = 1 + 3 * ((len(points) - 1) // 3)
    return points[:usable]
