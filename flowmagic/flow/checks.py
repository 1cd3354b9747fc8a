"""Whole-flow checks that need every step: no cycle, no group member reading another branch's."""

from __future__ import annotations

from ..dsl.syntax import Pos
from ..errors import FlowDefinitionError
from .model import Group, Step


def _error(msg: str, pos: Pos) -> FlowDefinitionError:
    return FlowDefinitionError(msg, line=pos.line, col=pos.col, end_col=pos.end_col, text=pos.text)


def check_cycles(steps: dict[str, Step], names: dict[str, Pos]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    for root in steps:
        if state.get(root):
            continue
        stack = [(root, iter(steps[root].deps))]
        state[root] = 1
        path.append(root)
        while stack:
            name, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[name] = 2
                path.pop()
                stack.pop()
            elif state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                # report at the step that closes the cycle, i.e. reads an earlier one
                pos = names[name]
                raise _error("cycle: " + " -> ".join(reversed(cycle)), pos)
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(steps[nxt].deps)))


def check_groups(steps: dict[str, Step], names: dict[str, Pos], groups: dict[str, Group]) -> None:
    ancestors: dict[str, frozenset[str]] = {}

    def ancestors_of(name: str) -> frozenset[str]:
        if name not in ancestors:
            # iterative post-order, so long chains do not hit the recursion limit
            todo = [name]
            while todo:
                top = todo[-1]
                missing = [d for d in steps[top].deps if d not in ancestors]
                if missing:
                    todo.extend(missing)
                    continue
                todo.pop()
                acc: set[str] = set()
                for d in steps[top].deps:
                    acc.add(d)
                    acc |= ancestors[d]
                ancestors[top] = frozenset(acc)
        return ancestors[name]

    for group in groups.values():
        branch_of = {s: b.name for b in group.branches for s in b.steps}
        for b in group.branches:
            for s in b.steps:
                for other in sorted(ancestors_of(s), key=lambda n: steps[n].index):
                    if other in branch_of and branch_of[other] != b.name:
                        raise _error(
                            f"'{s}' depends on '{other}' (line {steps[other].line}), but both are members of "
                            f"parallel group '{group.name}', whose members run side by side: "
                            f"move '{s}' after the group, or put both in one 'branch'",
                            names[s],
                        )
