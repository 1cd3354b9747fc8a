"""The layered layout's graph: a flow's shape as integers, in rows (step 1 of ``layered.py``).

The spacings every step of the layout uses are here too, so they are tuned in one place.
"""

from __future__ import annotations

from ..flow.shape import Shape
from .layout import node_size

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
