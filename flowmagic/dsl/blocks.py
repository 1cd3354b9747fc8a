"""The blocks of a flow body: ``if``/``elif``/``else``, ``for``, ``parallel`` and ``branch``
headers and their indented bodies, for the parser (:mod:`.parser`), which reads the rest."""

from __future__ import annotations

import ast
import keyword
import tokenize
from typing import Any

from ..errors import FlowDefinitionError, FlowSyntaxError, did_you_mean
from .limits import MAX_BLOCK_DEPTH, check_nesting, too_deep_block
from .lines import LogicalLine, logical_lines, physical_line, split_lines
from .syntax import Arm, BranchNode, ForNode, GroupNode, IfNode, Node, Pos, Span

RESERVED = frozenset({"parallel", "branch", "llm"})
#: Not keywords, but Python refuses to bind them: a step of that name could never be read.
UNASSIGNABLE = frozenset({"__debug__"})


class Blocks:
    """The parser's state, its errors, and the block headers and bodies it reads."""

    def __init__(self, text: str) -> None:
        self.lines = split_lines(text)
        self.text = "\n".join(self.lines)  # one kind of line break, as the tokenizer and the carets see it
        self.logical = logical_lines(self.text)
        self.i = 0
        self.loops = 0  # how many 'for' bodies the current line is in

    # -- errors ---------------------------------------------------------------
    def _syntax(self, msg: str, line: int, col: int, end_col: int | None = None) -> FlowSyntaxError:
        return FlowSyntaxError(msg, line=line, col=col, end_col=end_col, text=physical_line(self.lines, line))

    def _definition(self, msg: str, pos: Pos) -> FlowDefinitionError:
        return FlowDefinitionError(msg, line=pos.line, col=pos.col, end_col=pos.end_col, text=pos.text)

    def _tok_pos(self, tok: tokenize.TokenInfo) -> Pos:
        line, col = tok.start
        end_col = tok.end[1] if tok.end[0] == line else len(physical_line(self.lines, line))
        return Pos(line, col, end_col, physical_line(self.lines, line))

    # -- structure ------------------------------------------------------------

    def _block(self, depth: int) -> list[Node]:
        raise NotImplementedError  # the parser's

    def _if(self, ll: LogicalLine, depth: int) -> IfNode:
        """``if TEST:`` and the ``elif``/``else`` arms that follow it at the same depth."""
        node = IfNode(arms=[self._arm(ll, depth)], pos=self._tok_pos(ll.tokens[0]))
        while self.i < len(self.logical) and node.arms[-1].word != "else":
            nxt = self.logical[self.i]
            word = nxt.tokens[0]
            if nxt.depth != depth or word.type != tokenize.NAME or word.string not in ("elif", "else"):
                break
            self.i += 1
            check_nesting(nxt.tokens, self.lines)
            node.arms.append(self._arm(nxt, depth))
        return node

    def _for(self, ll: LogicalLine, depth: int) -> ForNode:
        """``for NAME in ITER:`` and its body."""
        toks = ll.tokens[1:-1]
        pos = self._tok_pos(ll.tokens[0])
        level = 0
        split = None
        for i, tok in enumerate(toks):
            if tok.type == tokenize.OP and tok.string in "([{":
                level += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                level -= 1
            elif level == 0 and tok.type == tokenize.NAME and tok.string == "in":
                split = i
                break
        if split is None or split + 1 == len(toks):
            tok = toks[min(1, len(toks) - 1)] if toks else ll.tokens[0]
            raise self._syntax("expected 'for NAME in ITERABLE:'", tok.start[0], tok.start[1], tok.end[1])
        if split != 1 or toks[0].type != tokenize.NAME:
            first = toks[0] if toks else ll.tokens[0]
            end = toks[max(split - 1, 0)].end[1]
            where = Pos(first.start[0], first.start[1], end, physical_line(self.lines, first.start[0]))
            why = "a loop's variable is one name: 'for NAME in ITERABLE:' (unpack it in the body)"
            raise self._definition(why, where)
        target = self._check_name(toks[0], "loop variable")
        span = Span(self.lines, toks[split + 1].start, toks[-1].end)
        tree = span.parse("eval")
        assert isinstance(tree, ast.Expression)
        if isinstance(tree.body, ast.NamedExpr):
            raise self._definition("a loop's iterable cannot assign a name: make it a step first", span.pos(tree.body))
        self.loops += 1
        try:
            body = self._body(ll, depth, "for")
        finally:
            self.loops -= 1
        return ForNode(
            target=target,
            iter=tree.body,
            source=span.segment(tree.body),
            span=span,
            body=body,
            pos=pos,
            target_pos=self._tok_pos(toks[0]),
        )

    def _arm(self, ll: LogicalLine, depth: int) -> Arm:
        word = ll.tokens[0].string
        self._expect_colon(ll, word)
        toks = ll.tokens[1:-1]
        pos = self._tok_pos(ll.tokens[0])
        test: ast.expr | None = None
        span: Span | None = None
        source = ""
        if word == "else":
            if toks:
                raise self._syntax("expected ':' after 'else'", toks[0].start[0], toks[0].start[1], toks[0].end[1])
        else:
            if not toks:
                raise self._syntax(f"expected a condition after '{word}'", pos.line, pos.end_col)
            span = Span(self.lines, toks[0].start, toks[-1].end)
            tree = span.parse("eval")
            assert isinstance(tree, ast.Expression)
            test, source = tree.body, span.segment(tree.body)
            if isinstance(test, ast.NamedExpr):
                raise self._definition("a condition cannot assign a name: make it a step first", span.pos(test))
        body = self._body(ll, depth, word)
        return Arm(word=word, test=test, source=source, span=span, body=body, pos=pos)

    def _body(self, header: LogicalLine, depth: int, word: str) -> list[Node]:
        nxt = self.logical[self.i] if self.i < len(self.logical) else None
        if nxt is None or nxt.depth <= depth:
            tok = header.tokens[-1]
            raise self._syntax(f"expected an indented block after '{word}'", tok.start[0], header.col, tok.end[1])
        if too_deep_block(depth + 1):
            first = header.tokens[0]
            raise self._syntax(
                f"too deeply nested: more than {MAX_BLOCK_DEPTH} 'parallel', 'branch', 'if' and 'for' blocks "
                "inside one another",
                first.start[0],
                first.start[1],
                first.end[1],
            )
        body = self._block(depth + 1)
        return body

    def _expect_colon(self, ll: LogicalLine, word: str) -> None:
        last = ll.tokens[-1]
        if not (last.type == tokenize.OP and last.string == ":"):
            raise self._syntax(f"expected ':' at the end of the '{word}' line", last.end[0], last.end[1])

    def _group_header(self, ll: LogicalLine) -> GroupNode:
        self._expect_colon(ll, "parallel")
        toks = ll.tokens[1:-1]
        name: str | None = None
        workers: int | None = None
        pos = self._tok_pos(ll.tokens[0])
        if toks and toks[0].type == tokenize.NAME:
            name = self._check_name(toks[0], "group")
            pos = self._tok_pos(toks[0])
            toks = toks[1:]
        if toks and toks[0].string == "(":
            workers = self._group_settings(toks)
            toks = []
        if toks:
            raise self._syntax(
                "expected 'parallel [NAME] [(workers=N)]:'", toks[0].start[0], toks[0].start[1], toks[0].end[1]
            )
        return GroupNode(name=name, workers=workers, body=[], pos=pos)

    def _group_settings(self, toks: list[tokenize.TokenInfo]) -> int | None:
        if toks[-1].string != ")":
            raise self._syntax("expected ')' before ':'", toks[-1].start[0], toks[-1].start[1])
        call = Span(self.lines, toks[0].start, toks[-1].end, prefix="_")
        tree = call.parse("eval")
        assert isinstance(tree, ast.Expression) and isinstance(tree.body, ast.Call)
        workers: int | None = None
        for arg in tree.body.args:
            raise self._definition("write the group setting by name: (workers=N)", call.pos(arg))
        for kw in tree.body.keywords:
            if kw.arg != "workers":
                hint = did_you_mean(kw.arg or "", ["workers"])
                raise self._definition(f"unknown group setting '{kw.arg}'.{hint}", call.pos(kw))
            try:
                value = _literal(kw.value)
            except ValueError:
                value = None
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise self._definition("workers must be a whole number of at least 1", call.pos(kw.value))
            workers = value
        return workers

    def _branch_header(self, ll: LogicalLine) -> BranchNode:
        self._expect_colon(ll, "branch")
        toks = ll.tokens[1:-1]
        if len(toks) != 1 or toks[0].type != tokenize.NAME:
            tok = toks[0] if toks else ll.tokens[-1]
            raise self._syntax("expected 'branch NAME:'", tok.start[0], tok.start[1], tok.end[1])
        name = self._check_name(toks[0], "branch")
        return BranchNode(name=name, body=[], pos=self._tok_pos(toks[0]))

    def _check_name(self, tok: tokenize.TokenInfo, what: str) -> str:
        if keyword.iskeyword(tok.string) or tok.string in RESERVED:
            raise self._definition(f"'{tok.string}' is a keyword and cannot name a {what}", self._tok_pos(tok))
        if tok.string in UNASSIGNABLE:
            raise self._definition(f"Python reserves '{tok.string}': it cannot name a {what}", self._tok_pos(tok))
        return tok.string


def _literal(node: ast.expr) -> Any:
    """The value of a literal; ``ValueError`` for anything else (``{[1]: 2}`` included)."""
    try:
        return ast.literal_eval(node)
    except (TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise ValueError(str(exc)) from None
