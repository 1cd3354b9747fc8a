"""Run history: the recent runs of each flow, numbered, and what changed between them.

Every run a :class:`~flowmagic.Flow` starts is added here under the flow's name,
so rerunning a cell (a new ``Flow`` object each time) continues the same
history. Only the last ``size`` runs of each flow are kept, with their outputs,
and runs are dropped oldest first, across flows, while the outputs of the kept
runs add up to more than ``max_bytes`` (an estimate, see :mod:`.sizes`). A run
is measured when the next one starts, so the budget is checked against runs
that are over. The latest run of each flow always stays: its ``Flow`` object
holds it as ``flow.last`` anyway.

With an :class:`~.archive.Archive` (the default one keeps runs beside an on-disk step
cache), each run is also written to disk once it is over, and the first time a flow
is named its runs on disk come back, so its numbering and "what changed" go on
across kernel restarts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from ..flow import present
from .archive import Archive, beside
from .cache import default_cache
from .record import Run
from .sizes import size_of

#: What the history keeps by default. It holds runs' outputs, which the step cache
#: mostly holds too (the same objects, counted by both); past runs matter less than
#: cached values, so they get the smaller share.
MEMORY = 256 * 2**20


@dataclass(frozen=True)
class Entry:
    """A run and its number in its flow's history (1 for the first run since the kernel started)."""

    number: int
    run: Run


class History:
    """The last ``size`` runs of each flow, by flow name, within ``max_bytes``; safe to use from any thread."""

    def __init__(self, size: int = 20, max_bytes: int = MEMORY, archive: Archive | None = None) -> None:
        self.size = size
        self.archive = archive
        self._restored: set[tuple[str, object]] = set()  # (flow, where) whose runs on disk were read
        self._max_bytes = max_bytes
        self._entries: dict[str, list[Entry]] = {}
        self._counts: dict[str, int] = {}
        self._order: list[tuple[str, Entry]] = []  # every kept entry, oldest first
        self._sizes: dict[int, int] = {}  # id(entry) -> size, once its run is over
        self._known = 0  # the sum of self._sizes: runs over, measured once each
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        """The estimated bytes of outputs kept across all flows; setting it drops old runs at once."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        with self._lock:
            self._max_bytes = value
            self._trim()

    @property
    def bytes(self) -> int:
        """The estimated bytes of the outputs of the runs kept."""
        with self._lock:
            return sum(self._size(entry) for _, entry in self._order)

    def add(self, name: str, run: Run) -> int:
        """Keep ``run`` as the latest of flow ``name``; return its number."""
        with self._lock:
            self._restore(name)
            number = self._counts[name] = self._counts.get(name, 0) + 1
            entry = Entry(number, run)
            self._entries.setdefault(name, []).append(entry)
            self._order.append((name, entry))
            for old in self._entries[name][: -self.size]:
                self._forget(name, old)
            self._trim()
            return number

    def entries(self, name: str) -> list[Entry]:
        with self._lock:
            self._restore(name)
            return list(self._entries.get(name, ()))

    def over(self, name: str, number: int, run: Run) -> None:
        """Run ``number`` of ``name`` is over: keep it on disk too, if there is an archive."""
        if self.archive is not None:
            self.archive.save(name, number, run)

    def _restore(self, name: str) -> None:
        """Under the lock: the first time ``name`` is met with an archive in place, the runs it
        keeps (only while this kernel has no run of that flow: their numbers go first)."""
        if self.archive is None or name in self._entries:
            return
        where = self.archive.place()
        if where is None or (name, where[0]) in self._restored:
            return
        self._restored.add((name, where[0]))
        for number, run in self.archive.load(name)[-self.size :]:
            entry = Entry(number, run)
            self._entries.setdefault(name, []).append(entry)
            self._order.append((name, entry))
            self._counts[name] = number

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
        """Forget every run in memory (and so let go of their outputs) and restart the numbering
        (runs on disk stay, but are not read again: delete ``cache_dir/history`` to drop them)."""
        with self._lock:
            self._entries.clear()
            self._counts.clear()
            self._order.clear()
            self._sizes.clear()
            self._known = 0

    def _trim(self) -> None:
        """Drop the oldest runs, the latest of each flow excepted, while the rest is over budget."""
        # a run is measured once, the first time it is seen over, and kept in a running total; runs
        # still going on count from then (a run just added has no outputs yet)
        total = self._known
        for _, entry in self._order:
            if id(entry) not in self._sizes and getattr(entry.run, "status", "running") != "running":
                total += self._size(entry)
        for name, entry in list(self._order):
            if total <= self._max_bytes:
                break
            if self._entries[name][-1] is not entry:
                total -= self._sizes.get(id(entry), 0)  # what it counted for
                self._forget(name, entry)

    def _size(self, entry: Entry) -> int:
        known = self._sizes.get(id(entry))
        if known is not None:
            return known
        outputs = getattr(entry.run, "outputs", None)
        size = size_of(outputs) if outputs is not None else 0
        if getattr(entry.run, "status", "running") != "running":  # over: its outputs are final
            self._sizes[id(entry)] = size
            self._known += size
        return size

    def _forget(self, name: str, entry: Entry) -> None:
        # by identity: comparing entries would compare whole runs, outputs and all
        self._entries[name] = [e for e in self._entries[name] if e is not entry]
        self._order = [(n, e) for n, e in self._order if e is not entry]
        self._known -= self._sizes.pop(id(entry), 0)


#: Where every run is recorded; kept on disk beside the step cache when it has a directory.
default_history = History(archive=Archive(beside(default_cache)))


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
            "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1] for row in table
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def _repr_html_(self) -> str:
        return str(present.draw("history", self))

    def __repr__(self) -> str:
        return self.text()
