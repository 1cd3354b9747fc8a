"""The layered layout's x: where each node and cluster wall sits in its row (step 3 of ``layered.py``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

from .layered_graph import _NEG, _POS, LONG_PULL, NODE_SEP, PAD, PLACE_PASSES, _Graph


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
