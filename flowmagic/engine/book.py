"""A run's bookkeeping: the one owner of its state, and the one way a unit finishes.

A :class:`Book` holds what one run knows: the :class:`~flowmagic.engine.scheduler.Scheduler`,
the values steps made, the maps' elements, the tasks and threads at work. One lock keeps
it to one caller at a time, and every fact enters under it: a unit begins through
:meth:`Book._begin` (the gate before any user code: a unit cancelled while it waited
never starts) and finishes through :meth:`Book._report`, which records the outcome,
asks the scheduler what follows and records the events of its decisions in the same
hold (:mod:`.journal`), so the run's record never disagrees with the scheduler. User
code never runs under the lock. The driver (:mod:`.driver`) runs what this decides.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ..flow.compiled import CompiledFlow
from ..flow.model import RunSettings
from ..llm.registry import resolve_model
from . import events as ev
from .cache import StepCache
from .capture import Printed
from .elements import Elements, Pull
from .evaluate import namespace, place
from .jobs import FAILED, INLINE, OK, THREAD, Collect, Job, plan_of, record_name, resolve
from .journal import Journal
from .places import Places
from .record import Run, StepRecord
from .remote import Remote
from .scheduler import Decision, Scheduler, Unit, Verdict
from .stepkeys import RunKeys, step_keys
from .workers import WorkerPool

_START, _QUEUED, _SKIP, _CANCEL, _COLLECT, _DONE = (
    Verdict.START, Verdict.QUEUED, Verdict.SKIP, Verdict.CANCEL, Verdict.COLLECT, Verdict.DONE,
)  # fmt: skip
_NONE: Any = object()


class Book:
    """One run's state and the decisions taken on it, under one lock (see the module's docstring)."""

    def __init__(
        self,
        name: str,
        flow: CompiledFlow,
        inputs: dict[str, Any],
        settings: RunSettings,
        observers: Sequence[ev.Observer] = (),
        cache: StepCache | None = None,
        force: frozenset[str] = frozenset(),
        remote: Remote | None = None,
        pool: WorkerPool | None = None,
        threads: bool = True,
        previous: Run | None = None,
    ) -> None:
        self.name = name
        self.flow = flow
        self.steps = flow.steps
        self.code = flow.code
        self.inputs = inputs
        self.settings = settings
        self.model = resolve_model(settings.model)
        self.run = Run(
            flow=name,
            steps={n: StepRecord(n, kind, group=g, branch=b, deps=d) for n, kind, g, b, d in flow.records},
            model=self.model,
            sources=flow.sources,
            settings=dict(_changed(settings)),
        )
        # the cache: what keys are made of is known up front, the values a step reads complete
        # its key when it starts; ``force`` steps run anyway and store what they get
        self.cache = cache if settings.cache and settings.record is None else None  # a recording asks anew
        self.force = force
        self.values: dict[str, Any] = {}
        self.keys: RunKeys | None = None
        if self.cache is not None:
            llm_settings = f"{self.model} temperature={settings.temperature}"
            if settings.replay is not None:  # replayed answers are kept apart from the model's own
                llm_settings += f" replay={settings.replay}"
            keys = step_keys(name, flow, inputs, llm_settings, settings.cache_calls)
            # (a miss says what changed since the flow's previous run)
            self.keys = RunKeys(keys, self.values, self.run.steps, previous)
            self.run.inputs = keys.inputs
            for step_name, why in keys.reasons.items():
                self.run.steps[step_name].cache_note = why
        self._lock = threading.Lock()
        self.journal = Journal(self.run, observers, self._lock)
        self.watched = False  # see watch()
        self._record = self.journal.record  # under the lock
        self.places = Places(pool if pool is not None or not threads else None, remote)
        self._threads = threads
        self.remote = remote  # sync steps run on the cluster, if there is one
        # plain calls (no llm, map, timeout, retry) may skip the loop, unless sent to a cluster
        self.direct = flow.simple if remote is None else frozenset()
        self.sched = Scheduler(
            plan_of(flow), settings.workers, sequential=settings.sequential, stop_on_error=settings.on_error == "stop"
        )
        self.elements: dict[str, Elements] = {}
        self.async_callees: dict[Any, bool] = {}  # (per run: a process-wide one would keep callees alive)
        self._places: dict[tuple[Any, ...], str] = {}  # where calls of a callee that cannot change run
        self.tasks: dict[Unit, asyncio.Task[Any]] = {}  # the task running each unit on the loop
        self._all_tasks: set[asyncio.Task[Any]] = set()
        self._pulls: dict[str, Pull] = {}  # maps whose iterable is being pulled
        self.on_threads: set[Unit] = set()  # units whose code runs on a worker thread now
        self._phase = "new"  # then "running", then "ended" (RUN_FINISHED recorded)
        self.ended = threading.Event()  # set once RUN_FINISHED is recorded and delivered
        self.on_end: list[Callable[[Run], None]] = []  # called once it is set (quick: the history's)
        self.nested: set[Any] = set()  # the runs of subflows its steps are running now
        # what its steps print (see .capture); its labels from the elements, not from the book, so
        # that a finished run's book is freed when the last reference goes, not by the collector
        self.printed = Printed(self.run, functools.partial(record_name, self.elements))
        self.weak = weakref.ref(self)  # what a step's context holds of its run (see .capture)
        self._pool_waits = 0  # the pool's count of waits when the run started
        # wait() runs on the loop (a task, a timer or observers need it): it ends the run
        self.waiting = False
        self._waiter: asyncio.Task[Run] | None = None
        self._done: asyncio.Future[None] | None = None

    # -- the run ------------------------------------------------------------------------
    @property
    def observers(self) -> list[ev.Observer]:
        return self.journal.observers

    def subscribe(self, observer: ev.Observer) -> None:
        """Add an observer before the run starts."""
        self.journal.observers.append(observer)

    def watch(self) -> None:
        """Before the run starts: something reads its record as it changes (a live view polls
        ``Run.changes``), so queued steps are recorded and llm answers stream into it, as for an
        observer; but no observer is called and nothing wakes the loop to call one."""
        self.watched = True

    @property
    def cancelling(self) -> bool:
        return self.sched.reason is not None

    # -- deciding (under the lock) ----------------------------------------------------------
    def _report(
        self, unit: Unit, outcome: int, value: Any = None, info: dict[str, Any] | None = None, keep: str | None = None
    ) -> list[Any]:
        """How every unit finishes: record its outcome, let the scheduler decide what follows,
        and return the units it started (to dispatch outside the lock). An outcome that comes
        after the unit settled (from a thread a cancel left behind) is dropped.

        With ``keep`` (a worker thread or a loop task asks), one of those units that runs in
        the same place is begun in the same hold and comes first, as a begun :class:`Job`,
        for the caller to run next.
        """
        with self._lock:
            self.on_threads.discard(unit)
            self.tasks.pop(unit, None)
            if keep is not None and outcome == OK and type(unit) is tuple:
                following = self.sched.pass_on(unit)  # the common case of a large map, in short
                if following is not None:
                    return [self._passed_on(unit, value, info, following, keep)]
            starts = self._settle(unit, outcome, value, info)
            if keep is not None and starts:
                self._keep_one(starts, keep)
            return starts

    def _passed_on(
        self, unit: tuple[str, int], value: Any, info: dict[str, Any] | None, following: Any, keep: str
    ) -> Job:
        """Under the lock: a map element succeeded and handed its slots to the next, which the
        caller (a thread or a task, ``keep``) runs now: record both, as :meth:`_settle` and
        :meth:`_begin` would."""
        els = self.elements[unit[0]]
        name, kind, index = els.name, els.kind, following[1]
        els.results[unit[1]] = value
        detail = {"map": name, "index": unit[1], "kind": kind}
        if info:
            detail.update(info)
        self._record(ev.FINISHED, f"{name}[{unit[1]}]", value=value, detail=detail)
        if keep == THREAD:
            self.on_threads.add(following)
        self._record(ev.STARTED, f"{name}[{index}]", 1, detail={"map": name, "index": index, "kind": kind})
        job = Job(following, keep, None, els.code.code)
        job.begun = True
        return job

    def _settle(
        self, unit: Unit, outcome: int, value: Any, info: dict[str, Any] | None, stop: str | None = None
    ) -> list[Any]:
        sched = self.sched
        if outcome == OK:
            decisions = sched.succeeded(unit) if unit not in self.flow.arms else sched.chosen(unit, value)
        elif outcome == FAILED:
            decisions = sched.failed(unit, stop)
        else:
            decisions = sched.cancelled(unit, str(value or "cancelled"))
            return [] if decisions is None else self._apply(decisions)
        if decisions is None:  # it had settled: a thread a cancel left behind, say
            return []
        if type(unit) is tuple:
            els = self.elements[unit[0]]
            els.outcome(unit[1], outcome == OK, value)
            label, detail = f"{els.name}[{unit[1]}]", {"map": els.name, "index": unit[1], "kind": els.kind}
            if info:
                detail.update(info)
        else:
            label, detail = unit, info or None  # type: ignore[assignment]
        if outcome == OK:
            if type(unit) is str:
                self.values[unit] = value
            self._record(ev.FINISHED, label, value=value, detail=detail)
        else:
            self._record(ev.FAILED, label, error=value, detail=detail)
        return self._apply(decisions)

    def _apply(self, decisions: list[Decision]) -> list[Any]:
        """Under the lock: record what the scheduler decided; return what it started."""
        starts: list[Any] = []
        for verdict, unit, reason in decisions:
            if verdict is _START:
                starts.append(unit)
            elif verdict is _QUEUED:
                label, detail = self._label(unit)
                self._record(ev.QUEUED, label, detail=detail)
            elif verdict is _SKIP or verdict is _CANCEL:
                label, detail = self._label(unit)
                kind = ev.SKIPPED if verdict is _SKIP else ev.CANCELLED
                self._record(kind, label, detail={**(detail or {}), "reason": reason})
                if verdict is _CANCEL:
                    self._stop(unit)
            elif verdict is _COLLECT:
                starts.append(Collect(unit))
            elif verdict is _DONE and self._done is not None:
                if self.waiting:  # wait() on the loop ends the run once its tasks settle
                    self.places.soon(resolve, self._done)
                else:  # no task, no timer, no observer: the run ends where its last step finished
                    self._end()
                    self._over()
        return starts

    def _label(self, unit: Unit) -> tuple[str, dict[str, Any] | None]:
        if type(unit) is tuple:
            els = self.elements[unit[0]]
            return els.label(unit[1]), els.detail(unit[1])
        return unit, None  # type: ignore[return-value]

    def _stop(self, unit: Unit) -> None:
        """Under the lock: a unit was cancelled; stop its task, or its map's pull (a thread runs on).

        A running unit is cancelled only when the whole run is, so the task cancelled here
        may have moved on to another unit of the run by then: that one is cancelled too.
        """
        task = self.tasks.pop(unit, None)
        if task is not None:
            self.places.soon(task.cancel)
        pull = self._pulls.pop(unit, None) if type(unit) is str else None
        if pull is not None:
            pull.stop()

    def _begin(self, unit: Unit, on_thread: bool = False) -> bool:
        """Under the lock: STARTED, if the unit is still live (the gate before any user code)."""
        if not self.sched.begin(unit):
            return False
        if on_thread:
            self.on_threads.add(unit)
        if type(unit) is tuple:
            els = self.elements[unit[0]]
            detail = {"map": els.name, "index": unit[1], "kind": els.kind}
            self._record(ev.STARTED, f"{els.name}[{unit[1]}]", 1, detail=detail)
        else:
            self._record(ev.STARTED, unit, 1)  # type: ignore[arg-type]
        return True

    def _keep_one(self, starts: list[Any], keep: str) -> None:
        """Under the lock: begin one of ``starts`` that runs where ``keep`` says, for the reporting
        thread or task to run next, and put it first.

        Only a unit whose preparation needs no I/O (a map element, or a plain call with no
        cache key) is begun here; the rest go through :meth:`_prepare`.
        """
        for i, start in enumerate(starts):
            if type(start) is tuple:
                els = self.elements[start[0]]
                if els.place != keep:
                    continue
                job = Job(start, keep, None, els.code.code)  # its namespace is made outside the lock
            elif type(start) is str and start in self.direct and not self._may_reuse(start):
                # its namespace and place are made outside the lock (see place_begun)
                job = Job(start, keep, None, self.code[start].expr.code)
            else:
                continue
            job.begun = self._begin(start, on_thread=keep == THREAD)
            starts[i] = starts[0]
            starts[0] = job
            return

    def _may_reuse(self, step: str) -> bool:
        """Whether the cache may hold ``step``'s value: its key is made when it starts (even when
        it must run anyway, to store what it gets)."""
        return self.keys is not None and self.keys.reused(step)

    def _end(self) -> None:
        """Under the lock: the run's last event, once. (``ended`` is set by the caller, once the
        observers have heard of it.)"""
        if self._phase == "ended":
            return
        self._phase = "ended"
        # a thread still inside abandoned user code goes back to the pool when that returns
        abandoned = len(self.on_threads) + self.places.still_out()
        pool = self.places.pool
        waits = pool.waits - self._pool_waits if pool is not None else 0
        detail = {
            "status": self.sched.outcome(),
            "reason": self.sched.reason,
            "abandoned_threads": abandoned,
            "pool_waits": waits,  # units that waited for a thread: the pool was at its cap
        }
        self._record(ev.RUN_FINISHED, detail=detail)

    def _record_name(self, unit: Unit) -> str:
        return record_name(self.elements, unit)

    def _over(self) -> None:
        """Once the run's last event is delivered: say so to who waits, then to ``on_end``."""
        self.printed.close()
        self.ended.set()
        for callback in self.on_end:
            try:
                callback(self.run)
            except Exception as exc:  # a broken callback never breaks the run
                warnings.warn(f"flowmagic: after run '{self.name}': {type(exc).__name__}: {exc}", stacklevel=1)

    def _blocking_llm(self, label: str, info: dict[str, Any]) -> Any:
        """``llm`` for code that runs on a worker thread (the driver's: it knows the loop)."""
        raise NotImplementedError

    def place_begun(self, job: Job) -> None:
        """Outside the lock, for a step begun by :meth:`_keep_one`: its namespace, and where it runs
        (raises what reading its names or its callee raises). Code with no call runs where it is."""
        where = self._fill(job)
        if where != INLINE:
            job.place = where

    def _job(self, name: str) -> Job:
        """A direct step's job: its namespace and where it runs (raises what evaluating its callee raises)."""
        job = Job(name, THREAD, code=self.code[name].expr.code)
        job.place = self._fill(job)
        return job

    def _fill(self, job: Job) -> str:
        """Give a direct step's job its namespace; return where its code runs."""
        name: str = job.unit  # type: ignore[assignment]
        code = self.code[name]
        reads = code.reads
        llm = self._blocking_llm(name, job.info) if "llm" in reads else None
        job.ns = namespace(reads, self._lookup, llm, code.binds)
        fixed = name in self.flow.fixed_callee  # its callee reads no step: the same all run long
        callee = code.expr.callee
        key = (callee.co_code, callee.co_names, callee.co_consts) if fixed and callee is not None else None
        where = self._places.get(key) if key is not None else None
        if where is None:
            where = place(code.expr, job.ns, self.async_callees)
            if key is not None:  # steps calling the same function (the same text) run in the same place
                self._places[key] = where
        return where

    def _lookup(self, name: str) -> Any:
        value = self.values.get(name, _NONE)
        if value is not _NONE:
            return value
        group = self.flow.groups.get(name)
        if group is not None and group.named:
            return {m: self.values[m] for m in group.members}
        return self.inputs[name]

    # -- events ---------------------------------------------------------------------------
    def relay(self, event: ev.Event) -> None:
        """Record an event of a nested run (a loop's iteration, a subflow) in this run, from any
        thread, under the nested run's lock (never the other way round); observers hear of it on
        the loop, soon."""
        with self._lock:
            self.journal.relay(event)

    def emit(self, kind: ev.Kind, step: str | None = None, **fields: Any) -> None:
        """Record an event from any thread; the observers get it on the loop, in order."""
        with self._lock:
            self._record(kind, step, **fields)
        if self.observers and self.places.on_loop_thread():
            self.journal.deliver()


@functools.lru_cache(maxsize=256)
def _changed(settings: RunSettings) -> dict[str, Any]:
    """The settings that are not the defaults, for the record (the same few settings, run after run)."""
    return settings.model_dump(exclude_defaults=True, exclude={"model"})


__all__ = ["Book"]
