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

All of it is linear or n log n in the size of the shape, bar clusters spanning
many rows, so a thousand steps take a few tens of milliseconds.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import pairwise

from ..flow.shape import Shape
from .layout import CLUSTER_LABEL, MARGIN, Box, Edge, Layout, node_size

PAD = 10.0  # between a cluster's border and what it holds
NODE_SEP = 18.0  # between neighbours in a row, as dot's nodesep=0.25
RANK_SEP = 30.0  # the least gap between rows: room for an edge and its arrowhead
ROW_CLEAR = 12.0  # between a cluster's border and the row beyond it
EDGE_CLEAR = 4.0  # how near a long edge may pass a node's side
ARROW = 7.0  # an edge's spline ends this far above its head, where the arrowhead starts
TITLE_CHAR = 6.6  # a character of a cluster's 11px title: a narrow cluster widens for it
LONG_PULL = 0.25  # how hard a neighbour pulls across a long edge, against one on the next row
ORDER_SWEEPS = 8  # alternately down and up; the best order found is kept
PLACE_PASSES = 8  # each halves the distance to the neighbours' centre

_NEG = float("-inf")
_POS = float("inf")


def layered(shape: Shape) -> Layout:
    """Lay ``shape`` out without Graphviz."""
    if not shape.nodes:
        return Layout(2 * MARGIN, 2 * MARGIN, {}, {}, (), "layered")
    graph = _Graph(shape)
    _order(graph)
    left, walls = _place(graph)
    return _assemble(shape, graph, left, walls)


class _Graph:
    """The shape as integers: node ``v`` is ``0 <= v < n``; cluster ``k`` is the item ``n + k``
    among its parent's children; ``root`` (= the number of clusters) stands for the top level."""

    def __init__(self, shape: Shape) -> None:
        n = self.n = len(shape.nodes)
        index = {node.name: v for v, node in enumerate(shape.nodes)}
        # a cluster with no steps (shape_of never makes one) has nothing to draw
        used = {node.cluster for node in shape.nodes if node.cluster is not None}
        parent_id = {c.id: c.parent for c in shape.clusters}
        for cid in list(used):
            outer = parent_id.get(cid)
            while outer is not None and outer not in used:
                used.add(outer)
                outer = parent_id.get(outer)
        self.cluster_ids = [c.id for c in shape.clusters if c.id in used]
        labels = [c.label for c in shape.clusters if c.id in used]
        c = len(self.cluster_ids)
        cindex = {cid: k for k, cid in enumerate(self.cluster_ids)}
        root = self.root = c
        self.parent = [root if parent_id[cid] is None else cindex[str(parent_id[cid])] for cid in self.cluster_ids]
        self.home = [root if node.cluster is None else cindex[node.cluster] for node in shape.nodes]
        sizes = [node_size(node) for node in shape.nodes]
        self.width = [w for w, _ in sizes]
        self.height = [h for _, h in sizes]
        self.min_width = [max(TITLE_CHAR * len(label), 40.0) + 2 * PAD for label in labels]

        self.preds: list[list[int]] = [[] for _ in range(n)]
        self.succs: list[list[int]] = [[] for _ in range(n)]
        for tail, head in shape.edges:
            self.preds[index[head]].append(index[tail])
            self.succs[index[tail]].append(index[head])
        self.rank = _ranks(self.preds, self.succs)
        self.ranks = max(self.rank) + 1

        # clusters deepest first, so a pass over them meets every child before its parent
        depth = [0] * c
        for k in range(c):
            up = self.parent[k]
            while up != root:
                depth[k] += 1
                up = self.parent[up]
        self.inner_first = sorted(range(c), key=lambda k: -depth[k])

        # the rows a cluster spans, and the first step it holds (its place in declaration order)
        self.lo = [self.ranks] * c
        self.hi = [-1] * c
        first = [n] * c
        for v in range(n):
            k = self.home[v]
            if k != root:
                self.lo[k] = min(self.lo[k], self.rank[v])
                self.hi[k] = max(self.hi[k], self.rank[v])
                first[k] = min(first[k], v)
        for k in self.inner_first:
            up = self.parent[k]
            if up != root:
                self.lo[up] = min(self.lo[up], self.lo[k])
                self.hi[up] = max(self.hi[up], self.hi[k])
                first[up] = min(first[up], first[k])

        # declaration order, as Shape.children: a cluster where its first step is declared
        items = sorted([(first[k], 0, n + k) for k in range(c)] + [(v, 1, v) for v in range(n)])
        self.children: list[list[int]] = [[] for _ in range(c + 1)]
        for _, _, item in items:
            self.children[self.home[item] if item < n else self.parent[item - n]].append(item)
        # an item's place among its parent's children, which the ordering changes
        self.place = [0] * (n + c)
        for kids in self.children:
            for i, item in enumerate(kids):
                self.place[item] = i

    def tokens(self) -> list[int]:
        """Nodes and cluster walls left to right: node ``v``, then ``n + 2k`` opens cluster ``k``
        and ``n + 2k + 1`` closes it."""
        out: list[int] = []
        n = self.n

        def visit(k: int) -> None:
            for item in sorted(self.children[k], key=lambda i: self.place[i]):
                if item < n:
                    out.append(item)
                else:
                    out.append(n + 2 * (item - n))
                    visit(item - n)
                    out.append(n + 2 * (item - n) + 1)

        visit(self.root)
        return out


