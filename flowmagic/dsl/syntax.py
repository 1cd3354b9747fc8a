"""The syntax tree of a flow body: what the parser produces and the compiler reads."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Union

from ..errors import FlowSyntaxError
from .columns import ByteColumns
from .lines import physical_line


@dataclass(frozen=True)
class Pos:
    """Where something stands: 1-based line, 0-based columns, and that line's text."""

    line: int
    col: int
    end_col: int
    text: str


@dataclass(frozen=True)
class Option:
    """A decorator such as ``@retries(3)``: its name, literal arguments and position."""

    name: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    pos: Pos


@dataclass
class StepNode:
    """``name = expression``."""

    name: str
    expr: ast.expr
    source: str
    pos: Pos  # the target name
    span: Span  # maps positions inside ``expr`` back to the flow
    options: list[Option] = field(default_factory=list)


@dataclass
class BranchNode:
    """``branch NAME:`` and its indented body."""

    name: str
    body: list[Node]
    pos: Pos
    options: list[Option] = field(default_factory=list)


@dataclass
class GroupNode:
    """``parallel [NAME] [(workers=N)]:`` and its indented body; each member is a branch."""

    name: str | None
    workers: int | None
    body: list[Node]
    pos: Pos
    options: list[Option] = field(default_factory=list)


@dataclass
class Arm:
    """One arm of an ``if`` block: ``if TEST:``, ``elif TEST:`` or ``else:`` (``test`` None) and its body."""

    word: str  # "if", "elif" or "else"
    test: ast.expr | None
    source: str  # the test's text ("" for else)
    span: Span | None  # maps positions inside ``test`` back to the flow
    body: list[Node]
    pos: Pos  # the keyword
    breaks: bool = False  # in a loop: the arm ended with 'break' (see flow.loops)


@dataclass
class IfNode:
    """``if TEST:`` with its ``elif`` and ``else`` arms, in order."""

    arms: list[Arm]
    pos: Pos  # the ``if`` keyword
    options: list[Option] = field(default_factory=list)


@dataclass
class ForNode:
    """``for TARGET in ITER:`` and its body, which runs once per element, in order."""

    target: str
    iter: ast.expr
    source: str  # the iterable's text
    span: Span  # maps positions inside ``iter`` back to the flow
    body: list[Node]
    pos: Pos  # the ``for`` keyword
    target_pos: Pos
    options: list[Option] = field(default_factory=list)


@dataclass
class BreakNode:
    """``break``: the last line of an arm of an ``if`` directly in a loop's body."""

    pos: Pos
    options: list[Option] = field(default_factory=list)


def nested(code: CodeType, change: Callable[[CodeType], CodeType]) -> CodeType:
    """``change`` applied to ``code`` and to every code object inside it (comprehensions, lambdas)."""
    consts = tuple(nested(c, change) if isinstance(c, CodeType) else c for c in code.co_consts)
    return change(code.replace(co_consts=consts))


def at_line(code: CodeType, line: int) -> CodeType:
    """``code`` compiled from a statement's own text, numbered as the flow's lines from ``line``
    (its first), nested code included: a traceback then names the step's line in the cell."""
    return nested(code, lambda c: c.replace(co_firstlineno=c.co_firstlineno + line - 1))


