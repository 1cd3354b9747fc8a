"""How the compiler turns each unit into a checked :class:`~flowmagic.flow.model.Step` and the
code an engine runs: what it reads, which of those are steps (its dependencies), which are
inputs, and, in a loop's body, which are carried from the previous iteration."""

from __future__ import annotations

import ast

from ..dsl.names import analyse, is_llm_call
from ..dsl.syntax import ForNode, IfNode, Pos
from ..errors import FLOW_FILENAME
from .compiled import Code, CompiledStep
from .expressions import callees, compile_condition, compile_expr, compile_map, if_source
from .loops import CARRIED
from .model import Group, Step, StepOptions
from .scopes import Binding
from .units import If, Join, LoopUnit, Pending, Pick, Unit, error


class StepMaker:
    """The step of each unit (the compiler's part that reads names)."""

    body: bool  # compiling a loop's body
    first_bound: dict[str, int]  # each name's first assignment, by unit
    carried: dict[str, Pos]  # in a body: names read before it assigns them

    @staticmethod
    def key(p: Unit) -> str:
        return p.key if isinstance(p, (If, LoopUnit)) else p.binding.key

    def step(self, p: Unit, groups: dict[str, Group]) -> tuple[Step, CompiledStep]:
        if isinstance(p, (Join, Pick)):
            return self.join(p)
        free: dict[str, Pos]
        if isinstance(p, LoopUnit):
            name, line, col = p.key, p.node.pos.line, p.node.pos.col
            expr, analysis = analyse(p.node.iter, p.node.span)
            free = dict(analysis.free)
            for read in (*p.plan.outer, *p.plan.carried):  # what the body reads from before the loop
                free.setdefault(read, p.node.pos)
            called = callees(expr)
        elif isinstance(p, If):
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
            if isinstance(p, Pending) and read == p.node.name:
                raise error(f"step '{read}' reads itself: rename the step or the value it reads", pos)
            if isinstance(p, LoopUnit) and isinstance(found, Binding) and found.order > p.index:
                found = None  # assigned only by the loop itself: from the notebook, before it runs
            if isinstance(found, str):
                raise error(found, pos)
            if found is not None:
                deps.append(found.key)
                if found.key != read:
                    binds[read] = found.key
            elif read in groups:
                if name in groups[read].members:
                    raise error(f"step '{name}' is a member of group '{read}' and cannot read it", pos)
                deps.extend(m for m in groups[read].members if m not in deps)
            elif read != "llm":
                inputs[read] = pos
        deps = list(dict.fromkeys(deps))
        bindings = None
        targets: tuple[str, ...] = ()
        if isinstance(p, LoopUnit):
            kind = "loop"
            code = compile_expr(expr, p.node.span)
            source = p.plan.label
        elif isinstance(p, If):
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

    def join(self, p: Join | Pick) -> tuple[Step, CompiledStep]:
        name = p.binding.key
        node: ForNode | IfNode
        deps: tuple[str, ...]
        if isinstance(p, Pick):
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
