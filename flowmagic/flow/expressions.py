"""Compile what a step evaluates: its expression, a map's loops and element, an if block's condition."""

from __future__ import annotations

import ast

from ..dsl.names import is_llm_call
from ..dsl.syntax import IfNode, Span
from ..errors import FLOW_FILENAME, FlowDefinitionError
from .compiled import Code


def compile_expr(expr: ast.expr, span: Span) -> Code:
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


def compile_map(expr: ast.ListComp, span: Span) -> tuple[Code, Code, tuple[str, ...]]:
    """A map's bindings (a generator of loop-variable tuples), its element, its loop variables."""
    seen: dict[str, None] = {}
    for gen in expr.generators:
        if gen.is_async:  # the executor iterates a map's loops itself, synchronously
            pos = span.pos(gen.target)
            raise FlowDefinitionError(
                "a map loops with 'for', not 'async for': write [f(x) for x in xs]",
                line=pos.line,
                col=pos.col,
                end_col=pos.end_col,
                text=pos.text,
            )
        for n in ast.walk(gen.target):
            if isinstance(n, ast.Name):
                seen[n.id] = None
    targets = tuple(seen)
    loop_vars = ast.Tuple(elts=[ast.Name(id=t, ctx=ast.Load()) for t in targets], ctx=ast.Load())
    # lazy: the executor takes at most one element past its limit from the loops
    binding_expr = ast.GeneratorExp(elt=loop_vars, generators=expr.generators)
    ast.copy_location(binding_expr, expr)
    ast.fix_missing_locations(binding_expr)
    return compile_expr(binding_expr, span), compile_expr(expr.elt, span), targets


def compile_condition(tests: list[tuple[ast.expr, Span]]) -> Code:
    """An if block's condition: the number of the first arm whose test is true (past the
    last test: the ``else`` arm, or none)."""
    for test, span in tests:
        span.compile(ast.Expression(test), FLOW_FILENAME)  # Python's refusals, with a caret on the test
    chain: ast.expr = ast.Constant(len(tests))
    for number in reversed(range(len(tests))):
        test = tests[number][0]
        chain = ast.IfExp(test=test, body=ast.Constant(number), orelse=chain)
        ast.copy_location(chain, test)
    tree = ast.Expression(chain)
    ast.fix_missing_locations(tree)
    calls = sum(isinstance(n, ast.Call) for t, _ in tests for n in ast.walk(t))
    return Code(code=compile(tree, FLOW_FILENAME, "eval"), llm=False, callee=None, calls=calls)


def arm_label(node: IfNode, arm: int) -> str:
    a = node.arms[arm]
    return f"{a.word} {a.source}" if a.test is not None else "else"


def if_source(node: IfNode) -> str:
    return " / ".join(arm_label(node, i) for i in range(len(node.arms)))


def callees(*exprs: ast.expr) -> tuple[str, ...]:
    """What each call in the expressions calls, for the cache policy, in order, once each:
    ``"f"``, a dotted ``"json.dumps"``, ``".join"`` for a method of some other expression
    (``", ".join(xs)``, ``x[0].strip()``), ``""`` when the callee is itself computed (``fs[0](x)``)."""
    found: dict[str, None] = {}
    for expr in exprs:
        for node in ast.walk(expr):
            if isinstance(node, ast.Call):
                found[_called(node.func)] = None
    return tuple(found)


def _called(func: ast.expr) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        return ".".join([func.id, *reversed(parts)])
    return "." + parts[0] if parts else ""
