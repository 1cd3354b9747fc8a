"""Errors a user can make in a flow, each pointing at the line and column at fault.

Both kinds render as a short message with the offending line and a caret, and
IPython shows them without a traceback: ``FlowSyntaxError`` is a ``SyntaxError``
(IPython prints those as source and caret), ``FlowDefinitionError`` implements
IPython's ``_render_traceback_`` hook.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

FLOW_FILENAME = "<flow>"


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest candidate, or ``""``."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" Did you mean '{matches[0]}'?" if matches else ""


def caret_lines(text: str, col: int, end_col: int | None = None) -> str:
    """The source line indented, and a caret line under columns [col, end_col) (0-based)."""
    line = text.rstrip("\n")
    stripped = line.lstrip()
    indent = len(line) - len(stripped)
    width = max(1, (end_col if end_col and end_col > col else col + 1) - col)
    width = min(width, max(1, len(line) - col))
    return f"    {stripped}\n    {' ' * max(0, col - indent)}{'^' * width}"


class FlowError(Exception):
    """Base class of every error flowmagic raises about a flow's definition."""


class FlowSyntaxError(SyntaxError, FlowError):
    """The flow's text is not valid DSL.

    ``lineno`` and ``offset`` are 1-based, as for any ``SyntaxError``.
    """

    def __init__(
        self,
        msg: str,
        *,
        line: int,
        col: int,
        text: str,
        end_col: int | None = None,
        filename: str = FLOW_FILENAME,
    ) -> None:
        end_offset = (end_col + 1) if end_col is not None and end_col > col else col + 2
        super().__init__(msg, (filename, line, col + 1, text, line, end_offset))

    @property
    def line(self) -> int:
        return self.lineno or 0

    @property
    def col(self) -> int:
        """0-based column."""
        return (self.offset or 1) - 1


class FlowDefinitionError(ValueError, FlowError):
    """The flow parses but cannot be run as written (unknown name, cycle, bad option...).

    ``line`` is 1-based, ``col`` 0-based; ``str(err)`` includes the line and a caret.
    """

    def __init__(
        self,
        msg: str,
        *,
        line: int,
        col: int,
        text: str,
        end_col: int | None = None,
        filename: str = FLOW_FILENAME,
    ) -> None:
        self.msg = msg
        self.line = line
        self.col = col
        self.end_col = end_col
        self.text = text
        self.filename = filename
        super().__init__(self._format())

    def _format(self) -> str:
        where = f'File "{self.filename}", line {self.line}, column {self.col + 1}'
        return f"{self.msg}\n  {where}\n{caret_lines(self.text, self.col, self.end_col)}"

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback.
        return [f"{type(self).__name__}: {self}"]


class FlowRuntimeError(RuntimeError, FlowError):
    """Running a flow went wrong for a reason that is not a step's own error."""


class UnknownStepError(LookupError, FlowError):
    """A step name that is not in the flow, with the closest one suggested."""

    def __init__(self, name: str, flow: str, steps: Iterable[str]) -> None:
        super().__init__(f"flow '{flow}' has no step '{name}'.{did_you_mean(name, steps)}")

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0])

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]