def _ranks(preds: list[list[int]], succs: list[list[int]]) -> list[int]:
    """Longest-path layering: each step one row below its lowest dependency."""
    rank = [0] * len(preds)
    missing = [len(p) for p in preds]
    ready = [v for v, count in enumerate(missing) if count == 0]
    for v in ready:  # grows while it is walked: Kahn's algorithm
        for w in succs[v]:
            rank[w] = max(rank[w], rank[v] + 1)
            missing[w] -= 1
            if missing[w] == 0:
                ready.append(w)
    # (a cycle, which a flow never has, leaves its steps where their other dependencies put them)
    # an input used only far below waits just above its first use, as dot draws it, rather than
    # sending a long edge down past everything between
    for v, deps in enumerate(preds):
        if not deps and succs[v]:
            rank[v] = min(rank[w] for w in succs[v]) - 1
    return rank


# --- order -----------------------------------------------------------------------------------


def _order(graph: _Graph) -> None:
    """Reorder the children of every cluster by barycenter, row by row, down then up, keeping
    the order with the fewest crossings.

    A row reorders only what it holds: the nodes on it and the clusters spanning it, each
    cluster's items among themselves, so a cluster moves as a block and contiguity holds
    throughout. Each item has one order value within its parent for all rows: a row shuffles
    the values its items hold, so every other item keeps its value, and sibling clusters keep
    one order in every row.
    """
    n = graph.n
    # what each row holds, by parent: the nodes on it, and the child clusters spanning it
    holds: list[dict[int, list[int]]] = [{} for _ in range(graph.ranks)]
    for item in range(n + graph.root):
        if item < n:
            holds[graph.rank[item]].setdefault(graph.home[item], []).append(item)
        else:
            for r in range(graph.lo[item - n], graph.hi[item - n] + 1):
                holds[r].setdefault(graph.parent[item - n], []).append(item)
    pos = [0.0] * n  # centred, so rows of different lengths line up on their middles

    def locate(r: int) -> None:
        row: list[int] = []

        def visit(k: int) -> None:
            for item in sorted(holds[r].get(k, ()), key=lambda i: graph.place[i]):
                if item < n:
                    row.append(item)
                else:
                    visit(item - n)

        visit(graph.root)
        for i, v in enumerate(row):
            pos[v] = i - (len(row) - 1) / 2

    def arrange(r: int, near: list[list[int]]) -> None:
        def visit(k: int) -> tuple[float, int]:
            items = sorted(holds[r].get(k, ()), key=lambda i: graph.place[i])
            weights: list[tuple[float, int]] = []
            for item in items:
                if item >= n:
                    weights.append(visit(item - n))
                elif near[item]:
                    weights.append((sum(pos[u] for u in near[item]) / len(near[item]), 1))
                else:
                    weights.append((0.0, 0))
            # items with no neighbours this way keep their slots; the others share the rest
            moving = [i for i, (_, count) in enumerate(weights) if count]
            slots = [graph.place[items[i]] for i in moving]
            moving.sort(key=lambda i: weights[i][0] / weights[i][1])
            for slot, i in zip(slots, moving, strict=True):
                graph.place[items[i]] = slot
            return sum(w for w, _ in weights), sum(count for _, count in weights)

        visit(graph.root)
        locate(r)

    for r in range(graph.ranks):
        locate(r)
    best = list(graph.place)
    fewest = _crossings(graph, _row_index(graph))
    for sweep in range(ORDER_SWEEPS):
        if fewest == 0:
            break
        if sweep % 2 == 0:
            for r in range(1, graph.ranks):
                arrange(r, graph.preds)
        else:
            for r in range(graph.ranks - 2, -1, -1):
                arrange(r, graph.succs)
        crossings = _crossings(graph, _row_index(graph))
        if crossings < fewest:
            fewest = crossings
            best = list(graph.place)
    graph.place = best


