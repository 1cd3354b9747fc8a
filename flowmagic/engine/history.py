"""Run history: the recent runs of each flow, numbered, and what changed between them.

Every run a :class:`~flowmagic.Flow` starts is added here under the flow's name,
so rerunning a cell (a new ``Flow`` object each time) continues the same
history. Only the last ``size`` runs of each flow are kept, with their outputs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from .record import Run


@dataclass(frozen=True)
class Entry:
    """A run and its number in its flow's history (1 for the first run since the kernel started)."""

    number: int
    run: Run


class History:
    """The last ``size`` runs of each flow, by flow name; safe to use from any thread."""

    def __init__(self, size: int = 20) -> None:
        self.size = size
        self._entries: dict[str, list[Entry]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str, run: Run) -> int:
        """Keep ``run`` as the latest of flow ``name``; return its number."""
        with self._lock:
            number = self._counts[name] = self._counts.get(name, 0) + 1
            entries = self._entries.setdefault(name, [])
            entries.append(Entry(number, run))
            del entries[: -self.size]
            return number

    def entries(self, name: str) -> list[Entry]:
        with self._lock:
            return list(self._entries.get(name, ()))

    def get(self, name: str, number: int) -> Run:
        """Run ``number`` of flow ``name``; a negative number counts back from the latest (-1)."""
        entries = self.entries(name)
        if not entries:
            raise LookupError(f"flow '{name}' has not run yet")
        if number < 0 and -number <= len(entries):
            return entries[number].run
        for entry in entries:
            if entry.number == number:
                return entry.run
        kept = f"#{entries[0].number} to #{entries[-1].number}"
        raise LookupError(f"flow '{name}' has no run #{number}; the history keeps runs {kept}")

    def names(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counts.clear()


#: Where every run is recorded.
default_history = History()


def changes(before: Run, after: Run) -> list[str]:
    """What differs in how ``after`` was asked for, compared with ``before``: steps edited,
    added or removed, inputs changed, another model or settings."""
    notes: list[str] = []
    old, new = before.sources, after.sources
    edited = [n for n in new if n in old and old[n] != new[n]]
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    inputs: list[str] = []
    if before.inputs and after.inputs:  # fingerprints exist only where the cache was on
        inputs = sorted(n for n in {*before.inputs, *after.inputs} if before.inputs.get(n) != after.inputs.get(n))
    for label, names in (("edited", edited), ("added", added), ("removed", removed), ("input changed", inputs)):
        if names:
            notes.append(f"{label}: {', '.join(names)}")
    if before.model != after.model:
        notes.append(f"model {before.model} -> {after.model}")
    for key in sorted({*before.settings, *after.settings}):
        was, now = before.settings.get(key, "default"), after.settings.get(key, "default")
        if was != now:
            notes.append(f"{key} {was} -> {now}")
    return notes


@dataclass(frozen=True)
class Row:
    number: int
    when: str  # HH:MM:SS local time
    status: str
    wall: str
    ran: int
    cached: int
    tokens: str
    changes: str


class HistoryTable:
    """The runs of one flow as a table: text in a terminal, HTML in a notebook."""

    def __init__(self, name: str, entries: list[Entry]) -> None:
        self.name = name
        self.rows: list[Row] = []
        previous: Run | None = None
        for entry in entries:
            run = entry.run
            top = run.top_steps
            cached = sum(r.cached for r in top)
            prompt, completion = run.tokens
            self.rows.append(
                Row(
                    number=entry.number,
                    when=time.strftime("%H:%M:%S", time.localtime(run.started)) if run.started else "-",
                    status=run.status,
                    wall=f"{run.wall_time:.2f}s" if run.wall_time is not None else "-",
                    ran=sum(r.status != "pending" and not r.cached for r in top),
                    cached=cached,
                    tokens=f"{prompt:,} in, {completion:,} out" if prompt or completion else "-",
                    changes="; ".join(changes(previous, run)) if previous is not None else "first run",
                )
            )
            previous = run

    HEADER = ("#", "when", "status", "wall", "ran", "cached", "tokens", "what changed")

    def cells(self) -> list[tuple[str, ...]]:
        return [
            (f"#{r.number}", r.when, r.status, r.wall, str(r.ran), str(r.cached), r.tokens, r.changes or "nothing")
            for r in self.rows
        ]

    def text(self) -> str:
        if not self.rows:
            return f"flow '{self.name}' has not run yet"
        table = [self.HEADER, *self.cells()]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.HEADER) - 1)]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
            for row in table
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def _repr_html_(self) -> str:
        from ..view.compare import history_html

        return history_html(self)

    def __repr__(self) -> str:
        return self.text()
