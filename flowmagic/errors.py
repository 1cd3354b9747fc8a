"""Every error a user can meet, one tree under :class:`FlowError`, each carrying its fields.

Mistakes in a flow's text point at the line and column at fault and render as a short
message with the offending line and a caret, which IPython shows without a traceback:
``FlowSyntaxError`` is a ``SyntaxError`` (IPython prints those as source and caret),
``FlowDefinitionError`` implements IPython's ``_render_traceback_`` hook. Errors of a
run name their step (``err.step``), so the magic and the CLI never parse message text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

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
    """Base class of every error flowmagic raises about a flow, its definition or its run."""


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

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback: the same form as a definition error's
        where = f'File "{self.filename}", line {self.line}, column {self.col + 1}'
        end = (self.end_offset or 0) - 1 if self.end_lineno == self.lineno else None
        return [f"{type(self).__name__}: {self.msg}", f"  {where}", caret_lines(self.text or "", self.col, end)]


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


class StepError(FlowError):
    """Something went wrong running step ``step`` that is not the step's own exception."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class StepTimeout(StepError, TimeoutError):
    """Step ``step`` ran past its ``@timeout`` of ``seconds``."""

    def __init__(self, step: str, seconds: float, abandoned_thread: bool = False) -> None:
        thread = " (its thread was left to finish: threads cannot be stopped)" if abandoned_thread else ""
        super().__init__(f"'{step}' timed out after {seconds:g} s{thread}", step=step)
        self.seconds = seconds


class MapError(StepError, RuntimeError):
    """Some elements of map ``step`` failed; ``results`` holds every element's value or error,
    ``failures`` the errors by index."""

    def __init__(self, name: str, results: list[Any], failures: dict[int, BaseException]) -> None:
        first_index, first = next(iter(failures.items()))
        super().__init__(
            f"{len(failures)} of {len(results)} elements of '{name}' failed; "
            f"first: {name}[{first_index}]: {type(first).__name__}: {first}",
            step=name,
        )
        self.results = results
        self.failures = failures


class NotSendableError(StepError, TypeError):
    """A step's code or a value it reads cannot be pickled, so it cannot run on the cluster."""


class FlowInterrupted(KeyboardInterrupt):
    """A run was interrupted; ``run`` is its record, cancelled, with finished steps kept.

    A ``KeyboardInterrupt`` (not a :class:`FlowError`), so ``except Exception`` never swallows it.
    """

    def __init__(self, run: Any) -> None:
        super().__init__(f"flow '{run.flow}' was interrupted")
        self.run = run

    def _render_traceback_(self) -> list[str]:
        # IPython prints this instead of a traceback
        done = sum(1 for r in self.run.steps.values() if r.status == "succeeded" and r.map is None)
        kept = f"{done} finished step{'' if done == 1 else 's'} kept in {self.run.flow}.last"
        return [f"KeyboardInterrupt: flow '{self.run.flow}' {self.run.status}; {kept}"]


class FlowFailed(FlowError):
    """A ``%%flow`` cell's run failed or was cancelled: raised after its view is drawn and
    ``NAME.last`` is set, so "Run All", nbclient and papermill stop at the cell as at any failing
    one. ``run`` is the record; IPython shows the short message, never a traceback."""

    def __init__(self, run: Any, name: str) -> None:
        self.run = run
        top = [r for r in run.steps.values() if r.map is None]
        failed = [r for r in top if r.status == "failed"]
        counts = {s: sum(1 for r in top if r.status == s) for s in ("failed", "skipped", "cancelled")}
        told = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        done = sum(1 for r in top if r.status == "succeeded")
        kept = f"{done} finished step{'' if done == 1 else 's'} kept in {name}.last" if done else f"see {name}.last"
        why = f" ({run.reason})" if getattr(run, "reason", None) else ""
        self.lines = [f"flow '{run.flow}' {run.status}{why}: {told}; {kept}"]
        for record in failed[:5]:
            self.lines.append(f"  {_step_error(record)}"[:200])
        if len(failed) > 5:
            self.lines.append(f"  ... and {len(failed) - 5} more")
        super().__init__(self.lines[0])

    def _render_traceback_(self) -> list[str]:
        return [f"FlowFailed: {self.lines[0]}", *self.lines[1:]]


def _step_error(record: Any) -> str:
    """A failed step in one line: ``b: RuntimeError: no answer for 42``."""
    error = record.error
    text = f"{type(error).__name__}: {error}" if error is not None else "failed"
    return f"{record.name}: {text.splitlines()[0]}"


class VariantsFailed(FlowFailed):
    """A ``--grid`` cell some of whose variants failed or were cancelled: raised after the table
    is shown and ``NAME.variants`` is set. ``run`` is the first such variant's run."""

    def __init__(self, name: str, failed: list[tuple[str, Any]], total: int) -> None:
        self.run = failed[0][1]
        self.lines = [f"flow '{name}': {len(failed)} of {total} variants did not succeed; see {name}.variants"]
        for label, run in failed[:5]:
            bad = [r for r in run.steps.values() if r.status == "failed" and r.map is None]
            why = f": {_step_error(bad[0])}" if bad else ""
            self.lines.append(f"  {label}: {run.status}{why}"[:200])
        if len(failed) > 5:
            self.lines.append(f"  ... and {len(failed) - 5} more")
        FlowError.__init__(self, self.lines[0])


class UnknownStepError(LookupError, FlowError):
    """A step name that is not in the flow, with the closest one suggested."""

    def __init__(self, name: str, flow: str, steps: Iterable[str]) -> None:
        super().__init__(f"flow '{flow}' has no step '{name}'.{did_you_mean(name, steps)}")

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0])

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]
