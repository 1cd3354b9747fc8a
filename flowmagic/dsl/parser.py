"""Parse a flow body into a syntax tree.

The body is Python expressions plus two block keywords, ``parallel`` and
``branch``, and Python's own ``if``/``elif``/``else`` and ``for`` (with ``break``). Each logical line is
classified by its first tokens; a step line is
handed to Python's own ``ast`` parser, so every Python expression works and
positions come back exact. Nothing is evaluated here.
"""

from __future__ import annotations

import ast
import keyword
import math
import tokenize
from typing import Any

from ..errors import FlowDefinitionError, FlowSyntaxError, did_you_mean
from .limits import MAX_BLOCK_DEPTH, check_nesting, too_deep_block
from .lines import LogicalLine, logical_lines, physical_line, split_lines
from .syntax import Arm, BranchNode, BreakNode, ForNode, GroupNode, IfNode, Node, Option, Pos, Span, StepNode

RESERVED = frozenset({"parallel", "branch", "llm"})
#: Not keywords, but Python refuses to bind them: a step of that name could never be read.
UNASSIGNABLE = frozenset({"__debug__"})

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


class _Parser:
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


def _literal(node: ast.expr) -> Any:
    """The value of a literal; ``ValueError`` for anything else (``{[1]: 2}`` included)."""
    try:
        return ast.literal_eval(node)
    except (TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise ValueError(str(exc)) from None


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
