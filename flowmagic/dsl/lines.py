"""Split a flow body into logical lines, with Python's own rules.

``tokenize`` does the hard part: brackets and triple-quoted strings continue a
line, comments and blank lines vanish, and INDENT/DEDENT give the block depth.
Its errors are turned into ``FlowSyntaxError`` pointing at the culprit.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

from ..errors import FlowSyntaxError

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class LogicalLine:
    depth: int
    tokens: list[tokenize.TokenInfo]  # without NEWLINE/NL/COMMENT/INDENT/DEDENT

    @property
    def line(self) -> int:
        return self.tokens[0].start[0]

    @property
    def col(self) -> int:
        return self.tokens[0].start[1]

    @property
    def end_line(self) -> int:
        return self.tokens[-1].end[0]


def physical_line(lines: list[str], line: int) -> str:
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _error(msg: str, lines: list[str], line: int, col: int, end_col: int | None = None) -> FlowSyntaxError:
    return FlowSyntaxError(msg, line=line, col=col, end_col=end_col, text=physical_line(lines, line))


def split_lines(text: str) -> list[str]:
    """The physical lines as Python's tokenizer sees them: broken at \\n, \\r\\n and \\r only.

    ``str.splitlines`` also breaks at form feeds, \\x1c-\\x1e, \\x85 and \\u2028, which
    would put error carets on the wrong line.
    """
    parts = re.split(r"\r\n?|\n", text)
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def logical_lines(text: str) -> list[LogicalLine]:
    """Return the logical lines of ``text``; raise ``FlowSyntaxError`` on bad layout."""
    lines = split_lines(text)
    surrogate = _SURROGATE.search(text)
    if surrogate:  # Python's parser cannot even encode the text: say where, as for any bad character
        before = split_lines(text[: surrogate.end()])
        raise _error(f"invalid character {surrogate.group()!r}", lines, len(before), len(before[-1]) - 1)
    result: list[LogicalLine] = []
    depth = 0
    current: list[tokenize.TokenInfo] = []
    line_depth = 0
    open_brackets: list[tokenize.TokenInfo] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.INDENT:
                depth += 1
            elif tok.type == tokenize.DEDENT:
                depth -= 1
            elif tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER):
                continue
            elif tok.type == tokenize.NEWLINE:
                if current:
                    result.append(LogicalLine(line_depth, current))
                current = []
            elif tok.type == tokenize.ERRORTOKEN:
                if tok.string.isspace():
                    continue
                msg = "unterminated string" if tok.string in "'\"" else f"invalid character {tok.string!r}"
                raise _error(msg, lines, tok.start[0], tok.start[1])
            else:
                if not current:
                    line_depth = depth
                if tok.type == tokenize.OP:
                    if tok.string in _OPENERS:
                        open_brackets.append(tok)
                    elif tok.string in _CLOSERS:
                        if not open_brackets or open_brackets[-1].string != _CLOSERS[tok.string]:
                            raise _error(f"unmatched {tok.string!r}", lines, *tok.start)
                        open_brackets.pop()
                current.append(tok)
    except tokenize.TokenError as exc:
        message = str(exc.args[0]) if exc.args else "incomplete input"
        if open_brackets:
            tok = open_brackets[-1]
            raise _error(f"{tok.string!r} was never closed", lines, *tok.start) from None
        if "string" in message:
            line, col = exc.args[1] if len(exc.args) > 1 else (len(lines), 0)
            raise _error("unterminated triple-quoted string", lines, line, col) from None
        raise _error(message, lines, len(lines), 0) from None
    except IndentationError as exc:
        line = exc.lineno or 1
        raise _error(exc.msg, lines, line, 0, len(physical_line(lines, line))) from None
    except SyntaxError as exc:  # newer tokenizers raise SyntaxError for bad tokens
        line = exc.lineno or 1
        raise _error(exc.msg, lines, line, max(0, (exc.offset or 1) - 1)) from None
    if current:
        result.append(LogicalLine(line_depth, current))
    return result