def _row_index(graph: _Graph) -> list[int]:
    """Each node's place in its row under the current order."""
    index = [0] * graph.n
    counts = [0] * graph.ranks
    for t in graph.tokens():
        if t < graph.n:
            r = graph.rank[t]
            index[t] = counts[r]
            counts[r] += 1
    return index


def _crossings(graph: _Graph, index: list[int]) -> int:
    """Crossings among edges between adjacent rows (longer edges are left out: they have no
    positions in the rows between), by counting inversions with a Fenwick tree."""
    pairs: list[list[tuple[int, int]]] = [[] for _ in range(graph.ranks)]
    for u in range(graph.n):
        for v in graph.succs[u]:
            if graph.rank[v] == graph.rank[u] + 1:
                pairs[graph.rank[u]].append((index[u], index[v]))
    total = 0
    for row in pairs:
        if len(row) < 2:
            continue
        row.sort()
        size = max(head for _, head in row) + 1
        tree = [0] * (size + 1)
        for seen, (_, head) in enumerate(row):
            i, at_most = head + 1, 0
            while i > 0:
                at_most += tree[i]
                i -= i & -i
            total += seen - at_most
            i = head + 1
            while i <= size:
                tree[i] += 1
                i += i & -i
    return total


# --- x ---------------------------------------------------------------------------------------


def _place(graph: _Graph) -> tuple[list[float], list[tuple[float, float]]]:
    """Left edges of the nodes, and each cluster's left and right wall."""
    n = graph.n
    seq = graph.tokens()
    rows: list[list[int]] = [[] for _ in range(graph.ranks)]
    for t in seq:
        if t < n:
            rows[graph.rank[t]].append(t)
        else:
            k = (t - n) // 2
            for r in range(graph.lo[k], graph.hi[k] + 1):
                rows[r].append(t)

    # x[b] >= x[a] + gap for neighbours a, b in a row; all point forwards in seq, so seq is
    # a topological order of these constraints
    gaps: dict[tuple[int, int], float] = {}
    for row in rows:
        for a, b in pairwise(row):
            gap = _gap(graph, a, b)
            if gaps.get((a, b), _NEG) < gap:
                gaps[(a, b)] = gap
    for k in range(graph.root):
        opening = n + 2 * k
        gaps[(opening, opening + 1)] = max(gaps.get((opening, opening + 1), _NEG), graph.min_width[k])
    size = n + 2 * graph.root
    ins: list[list[tuple[int, float]]] = [[] for _ in range(size)]
    outs: list[list[tuple[int, float]]] = [[] for _ in range(size)]
    for (a, b), gap in gaps.items():
        ins[b].append((a, gap))
        outs[a].append((b, gap))

    x = _pack_left(graph, seq, ins, outs, [0.0] * n, [0.0] * n)
    for _ in range(PLACE_PASSES):
        # each node wants to move halfway to the centre of its neighbours (all the way makes
        # a node and its neighbours swap places back and forth); both packings honour every
        # gap, so their average does too, and it is balanced where a row is too tight to give
        want: list[float | None] = []
        for v in range(n):
            pull = weight = 0.0
            for u in graph.preds[v] + graph.succs[v]:
                # a neighbour on the next row pulls hardest: it keeps chains straight, while a
                # long edge can weave between the rows it crosses
                w = 1.0 if abs(graph.rank[u] - graph.rank[v]) == 1 else LONG_PULL
                pull += w * (x[u] + graph.width[u] / 2)
                weight += w
            # a node with no edges has no pull: it closes up on its neighbours
            want.append((x[v] + pull / weight - graph.width[v] / 2) / 2 if weight else None)
        lefts = _pack_left(graph, seq, ins, outs, want, x)
        rights = _pack_right(graph, seq, ins, outs, want, lefts)  # a loose end closes up
        x = [(a + b) / 2 for a, b in zip(lefts, rights, strict=True)]
    # the average leaves a node with no edges halfway between where the packings put it: close
    # it up on its left neighbour, or, with none, on its right one
    alone = [not (graph.preds[v] or graph.succs[v]) for v in range(n)]
    if any(alone):
        loose = [False] * n
        x = _pack_left(graph, seq, ins, outs, [None if alone[v] else x[v] for v in range(n)], x, loose)
        x = _pack_right(graph, seq, ins, outs, [None if alone[v] and loose[v] else x[v] for v in range(n)], x)
    return x[:n], _tighten(graph, x)


