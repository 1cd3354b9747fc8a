"""Turn a parsed flow into validated steps, groups and code objects.

Checks everything that can be checked without running: duplicate names, cycles,
members of one group that depend on each other, misplaced blocks, names read where
no arm of an ``if`` block gave them a value (:mod:`.scopes`). Names that are
not steps become inputs; whether they exist is checked when the flow runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from typing import Any

from ..dsl.names import analyse, is_llm_call
from ..dsl.syntax import BranchNode, BreakNode, ForNode, GroupNode, IfNode, Node, Option, Pos, StepNode
from ..errors import FLOW_FILENAME, FlowDefinitionError
from .checks import check_cycles, check_groups
from .compiled import Code, CompiledFlow, CompiledStep, topological
from .expressions import arm_label, callees, compile_condition, compile_expr, compile_map, if_source
from .loops import CARRIED, Loop, unfold_breaks
from .model import Branch, Group, Step, StepOptions
from .scopes import Binding, Scope, name_bindings
from .shape import Cluster

__all__ = ["Code", "CompiledFlow", "CompiledStep", "compile_nodes", "topological"]


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


@dataclass(frozen=True)
class _At:
    """Where a statement stands: its group and branch, the options around it, the scope its
    names are read in, and the innermost cluster it is drawn in."""

    group: str | None
    branch: str | None
    options: dict[str, Any]
    scope: Scope
    cluster: str | None

    def but(self, **changes: Any) -> _At:
        return replace(self, **changes)


@dataclass(eq=False)
class _Pending:
    """A step line, where it stands."""

    node: StepNode
    at: _At
    index: int
    binding: Binding


@dataclass(eq=False)
class _If:
    """An if block's condition, a step of its own named ``if@LINE``."""

    node: IfNode
    at: _At
    index: int
    key: str
    arms: list[list[Any]]  # each arm's pending items, nested ones included


@dataclass(eq=False)
class _Join:
    """A name's value after an if block: the chosen arm's."""

    cond: _If
    variants: list[Binding]  # one per arm
    index: int
    binding: Binding


@dataclass(eq=False)
class _Loop:
    """A for loop: a step of its own named ``for@LINE`` that runs its body once per element."""

    node: ForNode
    at: _At
    index: int
    key: str
    plan: Loop


@dataclass(eq=False)
class _Pick:
    """A name's value after a for loop: its last iteration's."""

    loop: _Loop
    name: str
    index: int
    binding: Binding


_Unit = _Pending | _If | _Join | _Loop | _Pick


