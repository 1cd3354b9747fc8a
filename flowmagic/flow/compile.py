"""Turn a parsed flow into validated steps, groups and code objects.

Checks everything that can be checked without running: duplicate names, cycles,
members of one group that depend on each other, misplaced blocks, names read where
no arm of an ``if`` block gave them a value (:mod:`.scopes`). Names that are
not steps become inputs; whether they exist is checked when the flow runs. The units it
keeps are in :mod:`.units`; the step each becomes, from the names it reads, in :mod:`.steps`.
"""

from __future__ import annotations

from typing import Any

from ..dsl.syntax import BranchNode, BreakNode, ForNode, GroupNode, IfNode, Node, Pos, StepNode
from .checks import check_cycles, check_groups
from .compiled import Code, CompiledFlow, CompiledStep, topological
from .expressions import arm_label
from .loops import CARRIED, Loop, unfold_breaks
from .model import Branch, Group, Step
from .scopes import Binding, Scope, name_bindings
from .shape import Cluster
from .steps import StepMaker
from .units import At, If, Join, LoopUnit, Pending, Pick, Unit, error, options_of

__all__ = ["Code", "CompiledFlow", "CompiledStep", "compile_nodes", "topological"]


def compile_nodes(nodes: list[Node]) -> CompiledFlow:
    return _Compiler().run(nodes)


class _Compiler(StepMaker):
    """Compiles a flow, or (``body``) a loop's body, where a name read before the body assigns
    it is carried from the previous iteration (see :mod:`.loops`)."""

    def __init__(self, body: bool = False, options: dict[str, Any] | None = None) -> None:
        self.body = body
        self.base = options or {}
        self.carried: dict[str, Pos] = {}  # in a body: names read before it assigns them
        self.breaks: list[tuple[str, int]] = []  # in a body: the (condition, arm) pairs that break
        self.first_bound: dict[str, int] = {}
        self.pending: list[Unit] = []
        self.bindings: list[Binding] = []
        self.groups: dict[str, tuple[GroupNode, str, str | None, list[tuple[str, Pos, int, int]]]] = {}
        self.group_pos: dict[str, Pos] = {}
        self.clusters: list[Cluster] = []  # parents first
        self.unnamed = 0
        self.top = Scope()

    def run(self, nodes: list[Node]) -> CompiledFlow:
        self.walk(nodes, At(None, None, self.base, self.top, None))
        name_bindings(self.bindings, self.top)
        for b in self.bindings:
            self.first_bound.setdefault(b.name, b.order)
        names: dict[str, Pos] = {}  # every unit's name and where it is declared
        for p in self.pending:
            key, pos = self.key(p), (p.node.pos if isinstance(p, (If, LoopUnit)) else p.binding.pos)
            names[key] = pos
        for gname, gpos in self.group_pos.items():
            if gname in names or any(b.name == gname for b in self.bindings):
                line = next((b.pos.line for b in self.bindings if b.name == gname), gpos.line)
                raise error(f"group '{gname}' has the same name as the step on line {line}", gpos)
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
            if isinstance(p, If)
        }
        joins = {
            p.binding.key: (p.cond.key, tuple(v.key for v in p.variants)) for p in self.pending if isinstance(p, Join)
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
            loops={p.key: p.plan for p in self.pending if isinstance(p, LoopUnit)},
            picks={p.binding.key: (p.loop.key, p.name) for p in self.pending if isinstance(p, Pick)},
        )

    @staticmethod
    def where(p: Unit) -> At:
        return p.cond.at if isinstance(p, Join) else p.loop.at if isinstance(p, Pick) else p.at

    def outputs(self) -> dict[str, tuple[str, ...]]:
        """Each name this body assigns: the units that do, in order."""
        found: dict[str, list[str]] = {}
        for b in sorted(self.bindings, key=lambda b: b.order):
            found.setdefault(b.name, []).append(b.key)
        return {name: tuple(keys) for name, keys in found.items()}

    # -- structure ------------------------------------------------------------
    def walk(self, nodes: list[Node], at: At) -> None:
        for node in nodes:
            here = at.but(options=options_of(node.options, at.options))
            if isinstance(node, StepNode):
                self.assign(node, here)
            elif isinstance(node, BranchNode):
                raise error("'branch' belongs directly inside a 'parallel' block", node.pos)
            elif isinstance(node, IfNode):
                self.if_block(node, here)
            elif isinstance(node, ForNode):
                self.loop_block(node, here)
            elif isinstance(node, BreakNode):
                raise error("'break' must be the last line of an arm of an 'if' in a loop's body", node.pos)
            else:
                self.group(node, here)

    def assign(self, node: StepNode, at: At) -> None:
        binding = self.bind(node.name, node.pos, at.scope)
        self.pending.append(Pending(node, at, len(self.pending), binding))

    def bind(self, name: str, pos: Pos, scope: Scope) -> Binding:
        problem = scope.conflict(name)
        if problem:
            raise error(problem, pos)
        binding = Binding(name, pos, order=len(self.pending))
        scope.declare(binding)
        self.bindings.append(binding)
        return binding

    def if_block(self, node: IfNode, at: At) -> str:
        cond = If(node, at, len(self.pending), f"if@{node.pos.line}", [])
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
                self.pending.append(Join(cond, variants, len(self.pending), binding))
            else:
                problem = scope.conflict(name)
                if problem:
                    raise error(problem, next(i.names[name].pos for i in arm_scopes if name in i.names))
                scope.partial[name] = node.pos.line
        return cond.key

    def loop_block(self, node: ForNode, at: At) -> str:
        key = f"for@{node.pos.line}"
        inner = _Compiler(body=True, options=at.options)
        body = inner.run(unfold_breaks(node.body))
        outputs = inner.outputs()
        if node.target in outputs:
            pos = next(b.pos for b in inner.bindings if b.name == node.target)
            raise error(f"'{node.target}' is the loop's variable: give the step another name", pos)
        carried = tuple(inner.carried)
        outer = dict.fromkeys(
            n for s in body.steps.values() for n in s.inputs if not n.endswith(CARRIED) and n != node.target
        )
        label = f"for {node.target} in {node.source}"
        plan = Loop(node.target, label, body, carried, tuple(outer), outputs, tuple(inner.breaks))
        loop = LoopUnit(node, at.but(cluster=f"cluster_{key}"), len(self.pending), key, plan)
        self.pending.append(loop)
        self.clusters.append(Cluster(f"cluster_{key}", label, "loop", at.cluster))
        for name in outputs:
            if name in at.scope.names:  # assigned before the loop: the loop's value shadows it from here on
                binding = Binding(name, node.pos, order=len(self.pending))
                at.scope.shadow(binding)
                self.bindings.append(binding)
            else:
                binding = self.bind(name, node.pos, at.scope)
            self.pending.append(Pick(loop, name, len(self.pending), binding))
        return key

    def group(self, node: GroupNode, at: At) -> str:
        if node.name is None:
            self.unnamed += 1
            name = f"parallel-{self.unnamed}"
        else:
            name = node.name
            if name in self.groups:
                raise error(f"group '{name}' is already defined on line {self.groups[name][0].pos.line}", node.pos)
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
            here = at.but(group=name, options=options_of(member.options, at.options), cluster=gid)
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
                raise error("'break' must be the last line of an arm of an 'if' in a loop's body", member.pos)
            else:
                bname = self.group(member, here)
                pos = member.pos
                # the nested group's steps belong to it; here they form one branch
            if bname in seen:
                raise error(f"branch '{bname}' is already defined on line {seen[bname].line}", pos)
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
