"""Parse a flow body into a syntax tree.

The body is Python expressions plus two block keywords, ``parallel`` and
``branch``, and Python's own ``if``/``elif``/``else`` and ``for`` (with ``break``).
Each logical line is classified by its first tokens; a block's header and body are
read by :mod:`.blocks`, and a step line is handed to Python's own ``ast`` parser, so
every Python expression works and positions come back exact. Nothing is evaluated here.
"""

from __future__ import annotations

import ast
import math
import tokenize
from typing import Any

from ..errors import did_you_mean
from .blocks import RESERVED, UNASSIGNABLE, Blocks, _literal
from .limits import check_nesting
from .lines import LogicalLine
from .syntax import BreakNode, Node, Option, Span, StepNode

#: Blocks a flow cannot have, and what to write instead.
_NOT_BLOCKS = {
    "while": "'while' loops are not part of a flow, as nothing bounds them: "
    "write 'for attempt in range(N):' and 'break' under an 'if'",
    "try": "'try' blocks are not part of a flow: a step that raises is recorded as failed "
    "(and what does not depend on it goes on); '@retries(N)' tries a step again",
    "async": "'async' blocks are not part of a flow: an async function called in a step is awaited for you",
}

#: Decorator options: name -> (argument names, validator, description).
OPTION_NAMES = ("retries", "timeout", "cache")


def parse(text: str) -> list[Node]:
    """Parse ``text`` into a list of top-level nodes, or raise a flow error."""
    return _Parser(text).parse()


class _Parser(Blocks):
    def parse(self) -> list[Node]:
        if self.logical and self.logical[0].depth != 0:
            ll = self.logical[0]
            raise self._syntax("unexpected indent", ll.line, ll.col)
        return self._block(0)

    def _block(self, depth: int) -> list[Node]:
        nodes: list[Node] = []
        pending: list[Option] = []
        while self.i < len(self.logical):
            ll = self.logical[self.i]
            if ll.depth < depth:
                break
            if ll.depth > depth:
                raise self._syntax("unexpected indent", ll.line, ll.col)
            self.i += 1
            # before anything hands this line to Python's parser, which recurses per level
            check_nesting(ll.tokens, self.lines)
            first = ll.tokens[0]
            if first.type == tokenize.OP and first.string == "@":
                pending.extend(self._options(ll))
                continue
            node = self._item(ll, depth)
            node.options = pending + node.options
            pending = []
            nodes.append(node)
        if pending:
            raise self._definition(
                f"@{pending[-1].name}(...) must be followed by a step, 'parallel', 'branch', 'if' or 'for'",
                pending[-1].pos,
            )
        return nodes

    def _is_header(self, ll: LogicalLine, word: str) -> bool:
        toks = ll.tokens
        return (
            toks[0].type == tokenize.NAME
            and toks[0].string == word
            and not (len(toks) > 1 and toks[1].type == tokenize.OP and toks[1].string in ("=", ".", "[", "+="))
            and not (len(toks) > 1 and toks[1].string == "(" and toks[-1].string != ":")
        )

    def _item(self, ll: LogicalLine, depth: int) -> Node:
        if self._is_header(ll, "parallel"):
            group = self._group_header(ll)
            group.body = self._body(ll, depth, "parallel")
            return group
        if self._is_header(ll, "branch"):
            branch = self._branch_header(ll)
            branch.body = self._body(ll, depth, "branch")
            return branch
        first = ll.tokens[0]
        if first.type == tokenize.NAME and first.string == "if":
            return self._if(ll, depth)
        if first.type == tokenize.NAME and first.string == "for" and ll.tokens[-1].string == ":":
            return self._for(ll, depth)
        if len(ll.tokens) == 1 and first.string in ("break", "continue") and self.loops:
            if first.string == "continue":
                raise self._definition(
                    "'continue' is not part of a flow: put the rest of the loop's body under an 'if'",
                    self._tok_pos(first),
                )
            return BreakNode(self._tok_pos(first))
        if first.type == tokenize.NAME and first.string in ("elif", "else"):
            word = first.string
            raise self._syntax(f"'{word}' without an 'if' before it", first.start[0], first.start[1], first.end[1])
        return self._step(ll)

    # -- steps ----------------------------------------------------------------
    def _step(self, ll: LogicalLine) -> StepNode:
        first, last = ll.tokens[0], ll.tokens[-1]
        if last.type == tokenize.OP and last.string == ":" and first.type == tokenize.NAME:
            word = first.string
            why = _NOT_BLOCKS.get(word)
            if why:
                raise self._syntax(why, first.start[0], first.start[1], first.end[1])
            raise self._syntax(
                f"'{word}' blocks are not part of a flow: write steps as 'name = expression', "
                "group them with 'parallel:' or 'branch NAME:', choose between them with 'if:' "
                "and repeat them with 'for NAME in ITERABLE:'",
                first.start[0],
                first.start[1],
                first.end[1],
            )
        stmt = Span(self.lines, first.start, last.end)
        tree = stmt.parse("exec")
        assert isinstance(tree, ast.Module)
        if len(tree.body) != 1:
            raise self._definition("one step per line: write 'name = expression'", stmt.pos(tree.body[1]))
        node = tree.body[0]
        if isinstance(node, ast.Expr):
            raise self._definition("a step needs a name: write 'name = expression'", stmt.pos(node))
        if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            raise self._definition("a step is written 'name = expression'", stmt.pos(node))
        if isinstance(node, (ast.Break, ast.Continue)):
            word = "break" if isinstance(node, ast.Break) else "continue"
            raise self._definition(f"'{word}' outside loop", stmt.pos(node))
        if isinstance(node, ast.Return):
            why = "a flow has no 'return': its results are the values of its last steps"
            raise self._definition(why, stmt.pos(node))
        if not isinstance(node, ast.Assign):
            raise self._definition(
                "only steps ('name = expression') and 'parallel:', 'branch NAME:', 'if' and 'for' blocks "
                "are allowed in a flow",
                stmt.pos(node),
            )
        if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
            raise self._definition("a step assigns exactly one name: 'name = expression'", stmt.pos(node.targets[0]))
        target = node.targets[0]
        assert isinstance(target, ast.Name)
        if target.id in RESERVED:
            raise self._definition(f"'{target.id}' is a keyword and cannot name a step", stmt.pos(target))
        if target.id in UNASSIGNABLE:
            raise self._definition(f"Python reserves '{target.id}': it cannot name a step", stmt.pos(target))
        source = stmt.segment(node.value)
        return StepNode(
            name=target.id,
            expr=node.value,
            source=source,
            pos=stmt.pos(target),
            span=stmt,
        )

    # -- options --------------------------------------------------------------
    def _options(self, ll: LogicalLine) -> list[Option]:
        pieces: list[list[tokenize.TokenInfo]] = []
        depth = 0
        for tok in ll.tokens:
            if tok.type == tokenize.OP and tok.string == "@" and depth == 0:
                pieces.append([])
                continue
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
            pieces[-1].append(tok)
        options = []
        for toks in pieces:
            if not toks:
                raise self._syntax("expected an option after '@', such as @retries(3)", ll.line, ll.col)
            stmt = Span(self.lines, toks[0].start, toks[-1].end)
            tree = stmt.parse("eval")
            assert isinstance(tree, ast.Expression)
            options.append(self._option(tree.body, stmt))
        return options

    def _option(self, node: ast.expr, stmt: Span) -> Option:
        pos = stmt.pos(node)
        if isinstance(node, ast.Name):
            if node.id == "cache":  # bare @cache: reuse this step's value (a call runs again otherwise)
                return Option(name="cache", args=(True,), kwargs=(), pos=pos)
            hint = did_you_mean(node.id, OPTION_NAMES)
            if node.id in OPTION_NAMES:
                raise self._definition(f"write @{node.id}(...) with its value, e.g. {_EXAMPLES[node.id]}", pos)
            raise self._definition(f"unknown option '@{node.id}'.{hint} Options: {_option_list()}", pos)
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            raise self._definition(f"an option is written like @retries(3). Options: {_option_list()}", pos)
        name = node.func.id
        if name not in OPTION_NAMES:
            hint = did_you_mean(name, OPTION_NAMES)
            raise self._definition(f"unknown option '@{name}'.{hint} Options: {_option_list()}", stmt.pos(node.func))
        args = []
        for arg in node.args:
            try:
                args.append(_literal(arg))
            except ValueError:
                raise self._definition(
                    f"@{name} takes a literal value, e.g. {_EXAMPLES[name]}", stmt.pos(arg)
                ) from None
        kwargs = []
        for kw in node.keywords:
            try:
                kwargs.append((kw.arg or "", _literal(kw.value)))
            except ValueError:
                raise self._definition(
                    f"@{name} takes literal values, e.g. {_EXAMPLES[name]}", stmt.pos(kw.value)
                ) from None
        option = Option(name=name, args=tuple(args), kwargs=tuple(kwargs), pos=pos)
        problem = check_option(option)
        if problem:
            raise self._definition(problem, pos)
        return option


