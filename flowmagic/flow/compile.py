"""Turn a parsed flow into validated steps, groups and code objects.

Checks everything that can be checked without running: duplicate names, cycles,
members of one group that depend on each other, misplaced blocks. Names that are
not steps become inputs; whether they exist is checked when the flow runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cached_property
from types import CodeType
from typing import Any

from ..dsl.names import analyse, is_llm_call
from ..dsl.syntax import BranchNode, GroupNode, Node, Option, Pos, Span, StepNode
from ..errors import FLOW_FILENAME, FlowDefinitionError
from .model import Branch, Group, Step, StepOptions


@dataclass(frozen=True)
class Code:
    """A compiled expression and what the executor needs to know to run it."""

    code: CodeType
    llm: bool  # the expression is a single llm(...) call
    callee: CodeType | None  # evaluates the called function (to tell async from sync)
    calls: int  # calls it makes besides the top one; 0 means cheap to evaluate on the event loop


@dataclass(frozen=True)
class CompiledStep:
    name: str
    expr: Code  # for a map: one element
    reads: tuple[str, ...]  # every name the step reads (steps, groups, inputs)
    input_pos: dict[str, Pos]  # where each input is first read, for error carets
    bindings: Code | None = None  # for a map: evaluates to a list of loop-variable tuples
    targets: tuple[str, ...] = ()  # for a map: the loop variables


@dataclass
class CompiledFlow:
    steps: dict[str, Step]
    groups: dict[str, Group]
    code: dict[str, CompiledStep]

    @cached_property
    def order(self) -> list[str]:
        """Every step after the steps it reads (see :func:`topological`), computed once per flow."""
        return topological(self.steps)

    @cached_property
    def declared(self) -> list[str]:
        """The steps in the order the cell declares them."""
        return sorted(self.steps, key=lambda n: self.steps[n].index)

    @cached_property
    def children(self) -> dict[str, tuple[str, ...]]:
        """The steps that read each step, in declaration order."""
        found: dict[str, list[str]] = {n: [] for n in self.steps}
        for n in self.declared:
            for d in self.steps[n].deps:
                found[d].append(n)
        return {n: tuple(c) for n, c in found.items()}

    @cached_property
    def indegree(self) -> dict[str, int]:
        """How many steps each step reads (copy it: a run counts it down)."""
        return {n: len(s.deps) for n, s in self.steps.items()}

    @cached_property
    def fixed_callee(self) -> frozenset[str]:
        """Steps whose called function reads no step: it is the same all run long."""
        steps = self.steps.keys()
        return frozenset(
            n for n, c in self.code.items() if c.expr.callee is not None and steps.isdisjoint(c.expr.callee.co_names)
        )

    @cached_property
    def parent_of(self) -> dict[str, str | None]:
        """Each group's enclosing group, or None."""
        return {g: group.parent for g, group in self.groups.items()}

    @cached_property
    def group_workers(self) -> dict[str, int]:
        """The groups that bound their concurrency (``parallel (workers=N)``), and the bound."""
        return {g: group.workers for g, group in self.groups.items() if group.workers}

    @cached_property
    def group_of(self) -> dict[str, str | None]:
        """Each step's innermost group, or None."""
        return {n: s.group for n, s in self.steps.items()}

    @cached_property
    def sources(self) -> dict[str, str]:
        """Each step's source line (shared by the runs' records: do not change it)."""
        return {n: s.source for n, s in self.steps.items()}

    @cached_property
    def records(self) -> list[tuple[str, str, str | None, str | None, tuple[str, ...]]]:
        """What a run's record of each step starts from: name, kind, group, branch, deps."""
        return [(n, s.kind, s.group, s.branch, s.deps) for n, s in self.steps.items()]

    @cached_property
    def simple(self) -> frozenset[str]:
        """Steps run in one attempt without a deadline: plain calls, no ``@retries`` or ``@timeout``."""
        return frozenset(
            n for n, s in self.steps.items() if s.kind == "call" and s.options.timeout is None and not s.options.retries
        )


