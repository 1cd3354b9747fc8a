"""Per-step differences between the outputs of two runs (``%flow diff``).

Two outputs are the same when their fingerprints match (or, for values without
one, when they compare equal), so a diff lists exactly the steps whose values
changed, plus steps added, removed, or that succeeded in one run only.
"""

from __future__ import annotations

import difflib
import pprint
from dataclasses import dataclass, field
from typing import Any

from ..flow import present
from .fingerprint import Unfingerprintable, fingerprint
from .record import Run

TEXT_LIMIT = 5000  # characters of a value's text compared and shown


@dataclass(frozen=True)
class StepChange:
    """One step whose output differs: ``before`` and ``after`` are texts of the values (or statuses)."""

    step: str
    kind: str  # "changed", "added", "removed" or "status"
    before: str
    after: str


@dataclass
class RunDiff:
    """What changed between two runs' outputs; ``changes`` lists only steps that differ."""

    before: str  # labels, e.g. "#3"
    after: str
    changes: list[StepChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[str]:
        return [c.step for c in self.changes]

    def text(self) -> str:
        if not self.changes:
            return f"run {self.before} and run {self.after}: every output is the same"
        lines: list[str] = []
        for change in self.changes:
            lines += difflib.unified_diff(
                change.before.splitlines(),
                change.after.splitlines(),
                fromfile=f"{change.step} ({self.before})",
                tofile=f"{change.step} ({self.after})",
                lineterm="",
            )
        if self.unchanged:
            lines.append(f"unchanged: {', '.join(self.unchanged)}")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def _repr_html_(self) -> str:
        return str(present.draw("diff", self))

    def __repr__(self) -> str:
        return f"<RunDiff {self.before} -> {self.after}: {len(self.changes)} changed>"


def diff_runs(before: Run, after: Run, labels: tuple[str, str] = ("before", "after")) -> RunDiff:
    """The steps whose outputs differ between ``before`` and ``after``, in ``after``'s order."""
    result = RunDiff(*labels)
    old = {r.name: r for r in before.top_steps}
    new = {r.name: r for r in after.top_steps}
    for name in [*new, *(n for n in old if n not in new)]:
        if name not in old:
            result.changes.append(StepChange(name, "added", "", value_text(after, name)))
        elif name not in new:
            result.changes.append(StepChange(name, "removed", value_text(before, name), ""))
        elif (name in before.outputs) != (name in after.outputs):
            result.changes.append(StepChange(name, "status", value_text(before, name), value_text(after, name)))
        elif name in after.outputs and not _same(before.outputs[name], after.outputs[name]):
            result.changes.append(StepChange(name, "changed", value_text(before, name), value_text(after, name)))
        else:
            result.unchanged.append(name)
    return result


def value_text(run: Run, name: str) -> str:
    """A step's output as text, or its status (and error) when it has none."""
    if name in run.outputs:
        return text_of(run.outputs[name])
    record = run.steps[name]
    why = f": {type(record.error).__name__}: {record.error}" if record.error is not None else ""
    return f"<{record.status}{why}>"


def text_of(value: Any) -> str:
    """A value as text to compare line by line: strings as they are, others pretty-printed."""
    try:
        text = value if isinstance(value, str) else pprint.pformat(value, width=88, sort_dicts=False)
    except Exception as exc:  # a broken __repr__
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + f"\n… ({len(text) - TEXT_LIMIT} more characters)"


def _same(a: Any, b: Any) -> bool:
    try:
        return fingerprint(a) == fingerprint(b)
    except Unfingerprintable:
        pass
    try:
        return bool(a == b)
    except Exception:
        return text_of(a) == text_of(b)
