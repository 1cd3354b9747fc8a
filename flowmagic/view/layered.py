"""A pure-Python layered (Sugiyama-style) layout of a flow's DAG, top to bottom.

Graphviz draws the DAG best, but it is a system program or a compiled wheel that
a machine with only pip may lack; this layout needs nothing but the standard
library, so the view can always draw. It gives the same boxes, clusters and
edges as the Graphviz engines, in the same SVG coordinates.

The steps:

1. rows: a step sits one row below its lowest dependency (longest path); an
   input waits just above its first use;
2. order: each cluster (and the top level) keeps one order of its children for
   all rows, so a cluster's members are contiguous in every row and sibling
   clusters never swap sides; barycenter sweeps, row by row, reorder those
   children to cut crossings;
3. x: each row's left-to-right run of cluster walls and nodes gives separation
   constraints; the average of a left-packed and a right-packed placement,
   both pulled towards the nodes' neighbours, honours them too;
4. y: rows stacked with room for the titles and borders of the clusters that
   open or close between them;
5. edges: splines, a long one threading the gaps of the rows it crosses.

Steps 1, 2, 3 and 5 live in ``layered_graph.py``, ``layered_order.py``,
``layered_place.py`` and ``layered_route.py``; this module runs them and does step 4.

All of it is linear or n log n in the size of the shape, bar clusters spanning
many rows, so a thousand steps take a few tens of milliseconds.
"""

from __future__ import annotations

from ..flow.shape import Shape
from .layered_graph import _NEG, _POS, ARROW, PAD, RANK_SEP, ROW_CLEAR, _Graph
from .layered_order import _order
from .layered_place import _place
from .layered_route import _Router
from .layout import CLUSTER_LABEL, MARGIN, Box, Edge, Layout


def layered(shape: Shape) -> Layout:
    """Lay ``shape`` out without Graphviz."""
    if not shape.nodes:
        return Layout(2 * MARGIN, 2 * MARGIN, {}, {}, (), "layered")
    graph = _Graph(shape)
    _order(graph)
    left, walls = _place(graph)
    return _assemble(shape, graph, left, walls)


# --- y, and the result -----------------------------------------------------------------------


def _assemble(shape: Shape, graph: _Graph, left: list[float], walls: list[tuple[float, float]]) -> Layout:
    n, root = graph.n, graph.root
    row_height = [0.0] * graph.ranks
    for v in range(n):
        row_height[graph.rank[v]] = max(row_height[graph.rank[v]], graph.height[v])

    # clusters opening on the same row nest their titles; closing on the same row, their borders
    top_depth = [1] * root
    bottom_depth = [1] * root
    for k in graph.inner_first:
        up = graph.parent[k]
        if up != root:
            if graph.lo[up] == graph.lo[k]:
                top_depth[up] = max(top_depth[up], top_depth[k] + 1)
            if graph.hi[up] == graph.hi[k]:
                bottom_depth[up] = max(bottom_depth[up], bottom_depth[k] + 1)
    above = [0.0] * graph.ranks
    below = [0.0] * graph.ranks
    for k in range(root):
        above[graph.lo[k]] = max(above[graph.lo[k]], top_depth[k] * (PAD + CLUSTER_LABEL))
        below[graph.hi[k]] = max(below[graph.hi[k]], bottom_depth[k] * PAD)
    row_top = [0.0] * graph.ranks
    y = MARGIN + above[0]
    for r in range(graph.ranks):
        row_top[r] = y
        y += row_height[r]
        if r + 1 < graph.ranks:
            y += max(RANK_SEP, below[r] + above[r + 1] + ROW_CLEAR)
    height = y + below[-1] + MARGIN

    nodes: dict[str, Box] = {}
    for v, node in enumerate(shape.nodes):
        r = graph.rank[v]
        top = row_top[r] + (row_height[r] - graph.height[v]) / 2
        nodes[node.name] = Box(left[v], top, graph.width[v], graph.height[v])
    clusters: dict[str, Box] = {}
    for k, cid in enumerate(graph.cluster_ids):
        a, b = walls[k]
        top = row_top[graph.lo[k]] - top_depth[k] * (PAD + CLUSTER_LABEL)
        bottom = row_top[graph.hi[k]] + row_height[graph.hi[k]] + bottom_depth[k] * PAD
        clusters[cid] = Box(a, top, b - a, bottom - top)
    router = _Router(graph, shape, nodes, clusters, row_top, row_height)
    edges = [router.edge(tail, head) for tail, head in shape.edges]

    # x so far is relative: move everything, an edge passing left of the leftmost node too,
    # to start at the margin
    boxes = [*nodes.values(), *clusters.values()]
    xs = [x for edge in edges for x, _ in edge.points]
    shift = MARGIN - min(min(box.x for box in boxes), min(xs, default=_POS))
    width = max(max(box.x + box.width for box in boxes), max(xs, default=_NEG)) + shift + MARGIN

    def moved(box: Box, size: bool) -> Box:
        # a node keeps exactly the size it asked for
        width, height = (round(box.width, 2), round(box.height, 2)) if size else (box.width, box.height)
        return Box(round(box.x + shift, 2), round(box.y, 2), width, height)

    return Layout(
        round(width, 2),
        round(height, 2),
        {name: moved(box, False) for name, box in nodes.items()},
        {cid: moved(box, True) for cid, box in clusters.items()},
        tuple(
            Edge(
                edge.tail,
                edge.head,
                tuple((round(x + shift, 2), round(y, 2)) for x, y in edge.points),
                (round(edge.tip[0] + shift, 2), round(edge.tip[1], 2)),
            )
            for edge in edges
        ),
        "layered",
    )


__all__ = ["ARROW", "layered"]