def compile_nodes(nodes: list[Node]) -> CompiledFlow:
    return _Compiler().run(nodes)


def _error(msg: str, pos: Pos) -> FlowDefinitionError:
    return FlowDefinitionError(msg, line=pos.line, col=pos.col, end_col=pos.end_col, text=pos.text)


def _options(options: list[Option], base: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for opt in options:
        if opt.name == "retries":
            merged["retries"] = opt.args[0]
            merged.update(dict(opt.kwargs))
        elif opt.name == "timeout":
            merged["timeout"] = float(opt.args[0])
        elif opt.name == "cache":
            merged["cache"] = opt.args[0]
    return merged


def _compile_expr(expr: ast.expr, span: Span) -> Code:
    calls = sum(isinstance(n, ast.Call) for n in ast.walk(expr))
    callee = None
    if isinstance(expr, ast.Call):
        calls -= 1
        if not is_llm_call(expr):
            callee = span.compile(ast.Expression(expr.func), FLOW_FILENAME)
            calls += sum(isinstance(n, ast.Call) for n in ast.walk(expr.func))
    return Code(
        code=span.compile(ast.Expression(expr), FLOW_FILENAME),
        llm=is_llm_call(expr),
        callee=callee,
        calls=calls,
    )


@dataclass
class _Pending:
    node: StepNode
    group: str | None
    branch: str | None
    options: dict[str, Any]
    index: int


class _Compiler:
    def __init__(self) -> None:
        self.pending: list[_Pending] = []
        self.groups: dict[str, Group] = {}
        self.group_pos: dict[str, Pos] = {}
        self.unnamed = 0

    def run(self, nodes: list[Node]) -> CompiledFlow:
        self.walk(nodes, None, None, {})
        steps: dict[str, Step] = {}
        code: dict[str, CompiledStep] = {}
        names: dict[str, Pos] = {}
        for p in self.pending:
            if p.node.name in names:
                first = names[p.node.name]
                raise _error(f"step '{p.node.name}' is already defined on line {first.line}", p.node.pos)
            names[p.node.name] = p.node.pos
        for gname, gpos in self.group_pos.items():
            if gname in names:
                raise _error(f"group '{gname}' has the same name as the step on line {names[gname].line}", gpos)
        readable_groups = {n: g for n, g in self.groups.items() if g.named}
        for p in self.pending:
            step, compiled = self.step(p, names, readable_groups)
            steps[step.name] = step
            code[step.name] = compiled
        self.check_cycles(steps, names)
        self.check_groups(steps, names)
        return CompiledFlow(steps=steps, groups=self.groups, code=code)

    # -- structure ------------------------------------------------------------
    def walk(self, nodes: list[Node], group: str | None, branch: str | None, options: dict[str, Any]) -> None:
        for node in nodes:
            opts = _options(node.options, options)
            if isinstance(node, StepNode):
                self.pending.append(_Pending(node, group, branch, opts, len(self.pending)))
            elif isinstance(node, BranchNode):
                raise _error("'branch' belongs directly inside a 'parallel' block", node.pos)
            else:
                self.group(node, group, opts)

    def group(self, node: GroupNode, parent: str | None, options: dict[str, Any]) -> str:
        if node.name is None:
            self.unnamed += 1
            name = f"parallel-{self.unnamed}"
        else:
            name = node.name
            if name in self.groups:
                raise _error(f"group '{name}' is already defined on line {self.groups[name].line}", node.pos)
            self.group_pos[name] = node.pos
        self.groups[name] = Group(name=name, named=False, branches=(), line=node.pos.line)  # placeholder
        branches: list[Branch] = []
        seen: dict[str, Pos] = {}
        for member in node.body:
            opts = _options(member.options, options)
            start = len(self.pending)
            if isinstance(member, StepNode):
                bname, pos = member.name, member.pos
                self.pending.append(_Pending(member, name, bname, opts, len(self.pending)))
            elif isinstance(member, BranchNode):
                bname, pos = member.name, member.pos
                self.walk(member.body, name, bname, opts)
            else:
                bname = self.group(member, name, opts)
                pos = member.pos
                # the nested group's steps belong to it; here they form one branch
            if bname in seen:
                raise _error(f"branch '{bname}' is already defined on line {seen[bname].line}", pos)
            seen[bname] = pos
            branches.append(Branch(name=bname, steps=tuple(p.node.name for p in self.pending[start:])))
        self.groups[name] = Group(
            name=name,
            named=node.name is not None,
            workers=node.workers,
            branches=tuple(branches),
            parent=parent,
            line=node.pos.line,
        )
        return name

    # -- steps ----------------------------------------------------------------
    def step(self, p: _Pending, names: dict[str, Pos], groups: dict[str, Group]) -> tuple[Step, CompiledStep]:
        node = p.node
        expr, analysis = analyse(node.expr, node.span)
        deps: list[str] = []
        inputs: dict[str, Pos] = {}
        for name, pos in analysis.free.items():
            if name == node.name:
                raise _error(f"step '{name}' reads itself: rename the step or the value it reads", pos)
            if name in names:
                deps.append(name)
            elif name in groups:
                if node.name in groups[name].members:
                    raise _error(f"step '{node.name}' is a member of group '{name}' and cannot read it", pos)
                deps.extend(m for m in groups[name].members if m not in deps)
            elif name != "llm":
                inputs[name] = pos
        deps = list(dict.fromkeys(deps))
        bindings = None
        targets: tuple[str, ...] = ()
        if isinstance(expr, ast.ListComp):
            kind = "map"
            seen: dict[str, None] = {}
            for gen in expr.generators:
                if gen.is_async:  # the executor iterates a map's loops itself, synchronously
                    raise _error(
                        "a map loops with 'for', not 'async for': write [f(x) for x in xs]", node.span.pos(gen.target)
                    )
                for n in ast.walk(gen.target):
                    if isinstance(n, ast.Name):
                        seen[n.id] = None
            targets = tuple(seen)
            element = expr.elt
            loop_vars = ast.Tuple(elts=[ast.Name(id=t, ctx=ast.Load()) for t in targets], ctx=ast.Load())
            # lazy: the executor takes at most one element past its limit from the loops
            binding_expr = ast.GeneratorExp(elt=loop_vars, generators=expr.generators)
            ast.copy_location(binding_expr, expr)
            ast.fix_missing_locations(binding_expr)
            bindings = _compile_expr(binding_expr, node.span)
            code = _compile_expr(element, node.span)
        else:
            kind = "llm" if is_llm_call(expr) else "call"
            code = _compile_expr(expr, node.span)
        options = StepOptions(**p.options)
        step = Step(
            name=node.name,
            kind=kind,
            source=node.source,
            deps=tuple(deps),
            inputs=tuple(inputs),
            options=options,
            group=p.group,
            branch=p.branch,
            line=node.pos.line,
            col=node.pos.col,
            index=p.index,
        )
        compiled = CompiledStep(
            name=node.name,
            expr=code,
            reads=tuple(analysis.free),
            input_pos=inputs,
            bindings=bindings,
            targets=targets,
        )
        return step, compiled

    # -- whole-flow checks ------------------------------------------------------
    def check_cycles(self, steps: dict[str, Step], names: dict[str, Pos]) -> None:
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

    def check_groups(self, steps: dict[str, Step], names: dict[str, Pos]) -> None:
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

        for group in self.groups.values():
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


def topological(steps: dict[str, Step]) -> list[str]:
    """Every step after the steps it reads: declaration order, moved only where a step reads a later one."""
    done: dict[str, None] = {}
    for root in sorted(steps, key=lambda n: steps[n].index):
        stack = [root]
        while stack:
            name = stack[-1]
            if name in done:
                stack.pop()
                continue
            todo = [d for d in steps[name].deps if d not in done]
            if todo:
                stack.extend(sorted(todo, key=lambda n: -steps[n].index))
                continue
            done[name] = None
            stack.pop()
    return list(done)
