"""The ``Run`` record: what happened in one run, built by an observer of its events."""

from __future__ import annotations

import json
import os
import traceback
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..flow import present
from . import events as ev
from .vocabulary import RunStatus, Status

if TYPE_CHECKING:
    from ..flow.shape import Shape


#: What a step's cache key was made of: its definition and inputs, then each value it read by name
#: with that value's fingerprint.
KeyParts = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]


@dataclass(slots=True)
class StepRecord:
    """One step of one run. ``started``/``finished`` are ``time.time()`` floats."""

    name: str
    kind: str = "call"
    status: Status = Status.PENDING
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    cached: bool = False  # the value came from the step cache; nothing ran
    cache_note: str | None = None  # why the value was not reused or not stored, when it was not
    # what its cache key was made of (its definition and inputs, then each value it read and its
    # fingerprint): a rerun compares it to say what changed
    key_parts: KeyParts | None = field(default=None, repr=False)
    group: str | None = None
    branch: str | None = None
    map: str | None = None  # for a map element: the map step it belongs to
    elements: int | None = None  # for a map: how many elements it expanded to
    deps: tuple[str, ...] = ()
    error: BaseException | None = None
    reason: str | None = None  # why it was skipped or cancelled
    llm: dict[str, Any] | None = None  # prompt, system, model, answer (so far), offline, tokens, cost
    waited: float | None = None  # seconds on a cluster before a worker began it (not in its duration)
    stdout: str | None = None  # what the step printed (see :mod:`.capture`)
    stderr: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    @property
    def first_token(self) -> float | None:
        """Seconds its ``llm`` call waited for the first text of a streamed answer (a server's queue
        and its reading of the prompt), None when it did not stream or came from the cache."""
        wait = self.llm.get("first_text") if self.llm and not self.cached else None
        return float(wait) if isinstance(wait, (int, float)) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "started": self.started,
            "finished": self.finished,
            "duration": self.duration,
            "attempts": self.attempts,
            "cached": self.cached,
            "cache_note": self.cache_note,
            "group": self.group,
            "branch": self.branch,
            "map": self.map,
            "elements": self.elements,
            "deps": list(self.deps),
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            "reason": self.reason,
            "llm": self.llm,
            "waited": self.waited,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }


class StepFailed(Exception):
    """Raised by ``run[name]`` for a step that did not succeed."""


