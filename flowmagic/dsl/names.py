"""Which names a step expression reads, with Python's scoping of comprehensions and lambdas.

It also prepares ``llm(...)`` calls: a literal template's ``{placeholders}`` count
as names the step reads, and the call gets a hidden ``_placeholders={...}``
argument that captures them where the call stands (so ``{i}`` inside a
comprehension sees the loop variable).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from ..errors import FlowDefinitionError, did_you_mean
from ..llm.template import TemplateError, placeholders
from .syntax import Pos, Span

LLM_ARGS = ("model", "system", "temperature", "max_tokens", "schema")
PLACEHOLDERS_ARG = "_placeholders"
TEMPLATES_ARG = "_templates"  # which of "prompt" and "system" are literal templates to render


@dataclass
class Analysis:
    free: dict[str, Pos] = field(default_factory=dict)  # name -> where it is first read
    calls: int = 0  # how many calls the expression makes (0: cheap to run inline)


def analyse(expr: ast.expr, span: Span) -> tuple[ast.expr, Analysis]:
    """Return ``expr`` with its ``llm`` calls prepared, and the names it reads."""
    analysis = Analysis()
    new = _Scoped(span, analysis).visit_in(expr, frozenset())
    ast.fix_missing_locations(new)
    return new, analysis


def is_llm_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "llm"


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _targets(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


class _Scoped:
    def __init__(self, span: Span, analysis: Analysis) -> None:
        self.span = span
        self.analysis = analysis

    def error(self, msg: str, node: ast.AST) -> FlowDefinitionError:
        pos = self.span.pos(node)
        return FlowDefinitionError(msg, line=pos.line, col=pos.col, end_col=pos.end_col, text=pos.text)

    def read(self, name: str, node: ast.AST, bound: frozenset[str]) -> None:
        if name not in bound and name not in self.analysis.free:
            self.analysis.free[name] = self.span.pos(node)

    def visit_in(self, node: ast.AST, bound: frozenset[str]) -> ast.expr:
        self._visit(node, bound)
        return node  # type: ignore[return-value]

    def _visit(self, node: ast.AST, bound: frozenset[str]) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.read(node.id, node, bound)
            return
        if isinstance(node, ast.NamedExpr):
            raise self.error("':=' is not allowed in a step: give the value its own step", node)
        if isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom)):
            raise self.error("no 'await' or 'yield' in a step: coroutines are awaited for you", node)
        if isinstance(node, ast.Lambda):
            for default in [*node.args.defaults, *[d for d in node.args.kw_defaults if d is not None]]:
                self._visit(default, bound)
            args = node.args
            names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
            names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
            self._visit(node.body, bound | names)
            return
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = bound
            for i, gen in enumerate(node.generators):
                self._visit(gen.iter, bound if i == 0 else inner)
                inner = inner | _targets(gen.target)
                for cond in gen.ifs:
                    self._visit(cond, inner)
            if isinstance(node, ast.DictComp):
                self._visit(node.key, inner)
                self._visit(node.value, inner)
            else:
                self._visit(node.elt, inner)
            return
        roots: list[str] | None = None
        if isinstance(node, ast.Call):
            self.analysis.calls += 1
            if is_llm_call(node) and "llm" not in bound:
                roots = self._llm(node, bound)
        for child in ast.iter_child_nodes(node):
            self._visit(child, bound)
        if roots is not None:
            assert isinstance(node, ast.Call)
            system = [kw.value for kw in node.keywords if kw.arg == "system"]
            literal = ["prompt"] if _is_str(node.args[0]) else []
            literal += ["system"] if system and _is_str(system[0]) else []
            node.keywords.append(
                ast.keyword(arg=TEMPLATES_ARG, value=ast.Tuple(elts=[ast.Constant(n) for n in literal], ctx=ast.Load()))
            )
            node.keywords.append(
                ast.keyword(
                    arg=PLACEHOLDERS_ARG,
                    value=ast.Dict(
                        keys=[ast.Constant(r) for r in roots],
                        values=[ast.Name(id=r, ctx=ast.Load()) for r in roots],
                    ),
                )
            )

    def _llm(self, call: ast.Call, bound: frozenset[str]) -> list[str]:
        """Check an ``llm(...)`` call and read its placeholders; return their root names."""
        if len(call.args) != 1 or any(isinstance(a, ast.Starred) for a in call.args):
            target = call.args[1] if len(call.args) > 1 else call
            raise self.error(
                "llm() takes one prompt template, then keywords: "
                "llm(template, model=, system=, temperature=, max_tokens=, schema=)",
                target,
            )
        roots: dict[str, Pos] = {}
        templates = [call.args[0]] + [kw.value for kw in call.keywords if kw.arg == "system"]
        for kw in call.keywords:
            if kw.arg is None:
                raise self.error("llm() takes its settings by name, not **kwargs", kw.value)
            if kw.arg not in LLM_ARGS:
                raise self.error(f"llm() has no setting '{kw.arg}'.{did_you_mean(kw.arg, LLM_ARGS)}", kw)
        for tmpl in templates:
            if isinstance(tmpl, ast.Constant) and isinstance(tmpl.value, str):
                try:
                    found = placeholders(tmpl.value)
                except TemplateError as exc:
                    raise self.error(str(exc), tmpl) from None
                for ph, pos in zip(found, self._placeholder_positions(tmpl, [ph.field for ph in found]), strict=True):
                    roots.setdefault(ph.root, pos)
        for root, pos in roots.items():
            if root not in bound and root not in self.analysis.free:
                self.analysis.free[root] = pos
        return list(roots)

    def _placeholder_positions(self, literal: ast.AST, fields: list[str]) -> list[Pos]:
        """Where each ``{field`` stands inside the string literal on its line (else the literal).

        One pass along the line: each search starts where the last field was found,
        and after one that cannot be found (escapes, a literal over several lines)
        the rest point at the literal, so many placeholders never rescan a long line.
        """
        pos = self.span.pos(literal)
        cursor: int | None = pos.col
        found: list[Pos] = []
        for text in fields:
            where = -1 if cursor is None else pos.text.find("{" + text, cursor, pos.end_col)
            if where < 0:
                cursor = None
                found.append(pos)
                continue
            found.append(Pos(pos.line, where, where + len(text) + 2, pos.text))
            cursor = where + len(text) + 1
        return found