_EXAMPLES = {"retries": "@retries(3)", "timeout": "@timeout(30)", "cache": "@cache"}


def _option_list() -> str:
    return ", ".join(_EXAMPLES.values())


def _seconds(value: Any) -> bool:
    """A number of seconds: ``1e999`` is a float literal too, but an endless wait (or backoff)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int literal of hundreds of digits
        return False


def check_option(option: Option) -> str | None:
    """Return what is wrong with an option's arguments, or None."""
    kwargs = dict(option.kwargs)
    if option.name == "retries":
        allowed = {"backoff"}
        extra = set(kwargs) - allowed
        if extra:
            return f"@retries takes a count and optionally backoff=SECONDS, not {sorted(extra)[0]!r}"
        if len(option.args) != 1:
            return "@retries takes one whole number: how many times to retry, e.g. @retries(3)"
        n = option.args[0]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            return "@retries takes a whole number of at least 0, e.g. @retries(3)"
        backoff = kwargs.get("backoff", 0.0)
        if not _seconds(backoff) or backoff < 0:
            return "backoff= takes a number of seconds of at least 0"
        return None
    if option.name == "timeout":
        if kwargs or len(option.args) != 1:
            return "@timeout takes one number of seconds, e.g. @timeout(30)"
        s = option.args[0]
        if not _seconds(s) or s <= 0:
            return "@timeout takes a number of seconds above 0, e.g. @timeout(30)"
        return None
    if option.name == "cache":
        if kwargs or len(option.args) != 1 or not isinstance(option.args[0], bool):
            return "@cache reuses the step's value, @cache(False) never does: it takes True or False"
        return None
    return f"unknown option '@{option.name}'"
