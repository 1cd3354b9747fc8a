"""How deep a flow may nest, checked from its tokens before Python's parser sees them.

Python's parser, its compiler and this package's own tree walks recurse once per
level of nesting, and the parser memoizes per token: ``-`` * 3000, ``not `` *
30000, ``f(1)`` * 1000 or ``lambda: `` * 5000 end in RecursionError or
MemoryError, and blocks nested hundreds deep in a RecursionError of the flow
parser. No real flow comes near these limits, so text past them is refused with
a ``FlowSyntaxError`` at the token where the limit was passed, in one pass over
the tokens (no recursion, constant work per token).

The expression depth counted here is an upper bound of the syntax tree's depth:
each bracket, operator, ``.``, ``not``, ``lambda`` or conditional expression
counts one level, and only what starts a sibling (a comma, ``and``/``or``, a
comparison, ``:``, ``=``) ends an operator chain. Brackets and the operators
around them both count, so a parenthesised chain counts up to twice its depth:
the limit leaves room for that.
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import FlowSyntaxError

#: ``parallel:`` and ``branch NAME:`` blocks inside one another (Python allows 100 indents).
MAX_BLOCK_DEPTH = 50
#: Levels of one expression (Python itself stops at 200 brackets and about 1,000 levels otherwise).
MAX_EXPRESSION_DEPTH = 100
#: Before Python 3.12 the parser looks for each replacement field of an f-string from the
#: start of the string: fields times length characters. This many take about a fifth of a second.
MAX_FSTRING_SCAN = 1_000_000_000

TOO_DEEP = (
    f"too deeply nested: more than {MAX_EXPRESSION_DEPTH} levels of brackets, operators or lambdas "
    "in one line; give parts of it their own steps"
)
TOO_MANY_FIELDS = "too many replacement fields for the length of this f-string: split it into several"

_CHAIN_OPS = frozenset({"+", "-", "*", "/", "//", "%", "@", "**", "<<", ">>", "&", "|", "^", "~", "."})
_CHAIN_WORDS = frozenset({"not", "await"})
_SIBLING_WORDS = frozenset({"and", "or", "in", "is", "else"})
_OPENERS = frozenset("([{")
_CLOSERS = frozenset(")]}")
_AFTER_VALUE = frozenset(")]}")  # a bracket after these is a call or subscript: a Call inside a Call
# in the text of an f-string (Python 3.10, 3.11: one STRING token): braces, and inside a field quotes and brackets
_FSTRING_BRACE = re.compile(r"\{\{|\}\}|[{}]")
_FIELD_PART = re.compile(r"'''|\"\"\"|['\"(){}\[\]]")
_NESTING = re.compile(r"[-+~*/%@&|^<>.(\[{]|\b(?:not|lambda|if|await)\b")


def too_deep_block(depth: int) -> bool:
    """Whether a block at ``depth`` (0 for the top level) nests past the limit."""
    return depth > MAX_BLOCK_DEPTH


def check_nesting(tokens: Iterable[tokenize.TokenInfo], lines: list[str]) -> None:
    """Raise ``FlowSyntaxError`` at the first token of one logical line that passes a limit."""
    found = _too_deep(tokens, 0)
    if found is not None:
        culprit, message = found
        line, col = culprit.start
        end = culprit.end[1] if culprit.end[0] == line else None
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        raise FlowSyntaxError(message, line=line, col=col, end_col=end, text=text)


@dataclass
class _Level:
    """What one bracket level has counted so far."""

    base: int  # the depth at which this level's expression starts
    outer: int = 0  # lambdas and conditionals: everything to their right, up to a comma, is inside them
    chain: int = 0  # operators, attributes and calls since the last sibling separator
    lambdas: int = 0  # lambdas whose ':' has not come yet (their commas separate parameters)
    trailer: bool = False  # the bracket that opened this level is a call or subscript

    @property
    def depth(self) -> int:
        return self.base + self.outer + self.chain


def _too_deep(tokens: Iterable[tokenize.TokenInfo], base: int) -> tuple[tokenize.TokenInfo, str] | None:
    """The first token at which the nesting passes a limit, and which limit; or None."""
    stack: list[_Level] = []
    level = _Level(base)
    previous: tokenize.TokenInfo | None = None
    for tok in tokens:
        kind, text = tok.type, tok.string
        if kind == tokenize.OP and text in _OPENERS:
            stack.append(level)
            level = _Level(level.depth + 1, trailer=_is_value(previous))
        elif kind == tokenize.OP and text in _CLOSERS:
            if stack:
                inner, level = level, stack.pop()
                level.chain += inner.trailer  # f(1)(1): each call holds the previous one
        elif kind == tokenize.OP and text in _CHAIN_OPS:
            level.chain += 1
        elif kind == tokenize.OP and text == ",":
            level.chain = 0
            if not level.lambdas:
                level.outer = 0
        elif kind == tokenize.OP and text == ":":
            level.chain = 0
            level.lambdas = max(0, level.lambdas - 1)
        elif kind == tokenize.OP:  # '=', comparisons, '->', ';': what follows is a sibling
            level.chain = 0
        elif kind == tokenize.NAME and text in _CHAIN_WORDS:
            level.chain += 1
        elif kind == tokenize.NAME and text in ("lambda", "if"):
            level.outer += 1
            level.chain = 0
            level.lambdas += text == "lambda"
        elif kind == tokenize.NAME and text in _SIBLING_WORDS:
            level.chain = 0
        elif kind == tokenize.NAME and text == "for":
            level.chain = 0
            if not level.lambdas:
                level.outer = 0
        elif kind == tokenize.STRING and _is_fstring(text):
            problem = _fstring_problem(text, level.depth + 1)
            if problem:
                return tok, problem
        if level.depth > MAX_EXPRESSION_DEPTH:
            return tok, TOO_DEEP
        previous = tok
    return None


def _is_value(tok: tokenize.TokenInfo | None) -> bool:
    """Whether a bracket after ``tok`` calls or subscripts it (rather than starting a display)."""
    if tok is None:
        return False
    if tok.type == tokenize.NAME:
        return not keyword.iskeyword(tok.string)
    return tok.type in (tokenize.STRING, tokenize.NUMBER) or tok.string in _AFTER_VALUE


def _quote_at(text: str) -> int:
    """Where the quotes of a STRING token start (after its prefix), or -1."""
    return min((i for i in (text.find("'"), text.find('"')) if i >= 0), default=-1)


def _is_fstring(text: str) -> bool:
    return "f" in text[: max(0, _quote_at(text))].lower()


def _fstring_problem(text: str, base: int) -> str | None:
    """Which limit an f-string token passes, if any.

    Before Python 3.12 an f-string is one STRING token, and Python parses its
    fields later, recursively like any expression: their tokens count too. It
    also looks for each field's text from the start of the string, so the number
    of fields times the length is bounded as well.
    """
    start = _quote_at(text)
    quote = 3 if text[start : start + 3] in ("'''", '"""') else 1
    body = text[start + quote : len(text) - quote]
    for count, field in enumerate(_fields(body), start=1):
        if count * len(text) > MAX_FSTRING_SCAN:
            return TOO_MANY_FIELDS
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO("(" + field + ")").readline))
        except (tokenize.TokenError, SyntaxError):
            # Python refuses this field anyway; until it does, bound its depth by what can nest
            if base + len(_NESTING.findall(field)) > MAX_EXPRESSION_DEPTH:
                return TOO_DEEP
            continue
        inner = _too_deep(tokens, base)
        if inner is not None:
            return inner[1]
    return None


def _fields(body: str) -> Iterable[str]:
    """The text of each replacement field of an f-string's body (conversion and spec included)."""
    pos = 0
    while True:
        brace = _FSTRING_BRACE.search(body, pos)
        if brace is None:
            return
        pos = brace.end()
        if brace.group() != "{":
            continue
        start, depth = pos, 1
        while depth:
            part = _FIELD_PART.search(body, pos)
            if part is None:
                yield body[start:]
                return
            found = part.group()
            pos = part.end()
            if found in "([{":
                depth += 1
            elif found in ")]}":
                depth -= 1
            else:  # a string inside the field: its braces and brackets are text
                close = body.find(found, pos)
                pos = len(body) if close < 0 else close + len(found)
        yield body[start : pos - 1]