class Span:
    """The source of one statement, and how to map ``ast`` positions in it back to the flow."""

    def __init__(self, lines: list[str], start: tuple[int, int], end: tuple[int, int], prefix: str = ""):
        self.lines = lines
        self.start = start
        self.prefix = prefix
        (l0, c0), (l1, c1) = start, end
        if l0 == l1:
            pieces = [physical_line(lines, l0)[c0:c1]]
        else:
            pieces = [physical_line(lines, l0)[c0:]]
            pieces += [physical_line(lines, n) for n in range(l0 + 1, l1)]
            pieces.append(physical_line(lines, l1)[:c1])
        self.pieces = pieces
        self.source = prefix + "\n".join(pieces)
        self._columns: dict[int, ByteColumns] = {}

    def flow_line(self, lineno: int) -> int:
        return self.start[0] + lineno - 1

    def char_col(self, lineno: int, byte_col: int) -> int:
        """The flow's column (characters) of ``ast``'s column ``byte_col`` (UTF-8 bytes) on ``lineno``."""
        return self.piece_col(lineno, byte_col) + (self.start[1] if lineno == 1 else 0)

    def piece_col(self, lineno: int, byte_col: int) -> int:
        """Like :meth:`char_col`, but counted from the start of the statement's piece of that line."""
        if lineno == 1:
            byte_col -= len(self.prefix.encode("utf-8"))
        if not 0 < lineno <= len(self.pieces):
            return 0
        columns = self._columns.get(lineno)
        if columns is None:  # measured once: a step reading many names stays linear in its length
            columns = self._columns[lineno] = ByteColumns(self.pieces[lineno - 1])
        return columns.char(byte_col)

    def segment(self, node: ast.expr) -> str:
        """The source text of ``node`` (``ast.get_source_segment`` splits the text char by char: quadratic)."""
        lineno, end_lineno = node.lineno, node.end_lineno or node.lineno
        col = self.piece_col(lineno, node.col_offset)
        end_col = self.piece_col(end_lineno, node.end_col_offset or 0)
        if lineno == end_lineno:
            return self.pieces[lineno - 1][col:end_col]
        middle = self.pieces[lineno : end_lineno - 1]
        return "\n".join([self.pieces[lineno - 1][col:], *middle, self.pieces[end_lineno - 1][:end_col]])

    def pos(self, node: ast.AST) -> Pos:
        lineno = getattr(node, "lineno", 1)
        col = self.char_col(lineno, getattr(node, "col_offset", 0))
        end_lineno = getattr(node, "end_lineno", lineno) or lineno
        end_col = self.char_col(end_lineno, getattr(node, "end_col_offset", 0) or 0)
        line = self.flow_line(lineno)
        text = physical_line(self.lines, line)
        if end_lineno != lineno:
            end_col = len(text)
        return Pos(line, col, max(end_col, col + 1), text)

    def parse(self, mode: str = "exec") -> ast.AST:
        try:
            return ast.parse(self.source, mode=mode)
        except SyntaxError as exc:
            lineno = exc.lineno or 1
            line = self.flow_line(lineno)
            offset = max(0, (exc.offset or 1) - 1)
            if lineno == 1:
                offset = max(0, offset - len(self.prefix)) + self.start[1]
            msg = exc.msg.replace("<unknown>", "").strip()
            raise FlowSyntaxError(msg, line=line, col=offset, text=physical_line(self.lines, line)) from None
        except (RecursionError, MemoryError):
            # the nesting limits should have refused this first; never let it out as something else
            raise self._too_complex() from None

    def compile(self, tree: ast.Expression, filename: str) -> CodeType:
        """Compile an expression of this statement; Python's refusals become ``FlowSyntaxError`` here.

        ``ast.parse`` accepts some things only the compiler refuses (``a = *b``,
        ``f(x=1, x=2)``, an async comprehension, assigning ``__debug__``): they are
        just as certain, so they are reported when the flow is defined, with a caret.
        """
        try:
            return at_line(compile(tree, filename, "eval"), self.start[0])
        except SyntaxError as exc:
            lineno = exc.lineno or 1
            # the compiler counts columns in UTF-8 bytes, as the tree does (the parser counts characters)
            col = self.char_col(lineno, max(0, (exc.offset or 1) - 1))
            same_line = exc.end_lineno == lineno and exc.end_offset
            end_col = self.char_col(lineno, (exc.end_offset or 1) - 1) if same_line else None
            line = self.flow_line(lineno)
            raise FlowSyntaxError(
                exc.msg, line=line, col=col, end_col=end_col, text=physical_line(self.lines, line)
            ) from None
        except (RecursionError, MemoryError):
            raise self._too_complex() from None

    def _too_complex(self) -> FlowSyntaxError:
        line, col = self.start
        return FlowSyntaxError(
            "this statement is too complex for Python to parse: give parts of it their own steps",
            line=line,
            col=col,
            text=physical_line(self.lines, line),
        )


Node = Union[StepNode, BranchNode, GroupNode, IfNode, ForNode, BreakNode]  # noqa: UP007 - a runtime alias, Python 3.10 too