def _gap(graph: _Graph, a: int, b: int) -> float:
    n = graph.n
    closing = b >= n and (b - n) % 2 == 1
    if a < n:
        return graph.width[a] + (PAD if closing else NODE_SEP)
    if (a - n) % 2 == 0:  # a cluster opens: b is inside it, or closes it when this row is empty
        return graph.min_width[(a - n) // 2] if closing else PAD
    return PAD if closing else NODE_SEP


def _pack_left(
    graph: _Graph,
    seq: list[int],
    ins: list[list[tuple[int, float]]],
    outs: list[list[tuple[int, float]]],
    want: list[float | None],
    now: list[float],
    loose: list[bool] | None = None,
) -> list[float]:
    """Everything as far left as the gaps allow, but no node left of where it wants to be; a node
    that wants nothing (``None``) and has nothing to its left stays where it is, at ``now``, and
    is marked in ``loose``.

    A left wall with nothing to its left would go to minus infinity: it waits until its cluster
    is placed and then hugs what it holds."""
    n = graph.n
    x = [_NEG] * len(ins)
    for t in seq:
        if t >= n and (t - n) % 2 == 1:
            opening = t - 1
            if x[opening] == _NEG:
                x[opening] = min((x[b] - gap for b, gap in outs[opening] if b != t), default=0.0)
        at = max((x[a] + gap for a, gap in ins[t]), default=_NEG)
        x[t] = at if t >= n else _settle(at, want[t], now[t], max)
        if loose is not None and t < n:
            loose[t] = at == _NEG
    return x


def _pack_right(
    graph: _Graph,
    seq: list[int],
    ins: list[list[tuple[int, float]]],
    outs: list[list[tuple[int, float]]],
    want: list[float | None],
    now: list[float],
) -> list[float]:
    """The mirror of ``_pack_left``."""
    n = graph.n
    x = [_POS] * len(ins)
    for t in reversed(seq):
        if t >= n and (t - n) % 2 == 0:
            closing = t + 1
            if x[closing] == _POS:
                x[closing] = max((x[a] + gap for a, gap in ins[closing] if a != t), default=0.0)
        at = min((x[b] - gap for b, gap in outs[t]), default=_POS)
        x[t] = at if t >= n else _settle(at, want[t], now[t], min)
    return x


def _settle(bound: float, want: float | None, now: float, tighter: Callable[[float, float], float]) -> float:
    """Where a node goes in a packing: ``bound`` is the nearest the gaps allow."""
    if want is not None:
        return tighter(bound, want)
    return now if math.isinf(bound) else bound


def _tighten(graph: _Graph, x: list[float]) -> list[tuple[float, float]]:
    """Shrink each cluster's walls onto what it holds: a packing leaves a wall against its
    neighbour. Walls only move inwards, so no gap to a neighbour closes."""
    n, root = graph.n, graph.root
    lo = [_POS] * root
    hi = [_NEG] * root
    for v in range(n):
        k = graph.home[v]
        if k != root:
            lo[k] = min(lo[k], x[v])
            hi[k] = max(hi[k], x[v] + graph.width[v])
    walls = [(0.0, 0.0)] * root
    for k in graph.inner_first:
        left, right = x[n + 2 * k], x[n + 2 * k + 1]
        a, b = max(left, lo[k] - PAD), min(right, hi[k] + PAD)
        if b - a < graph.min_width[k]:  # widen for the title, within the old walls
            a = max(left, (a + b - graph.min_width[k]) / 2)
            b = min(right, a + graph.min_width[k])
        walls[k] = (a, b)
        up = graph.parent[k]
        if up != root:
            lo[up] = min(lo[up], a)
            hi[up] = max(hi[up], b)
    return walls


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