@dataclass
class Run:
    """The record of one run of a flow.

    >>> from flowmagic import Flow
    >>> run = Flow.from_source("a = 1 + 1\\nb = a * 10").run()
    >>> run["b"], run.status
    (20, 'succeeded')
    """

    flow: str
    steps: dict[str, StepRecord]
    outputs: dict[str, Any] = field(default_factory=dict)
    status: RunStatus = RunStatus.RUNNING  # then succeeded, failed or cancelled
    started: float | None = None
    finished: float | None = None
    model: str | None = None
    reason: str | None = None  # why a run was cancelled
    inputs: dict[str, str] = field(default_factory=dict)  # fingerprints of the inputs it read
    sources: dict[str, str] = field(default_factory=dict, repr=False)  # each step's definition
    settings: dict[str, Any] = field(default_factory=dict)  # run settings that are not the defaults
    shape: Shape | None = field(default=None, repr=False, compare=False)  # what Run.show() draws
    abandoned_threads: int = 0  # threads still in steps a timeout or a cancel let go, when it ended
    pool_waits: int = 0  # steps that waited for a worker thread because the pool was at its cap
    _timing: tuple[Any, tuple[list[StepRecord], float, dict[str, float]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    #: events recorded so far: a view polls it to know whether anything changed (no observer needed)
    changes: int = field(default=0, init=False, repr=False, compare=False)

    def __getitem__(self, name: str) -> Any:
        if name in self.outputs:
            return self.outputs[name]
        record = self.steps.get(name)
        if record is None:
            raise KeyError(f"no step '{name}' in flow '{self.flow}'")
        if record.status is Status.FAILED and record.error is not None:
            __tracebackhide__ = True  # IPython shows the step's own frames, not this one
            raise record.error.with_traceback(user_frames(record.error.__traceback__))
        why = f": {record.reason}" if record.reason else ""
        raise StepFailed(f"step '{name}' has no value: it is {record.status}{why}")

    def __contains__(self, name: object) -> bool:
        return name in self.outputs

    @property
    def wall_time(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def _timings(self) -> tuple[list[StepRecord], float, dict[str, float]]:
        """The timed steps (leaf work only: a map's own record spans its elements and would count
        twice), their summed time and the queued time of each (see :meth:`queued`). A finished
        run's are worked out once: its summary, title and timeline ask for them a dozen times."""
        stamp = (self.finished, len(self.steps))
        if self._timing is not None and self._timing[0] == stamp:
            return self._timing[1]
        with_elements = {r.map for r in self.steps.values() if r.map}
        timed = [r for r in self.steps.values() if r.duration is not None and r.name not in with_elements]
        firsts = [(r, r.first_token) for r in timed if r.first_token is not None]
        quickest: dict[Any, float] = {}
        for record, wait in firsts:
            model = (record.llm or {}).get("model")
            quickest[model] = min(quickest.get(model, wait), wait)
        late = {r.name: wait - quickest[(r.llm or {}).get("model")] for r, wait in firsts}
        found = (timed, sum(r.duration or 0.0 for r in timed), {name: wait for name, wait in late.items() if wait > 0})
        if self.finished is not None:
            self._timing = (stamp, found)
        return found

    @property
    def step_time(self) -> float:
        """The sum of step durations (map elements counted, not the map around them)."""
        return self._timings()[1]

    def queued(self) -> dict[str, float]:
        """Seconds each streamed ``llm`` step waited in its server's queue: how much later its first
        token came than the quickest first token of the same model in this run. Against a server
        that answers one request at a time this is the time the step did not run; on one that
        answers many at once, it is about 0."""
        return dict(self._timings()[2])

    @property
    def served_time(self) -> float:
        """The sum of step durations less what :meth:`queued` says llm steps spent in a server's queue."""
        return self.step_time - sum(self.queued().values())

    @property
    def speedup(self) -> float | None:
        """Summed time the steps were being served over wall time: what the parallelism bought."""
        wall = self.wall_time
        if not wall:
            return None
        return self.served_time / wall

    @property
    def critical_path(self) -> list[str]:
        """The chain of steps that set the wall time, first to last.

        Walks back from the step that finished last, each time to the dependency
        that finished last.
        """
        done = {n: r for n, r in self.steps.items() if r.finished is not None and r.map is None}
        if not done:
            return []
        current = max(done.values(), key=lambda r: r.finished or 0.0)
        path = [current.name]
        while True:
            parents = [done[d] for d in current.deps if d in done]
            if not parents:
                break
            current = max(parents, key=lambda r: r.finished or 0.0)
            path.append(current.name)
        return path[::-1]

    @property
    def top_steps(self) -> list[StepRecord]:
        """The records of the flow's own steps, map elements left out (a snapshot: safe while it runs)."""
        return [r for r in list(self.steps.values()) if r.map is None]

    def _spent(self) -> list[dict[str, Any]]:
        """The llm records of steps that called a model in this run (cached steps did not)."""
        return [r.llm for r in list(self.steps.values()) if r.llm and not r.cached]

    @property
    def tokens(self) -> tuple[int, int]:
        """Prompt and completion tokens this run spent (cached steps spent none)."""
        spent = self._spent()
        return (
            sum(info.get("prompt_tokens") or 0 for info in spent),
            sum(info.get("completion_tokens") or 0 for info in spent),
        )

    @property
    def cost(self) -> float | None:
        """Dollars this run spent on models with a price (``flowmagic.set_price``); None if none had
        one. A rerun whose priced steps all came from the cache spent 0.0."""
        costs: list[float] = [info["cost"] for info in self._spent() if info.get("cost") is not None]
        if costs:
            return sum(costs)
        priced = any(r.llm and r.llm.get("cost") is not None for r in list(self.steps.values()))
        return 0.0 if priced else None

    def failed(self) -> list[str]:
        return [n for n, r in self.steps.items() if r.status is Status.FAILED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "status": self.status,
            "reason": self.reason,
            "model": self.model,
            "started": self.started,
            "finished": self.finished,
            "wall_time": self.wall_time,
            "step_time": self.step_time,
            "served_time": self.served_time,
            "speedup": self.speedup,
            "critical_path": self.critical_path,
            "tokens": dict(zip(("prompt", "completion"), self.tokens, strict=True)),
            "cost": self.cost,
            "abandoned_threads": self.abandoned_threads,
            "pool_waits": self.pool_waits,
            "steps": {n: r.to_dict() for n, r in self.steps.items()},
            "outputs": {n: _jsonable(v) for n, v in self.outputs.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The run as JSON; values that JSON cannot hold are written as their ``repr``."""
        return json.dumps(self.to_dict(), indent=indent, default=repr)

    def __repr__(self) -> str:
        wall = f"{self.wall_time:.2f}s" if self.wall_time is not None else "-"
        return f"<Run {self.flow!r} {self.status}: {len(self.steps)} steps, wall {wall}>"

    def summary(self) -> str:
        from .summary import summary

        return summary(self)

    def show(self) -> Any:
        """The final DAG and timeline: a picture in a notebook, the summary in a terminal."""
        return present.draw("run", self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary())


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


class Recorder:
    """The observer that builds a :class:`Run` from events."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def __call__(self, event: ev.Event) -> None:
        kind = event.kind
        self.run.changes += 1
        record = self.run.steps.get(event.step) if event.step is not None else None
        if kind == ev.STARTED and record is not None:  # the common events first
            record.status = Status.RUNNING
            record.attempts = event.attempt
            if record.started is None:
                record.started = event.time
        elif kind == ev.FINISHED and record is not None:
            record.status = Status.SUCCEEDED
            record.finished = event.time
            if record.map is None:
                self.run.outputs[record.name] = event.value
            extra = event.detail
            if extra:
                if "llm" in extra:
                    record.llm = extra["llm"]
                if extra.get("cached"):
                    record.cached = True
                    record.started = event.time
                elif "ran" in extra:  # when a cluster worker ran it: not its wait for a free one
                    began, ended = extra["ran"]
                    if record.started is not None and record.started <= began <= ended <= event.time:
                        record.waited = began - record.started
                        record.started, record.finished = began, ended
        else:
            self._other(event, record)

    def _other(self, event: ev.Event, record: StepRecord | None) -> None:
        run = self.run
        kind = event.kind
        if kind == ev.RUN_STARTED:
            run.started = event.time
            return
        if kind == ev.RUN_FINISHED:
            run.finished = event.time
            detail = event.detail or {}
            run.status = RunStatus(detail.get("status", RunStatus.SUCCEEDED))
            run.reason = detail.get("reason")
            run.abandoned_threads = int(detail.get("abandoned_threads", 0))
            run.pool_waits = int(detail.get("pool_waits", 0))
            return
        assert event.step is not None
        if record is None:  # a map element, announced by its first event
            detail = event.detail or {}
            parent = run.steps[detail["map"]]
            record = StepRecord(
                name=event.step,
                kind=detail.get("kind", "call"),
                group=parent.group,
                branch=event.step,
                map=parent.name,
            )
            run.steps[event.step] = record
            if kind in (ev.STARTED, ev.FINISHED):
                self(event)
                return
        if kind == ev.EXPANDED:
            record.elements = int((event.detail or {}).get("count", 0))
        elif kind == ev.TEXT:
            record.llm = event.detail
        elif kind == ev.FAILED:
            record.status = Status.FAILED
            record.finished = event.time
            record.error = event.error
            if event.detail and "llm" in event.detail:
                record.llm = event.detail["llm"]
        elif kind in (ev.SKIPPED, ev.CANCELLED):
            record.status = Status.SKIPPED if kind == ev.SKIPPED else Status.CANCELLED
            if record.started is not None:
                record.finished = event.time
            record.reason = (event.detail or {}).get("reason")


def format_error(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


_ENGINE = os.path.dirname(os.path.dirname(__file__)) + os.sep  # the flowmagic package, as its code names it


def user_frames(tb: TracebackType | None) -> TracebackType | None:
    """A step's traceback without flowmagic's own frames: from the step's line in the flow (its
    cell) down to the user's code that raised."""
    kept = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_ENGINE):
            kept.append(tb)
        tb = tb.tb_next
    chain = None
    for frame in reversed(kept):
        chain = TracebackType(chain, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return chain
