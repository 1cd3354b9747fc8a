"""The layered layout's order: each row's nodes arranged to cut crossings (step 2 of ``layered.py``)."""

from __future__ import annotations

from .layered_graph import ORDER_SWEEPS, _Graph


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