class _Compiler:
    """Compiles a flow, or (``body``) a loop's body, where a name read before the body assigns
    it is carried from the previous iteration (see :mod:`.loops`)."""

    def __init__(self, body: bool = False, options: dict[str, Any] | None = None) -> None:
        self.body = body
        self.base = options or {}
        self.carried: dict[str, Pos] = {}  # in a body: names read before it assigns them
        self.breaks: list[tuple[str, int]] = []  # in a body: the (condition, arm) pairs that break
        self.first_bound: dict[str, int] = {}
        self.pending: list[_Unit] = []
        self.bindings: list[Binding] = []
        self.groups: dict[str, tuple[GroupNode, str, str | None, list[tuple[str, Pos, int, int]]]] = {}
        self.group_pos: dict[str, Pos] = {}
        self.clusters: list[Cluster] = []  # parents first
        self.unnamed = 0
        self.top = Scope()

    def run(self, nodes: list[Node]) -> CompiledFlow:
        self.walk(nodes, _At(None, None, self.base, self.top, None))
        name_bindings(self.bindings, self.top)
        for b in self.bindings:
            self.first_bound.setdefault(b.name, b.order)
        names: dict[str, Pos] = {}  # every unit's name and where it is declared
        for p in self.pending:
            key, pos = self.key(p), (p.node.pos if isinstance(p, (_If, _Loop)) else p.binding.pos)
            names[key] = pos
        for gname, gpos in self.group_pos.items():
            if gname in names or any(b.name == gname for b in self.bindings):
                line = next((b.pos.line for b in self.bindings if b.name == gname), gpos.line)
                raise _error(f"group '{gname}' has the same name as the step on line {line}", gpos)
        groups = self.finish_groups()
        readable_groups = {n: g for n, g in groups.items() if g.named}
        steps: dict[str, Step] = {}
        code: dict[str, CompiledStep] = {}
        for p in self.pending:
            step, compiled = self.step(p, readable_groups)
            steps[step.name] = step
            code[step.name] = compiled
        check_cycles(steps, names)
        check_groups(steps, names, groups)
        arms = {
            p.key: tuple((arm_label(p.node, i), tuple(self.key(q) for q in arm)) for i, arm in enumerate(p.arms))
            for p in self.pending
            if isinstance(p, _If)
        }
        joins = {
            p.binding.key: (p.cond.key, tuple(v.key for v in p.variants)) for p in self.pending if isinstance(p, _Join)
        }
        drawn = {self.key(p): self.where(p).cluster for p in self.pending}
        return CompiledFlow(
            steps=steps,
            groups=groups,
            code=code,
            arms=arms,
            joins=joins,
            clusters=tuple(self.clusters),
            drawn=drawn,
            loops={p.key: p.plan for p in self.pending if isinstance(p, _Loop)},
            picks={p.binding.key: (p.loop.key, p.name) for p in self.pending if isinstance(p, _Pick)},
        )

    @staticmethod
    def key(p: _Unit) -> str:
        return p.key if isinstance(p, (_If, _Loop)) else p.binding.key

    @staticmethod
    def where(p: _Unit) -> _At:
        return p.cond.at if isinstance(p, _Join) else p.loop.at if isinstance(p, _Pick) else p.at

    def outputs(self) -> dict[str, tuple[str, ...]]:
        """Each name this body assigns: the units that do, in order."""
        found: dict[str, list[str]] = {}
        for b in sorted(self.bindings, key=lambda b: b.order):
            found.setdefault(b.name, []).append(b.key)
        return {name: tuple(keys) for name, keys in found.items()}

    # -- structure ------------------------------------------------------------
    def walk(self, nodes: list[Node], at: _At) -> None:
        for node in nodes:
            here = at.but(options=_options(node.options, at.options))
            if isinstance(node, StepNode):
                self.assign(node, here)
            elif isinstance(node, BranchNode):
                raise _error("'branch' belongs directly inside a 'parallel' block", node.pos)
            elif isinstance(node, IfNode):
                self.if_block(node, here)
            elif isinstance(node, ForNode):
                self.loop_block(node, here)
            elif isinstance(node, BreakNode):
                raise _error("'break' must be the last line of an arm of an 'if' in a loop's body", node.pos)
            else:
                self.group(node, here)

    def assign(self, node: StepNode, at: _At) -> None:
        binding = self.bind(node.name, node.pos, at.scope)
        self.pending.append(_Pending(node, at, len(self.pending), binding))

    def bind(self, name: str, pos: Pos, scope: Scope) -> Binding:
        problem = scope.conflict(name)
        if problem:
            raise _error(problem, pos)
        binding = Binding(name, pos, order=len(self.pending))
        scope.declare(binding)
        self.bindings.append(binding)
        return binding

    def if_block(self, node: IfNode, at: _At) -> str:
        cond = _If(node, at, len(self.pending), f"if@{node.pos.line}", [])
        self.pending.append(cond)
        scope = at.scope
        arm_scopes = []
        for number, arm in enumerate(node.arms):
            inner = Scope(parent=scope, cond=cond.key)
            cluster = f"cluster_{cond.key}/{number}"
            self.clusters.append(Cluster(cluster, arm_label(node, number), "arm", at.cluster))
            start = len(self.pending)
            self.walk(arm.body, at.but(scope=inner, cluster=cluster))
            cond.arms.append(self.pending[start:])
            arm_scopes.append(inner)
            if arm.breaks:
                self.breaks.append((cond.key, number))
        assigned = dict.fromkeys(n for inner in arm_scopes for n in [*inner.names, *inner.partial])
        complete = node.arms[-1].word == "else"
        for name in assigned:
            if complete and all(name in inner.names for inner in arm_scopes):
                variants = [inner.names[name] for inner in arm_scopes]
                binding = self.bind(name, node.pos, scope)
                self.pending.append(_Join(cond, variants, len(self.pending), binding))
            else:
                problem = scope.conflict(name)
                if problem:
                    raise _error(problem, next(i.names[name].pos for i in arm_scopes if name in i.names))
                scope.partial[name] = node.pos.line
        return cond.key

    def loop_block(self, node: ForNode, at: _At) -> str:
        key = f"for@{node.pos.line}"
        inner = _Compiler(body=True, options=at.options)
        body = inner.run(unfold_breaks(node.body))
        outputs = inner.outputs()
        if node.target in outputs:
            pos = next(b.pos for b in inner.bindings if b.name == node.target)
            raise _error(f"'{node.target}' is the loop's variable: give the step another name", pos)
        carried = tuple(inner.carried)
        outer = dict.fromkeys(
            n for s in body.steps.values() for n in s.inputs if not n.endswith(CARRIED) and n != node.target
        )
        label = f"for {node.target} in {node.source}"
        plan = Loop(node.target, label, body, carried, tuple(outer), outputs, tuple(inner.breaks))
        loop = _Loop(node, at.but(cluster=f"cluster_{key}"), len(self.pending), key, plan)
        self.pending.append(loop)
        self.clusters.append(Cluster(f"cluster_{key}", label, "loop", at.cluster))
        for name in outputs:
            if name in at.scope.names:  # assigned before the loop: the loop's value shadows it from here on
                binding = Binding(name, node.pos, order=len(self.pending))
                at.scope.shadow(binding)
                self.bindings.append(binding)
            else:
                binding = self.bind(name, node.pos, at.scope)
            self.pending.append(_Pick(loop, name, len(self.pending), binding))
        return key

    def group(self, node: GroupNode, at: _At) -> str:
        if node.name is None:
            self.unnamed += 1
            name = f"parallel-{self.unnamed}"
        else:
            name = node.name
            if name in self.groups:
                raise _error(f"group '{name}' is already defined on line {self.groups[name][0].pos.line}", node.pos)
            self.group_pos[name] = node.pos
        branches: list[tuple[str, Pos, int, int]] = []  # name, where, its pending items from..to
        self.groups[name] = (node, name, at.group, branches)
        gid = f"cluster_{name}"
        title = f"parallel {name}" if node.name is not None else "parallel"
        if node.workers:
            title += f" (workers={node.workers})"
        self.clusters.append(Cluster(gid, title, "group", at.cluster))
        seen: dict[str, Pos] = {}
        for member in node.body:
            here = at.but(group=name, options=_options(member.options, at.options), cluster=gid)
            start = len(self.pending)
            if isinstance(member, StepNode):
                bname, pos = member.name, member.pos
                self.assign(member, here.but(branch=bname))
            elif isinstance(member, BranchNode):
                bname, pos = member.name, member.pos
                cluster = gid
                lone = len(member.body) == 1 and isinstance(member.body[0], StepNode) and member.body[0].name == bname
                if not lone:  # a branch block is a cluster, unless it is one step of its own name
                    cluster = f"{gid}/{bname}"
                    self.clusters.append(Cluster(cluster, f"branch {bname}", "branch", gid))
                self.walk(member.body, here.but(branch=bname, cluster=cluster))
            elif isinstance(member, IfNode):
                pos = member.pos
                bname = self.if_block(member, here.but(branch=f"if@{member.pos.line}"))
            elif isinstance(member, ForNode):
                pos = member.pos
                bname = self.loop_block(member, here.but(branch=f"for@{member.pos.line}"))
            elif isinstance(member, BreakNode):
                raise _error("'break' must be the last line of an arm of an 'if' in a loop's body", member.pos)
            else:
                bname = self.group(member, here)
                pos = member.pos
                # the nested group's steps belong to it; here they form one branch
            if bname in seen:
                raise _error(f"branch '{bname}' is already defined on line {seen[bname].line}", pos)
            seen[bname] = pos
            branches.append((bname, pos, start, len(self.pending)))
        return name

    def finish_groups(self) -> dict[str, Group]:
        """The groups, their members named now that every step has its name."""
        return {
            name: Group(
                name=name,
                named=node.name is not None,
                workers=node.workers,
                branches=tuple(
                    Branch(name=b, steps=tuple(self.key(p) for p in self.pending[i:j])) for b, _, i, j in branches
                ),
                parent=parent,
                line=node.pos.line,
            )
            for node, name, parent, branches in self.groups.values()
        }

    # -- steps ----------------------------------------------------------------
    def step(self, p: _Unit, groups: dict[str, Group]) -> tuple[Step, CompiledStep]:
        if isinstance(p, (_Join, _Pick)):
            return self.join(p)
        free: dict[str, Pos]
        if isinstance(p, _Loop):
            name, line, col = p.key, p.node.pos.line, p.node.pos.col
            expr, analysis = analyse(p.node.iter, p.node.span)
            free = dict(analysis.free)
            for read in (*p.plan.outer, *p.plan.carried):  # what the body reads from before the loop
                free.setdefault(read, p.node.pos)
            called = callees(expr)
        elif isinstance(p, _If):
            name, line, col = p.key, p.node.pos.line, p.node.pos.col
            tests = [(arm.test, arm.span) for arm in p.node.arms if arm.test is not None and arm.span is not None]
            free = {}
            exprs = []
            for test, span in tests:
                expr, analysis = analyse(test, span)
                exprs.append((expr, span))
                for n, pos in analysis.free.items():
                    free.setdefault(n, pos)
            called = callees(*(e for e, _ in exprs))
        else:
            name, line, col = p.binding.key, p.node.pos.line, p.node.pos.col
            expr, analysis = analyse(p.node.expr, p.node.span)
            free = analysis.free
            called = callees(expr)
        deps: list[str] = [p.at.scope.cond] if p.at.scope.cond else []
        inputs: dict[str, Pos] = {}
        binds: dict[str, str] = {}
        for read, pos in free.items():
            found = p.at.scope.resolve(read, before=p.index)
            if self.carries(read, found, p.index):  # the previous iteration's value
                inputs[read + CARRIED] = pos
                binds[read] = read + CARRIED
                self.carried.setdefault(read, pos)
                continue
            if isinstance(p, _Pending) and read == p.node.name:
                raise _error(f"step '{read}' reads itself: rename the step or the value it reads", pos)
            if isinstance(p, _Loop) and isinstance(found, Binding) and found.order > p.index:
                found = None  # assigned only by the loop itself: from the notebook, before it runs
            if isinstance(found, str):
                raise _error(found, pos)
            if found is not None:
                deps.append(found.key)
                if found.key != read:
                    binds[read] = found.key
            elif read in groups:
                if name in groups[read].members:
                    raise _error(f"step '{name}' is a member of group '{read}' and cannot read it", pos)
                deps.extend(m for m in groups[read].members if m not in deps)
            elif read != "llm":
                inputs[read] = pos
        deps = list(dict.fromkeys(deps))
        bindings = None
        targets: tuple[str, ...] = ()
        if isinstance(p, _Loop):
            kind = "loop"
            code = compile_expr(expr, p.node.span)
            source = p.plan.label
        elif isinstance(p, _If):
            kind = "if"
            code = compile_condition(exprs)
            source = if_source(p.node)
        elif isinstance(expr, ast.ListComp):
            kind = "map"
            bindings, code, targets = compile_map(expr, p.node.span)
            source = p.node.source
        else:
            kind = "llm" if is_llm_call(expr) else "call"
            code = compile_expr(expr, p.node.span)
            source = p.node.source
        step = Step(
            name=name,
            kind=kind,
            source=source,
            deps=tuple(deps),
            inputs=tuple(inputs),
            options=StepOptions(**p.at.options),
            group=p.at.group,
            branch=p.at.branch,
            line=line,
            col=col,
            index=p.index,
        )
        compiled = CompiledStep(
            name=name,
            expr=code,
            reads=tuple(free),
            input_pos=inputs,
            bindings=bindings,
            targets=targets,
            binds=binds or None,
            callees=called,
        )
        return step, compiled

    def carries(self, read: str, found: Binding | str | None, index: int) -> bool:
        """In a loop's body: whether a read by the unit at ``index`` is of the previous iteration's
        value (no assignment of the name in the body comes before it)."""
        first = self.first_bound.get(read) if self.body else None
        if first is None:
            return False
        if isinstance(found, Binding):
            return found.order >= index
        return found is None or index <= first

    def join(self, p: _Join | _Pick) -> tuple[Step, CompiledStep]:
        name = p.binding.key
        node: ForNode | IfNode
        deps: tuple[str, ...]
        if isinstance(p, _Pick):
            at, node, source, deps = p.loop.at, p.loop.node, f"{p.name}: its value after the loop", (p.loop.key,)
        else:
            at, node, source = p.cond.at, p.cond.node, f"{p.binding.name}: the chosen arm's"
            deps = (p.cond.key, *(v.key for v in p.variants))
        step = Step(
            name=name,
            kind="join",
            source=source,
            deps=deps,
            options=StepOptions(**at.options),
            group=at.group,
            branch=at.branch,
            line=node.pos.line,
            col=node.pos.col,
            index=p.index,
        )
        none = ast.Expression(ast.Constant(None))
        ast.fix_missing_locations(none)
        code = Code(code=compile(none, FLOW_FILENAME, "eval"), llm=False, callee=None, calls=0)
        return step, CompiledStep(name=name, expr=code, reads=deps, input_pos={})
