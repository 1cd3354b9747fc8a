"""A DAG cut into stages: the one shape Agent Spec runs in parallel.

Agent Spec runs nodes one after another and allows parallelism only inside a
``ParallelFlowNode``, so the DAG is cut (:func:`stages`) into a sequence of steps and
parallel stages whose branches are independent sequences of their own. Where the DAG has
no exact such shape (an "N": a->c, b->c, b->d), a stage waits for a little more than it
needs; no dependency is ever lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union


@dataclass
class _Par:
    """Independent sequences that run side by side: a ``ParallelFlowNode``."""

    branches: list[list[Item]]


Item = Union[str, _Par]  # noqa: UP007 - a runtime alias, Python 3.10 too

SEARCH_LIMIT = 40  # larger parts are cut in the middle, without looking ahead (it would take too long)


def stages(order: list[str], deps: Mapping[str, tuple[str, ...]]) -> list[Item]:
    """Cut a DAG (``order`` topological) into a sequence of steps and parallel stages.

    Independent parts become branches of a parallel stage; a connected part is cut
    where everything after depends on everything before. A part with no such cut
    is cut between levels, choosing the cut that makes the fewest steps wait for
    steps they do not read, counted over the whole decomposition that follows
    (parts of more than ``SEARCH_LIMIT`` steps are cut in the middle).
    """
    return _Cutter(order, deps).cut(list(range(len(order))))[0]


class _Cutter:
    def __init__(self, order: list[str], deps: Mapping[str, tuple[str, ...]]) -> None:
        self.order = order
        index = {name: i for i, name in enumerate(order)}
        self.parents = [[index[d] for d in deps[name]] for name in order]
        self.anc: list[int] = []  # ancestors of each step, as bits
        for parents in self.parents:
            bits = 0
            for j in parents:
                bits |= self.anc[j] | (1 << j)
            self.anc.append(bits)
        self.memo: dict[int, tuple[list[Item], int]] = {}

    def cut(self, part: list[int]) -> tuple[list[Item], int]:
        """The stages of ``part`` (indices in topological order) and how many waits they add."""
        if len(part) == 1:
            return [self.order[part[0]]], 0
        mask = sum(1 << i for i in part)
        if mask in self.memo:
            return self.memo[mask]
        groups = self.components(part, mask)
        if len(groups) > 1:
            branches = [self.cut(g) for g in groups]
            result: tuple[list[Item], int] = ([_Par([b for b, _ in branches])], sum(w for _, w in branches))
        else:
            cuts = self.exact_cuts(part, mask)
            if cuts:
                pieces = [self.cut(part[a:b]) for a, b in zip([0, *cuts], [*cuts, len(part)], strict=True)]
                result = ([item for items, _ in pieces for item in items], sum(w for _, w in pieces))
            else:
                result = self.best_cut(part, mask)
        self.memo[mask] = result
        return result

    def components(self, part: list[int], mask: int) -> list[list[int]]:
        parent = {i: i for i in part}

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in part:
            for j in self.parents[i]:
                if mask >> j & 1:
                    parent[root(i)] = root(j)
        groups: dict[int, list[int]] = {}
        for i in part:
            groups.setdefault(root(i), []).append(i)
        return list(groups.values())

    def exact_cuts(self, part: list[int], mask: int) -> list[int]:
        """Positions k where every step from k on depends on every step before k."""
        after = [mask] * (len(part) + 1)
        for k in range(len(part) - 1, -1, -1):
            after[k] = after[k + 1] & self.anc[part[k]]
        cuts, before = [], 0
        for k in range(1, len(part)):
            before |= 1 << part[k - 1]
            if before & ~after[k] == 0:
                cuts.append(k)
        return cuts

    def waits(self, part: list[int], first: int) -> int:
        """How many (step, earlier step it does not read) pairs cutting ``part`` after ``first`` adds."""
        return sum((first & ~self.anc[i]).bit_count() for i in part if not first >> i & 1)

    def best_cut(self, part: list[int], mask: int) -> tuple[list[Item], int]:
        depth: dict[int, int] = {}
        for i in part:  # longest path from the part's first steps
            depth[i] = max((depth[j] + 1 for j in self.parents[i] if mask >> j & 1), default=0)
        height: dict[int, int] = dict.fromkeys(part, 0)
        for i in reversed(part):  # longest path to the part's last steps
            for j in self.parents[i]:
                if mask >> j & 1:
                    height[j] = max(height[j], height[i] + 1)
        depths, heights = range(1, max(depth.values()) + 1), range(1, max(height.values()) + 1)
        if len(part) > SEARCH_LIMIT:  # large: only the middle cuts, so the parts halve at each level
            depths, heights = depths[len(depths) // 2 :][:1], heights[len(heights) // 2 :][:1]
        candidates = {sum(1 << i for i in part if depth[i] < k) for k in depths}
        candidates |= {sum(1 << i for i in part if height[i] >= h) for h in heights}
        candidates.discard(0)
        candidates.discard(mask)
        best: tuple[int, list[Item]] | None = None
        for first in sorted(candidates, key=lambda c: (self.waits(part, c), -c.bit_count())):
            waits = self.waits(part, first)
            if best is not None and waits >= best[0]:
                continue
            head = [i for i in part if first >> i & 1]
            tail = [i for i in part if not first >> i & 1]
            (a, wa), (b, wb) = self.cut(head), self.cut(tail)
            if best is None or waits + wa + wb < best[0]:
                best = (waits + wa + wb, a + b)
            if len(part) > SEARCH_LIMIT:  # large: the cheaper middle cut, without looking further ahead
                break
        assert best is not None
        return best[1], best[0]


def flatten(seq: list[Item]) -> list[str]:
    """The steps of a staged sequence, in order."""
    out: list[str] = []
    for item in seq:
        out.extend([item] if isinstance(item, str) else [s for b in item.branches for s in flatten(b)])
    return out


__all__ = ["SEARCH_LIMIT", "Item", "_Par", "flatten", "stages"]
