"""The layered layout's edges: splines that keep off the nodes of the rows they cross (step 5 of ``layered.py``)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from ..flow.shape import Shape
from .layered_graph import _POS, ARROW, EDGE_CLEAR, NODE_SEP, _Graph
from .layout import Box, Edge


class _Router:
    """Edge splines. An edge to the next row is a gentle S; a longer one crosses each row between
    straight for its head where that is clear, and otherwise through the gap beside the node in
    its way, off any cluster's border, so it never runs over a node's box."""

    def __init__(
        self,
        graph: _Graph,
        shape: Shape,
        nodes: dict[str, Box],
        clusters: dict[str, Box],
        row_top: list[float],
        row_height: list[float],
    ) -> None:
        self.rank = {node.name: graph.rank[v] for v, node in enumerate(shape.nodes)}
        self.nodes = nodes
        self.row_top = row_top
        self.row_height = row_height
        self.rows: list[list[tuple[float, float]]] = [[] for _ in range(graph.ranks)]
        for name, box in nodes.items():
            self.rows[self.rank[name]].append((box.x, box.x + box.width))
        # what an edge should keep off in a row: its nodes, with room, and the borders crossing it
        obstacles = [[(a - EDGE_CLEAR, b + EDGE_CLEAR) for a, b in row] for row in self.rows]
        for k, cid in enumerate(graph.cluster_ids):
            box = clusters[cid]
            for r in range(graph.lo[k], graph.hi[k] + 1):
                obstacles[r] += [(box.x, box.x), (box.x + box.width, box.x + box.width)]
        for row in self.rows:
            row.sort()
        self.lefts = [[a for a, _ in row] for row in self.rows]
        for row in obstacles:
            row.sort()
        self.obstacle_starts = [[a for a, _ in row] for row in obstacles]
        self.obstacle_ends = [[b for _, b in row] for row in obstacles]
        # rows a long edge may weave through, in all: past it, edges cross rows straight,
        # so a pathological flow cannot make routing quadratic
        self.budget = 50_000

    def edge(self, tail: str, head: str) -> Edge:
        start, end = self.nodes[tail], self.nodes[head]
        x0, y0 = start.x + start.width / 2, start.y + start.height
        x1, y1 = end.x + end.width / 2, end.y - ARROW
        path = [(x0, y0)]
        lean = [0.0]  # the spline's dx/dy at each point: straight down out of the tail
        rows = range(self.rank[tail] + 1, self.rank[head])
        if len(rows) <= self.budget:
            self.budget -= len(rows)
            ax, ay = x0, y0  # where the edge last had to turn
            for r in rows:
                top, bottom = self.row_top[r], self.row_top[r] + self.row_height[r]
                # straight for the head, unless that runs over a node: then down the gap beside it
                xt = ax + (x1 - ax) * (top - ay) / (y1 - ay)
                xb = ax + (x1 - ax) * (bottom - ay) / (y1 - ay)
                if self._clear(r, min(xt, xb), max(xt, xb)):
                    path += [(xt, top), (xb, bottom)]
                    lean += [(xb - xt) / (bottom - top)] * 2
                else:
                    ax, ay = self._free(r, min(xt, xb), max(xt, xb), x1), bottom
                    path += [(ax, top), (ax, bottom)]
                    lean += [0.0, 0.0]
        path.append((x1, y1))
        lean.append(0.0)  # and straight down into the arrowhead
        # a Hermite spline through the path: across a row it follows the straight line the row
        # was checked for (tangents along it at both ends), so it bends only between rows
        slopes = []
        for i, (_, y) in enumerate(path):
            above = y - path[i - 1][1] if i else _POS
            below = path[i + 1][1] - y if i < len(path) - 1 else _POS
            # at most 1.5 times the rise on either side keeps the control points in order down
            # the page, so the edge never turns back up; the ends bend halfway, a gentle S
            sy = 1.5 * min(above, below)
            if i and i < len(path) - 1:
                sy = min(sy, (above + below) / 2)
            slopes.append((lean[i] * sy, sy))
        points = [path[0]]
        for i in range(len(path) - 1):
            (ax, ay), (bx, by) = path[i], path[i + 1]
            (sx, sy), (tx, ty) = slopes[i], slopes[i + 1]
            points += [(ax + sx / 3, ay + sy / 3), (bx - tx / 3, by - ty / 3), (bx, by)]
        return Edge(tail, head, tuple(points), (x1, end.y))

    def _clear(self, r: int, lo: float, hi: float) -> bool:
        """Whether row ``r`` has no node between ``lo`` and ``hi`` (nor too near)."""
        i = bisect_right(self.lefts[r], hi + EDGE_CLEAR) - 1
        # the nodes of a row are sorted and disjoint: only the last one starting before ``hi``
        # can reach back to ``lo``
        return i < 0 or self.rows[r][i][1] + EDGE_CLEAR < lo

    def _free(self, r: int, lo: float, hi: float, goal: float) -> float:
        """Where to cross row ``r`` instead of from ``lo`` to ``hi``, which runs over a node: the
        nearest gap beside one of the nodes in the way."""
        row = self.rows[r]
        last = bisect_right(self.lefts[r], hi + EDGE_CLEAR)
        first = last - 1
        while first > 0 and row[first - 1][1] + EDGE_CLEAR >= lo:
            first -= 1
        spots = [self._beside(r, row[first][0] - EDGE_CLEAR, -1)]
        spots += [self._beside(r, row[i][1] + EDGE_CLEAR, 1) for i in range(first, last)]
        middle = (lo + hi) / 2
        return min(spots, key=lambda x: (abs(x - middle), (x - middle) * (middle - goal)))

    def _beside(self, r: int, side: float, way: int) -> float:
        """A spot ``way`` (-1: left, 1: right) of ``side`` in row ``r``: as far off it as a
        gap between neighbours leaves, halfway to the next obstacle when that is nearer."""
        if way > 0:
            i = bisect_right(self.obstacle_starts[r], side)
            room = self.obstacle_starts[r][i] - side if i < len(self.obstacle_starts[r]) else _POS
        else:
            i = bisect_left(self.obstacle_ends[r], side) - 1
            room = side - self.obstacle_ends[r][i] if i >= 0 else _POS
        return side + way * min(NODE_SEP / 2 - EDGE_CLEAR, room / 2)
