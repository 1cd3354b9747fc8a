"""The driver: runs what the scheduler decides, and reports back what happened.

One :class:`Execution` is one run. Its :class:`~flowmagic.engine.scheduler.Scheduler`
holds all scheduling state, and one lock keeps it to one caller at a time: every fact
enters under that lock, a unit's outcome always through :meth:`Execution._report` (the
one way a unit finishes), and the events that follow from the decisions are recorded
in the same hold (:mod:`.journal`), so the run's record never disagrees with the
scheduler. User code never runs under the lock.

How a unit runs once the scheduler STARTs it (:meth:`_dispatch`, :meth:`_prepare`):

- a cached step succeeds at once, with its stored value;
- code with no call in it (``total = a + b``) is evaluated right where the decision was
  taken, on a worker thread or the loop;
- a plain sync call runs on a worker thread. The thread that finishes a unit begins one
  of the units that follow it in the same hold of the lock and runs it next
  (:meth:`_keep_one`), so a chain of sync steps, or a map's elements, run back to back on
  one thread with one hold between two;
- everything else (``llm``, async calls, ``@retries``/``@timeout``, the cluster, a map's
  iterable) runs as a task on the run's loop through :mod:`.attempts`; a task that
  finishes a unit goes on with a loop unit it started.

Whatever the path, user code starts only after :meth:`_begin` (under the lock) finds the
unit still live: a unit cancelled while it waited never starts. Without threads
(:class:`~flowmagic.engine.places.Places` with no pool) the same decisions hold.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Sequence
from types import CodeType
from typing import Any

from ..flow.compile import Code, CompiledFlow
from ..flow.model import RunSettings
from ..llm.call import LLMCall, deferred_llm
from ..llm.call import call as call_llm
from ..llm.registry import resolve_model
from . import events as ev
from .attempts import attempts
from .attempts import evaluate as evaluate_code
from .cache import MISS, StepCache, step_keys
from .elements import Elements, Pull, check_size
from .evaluate import is_awaitable, namespace, place
from .journal import Journal
from .places import Places
from .record import Run, StepRecord
from .remote import Remote, unsendable
from .scheduler import Decision, Plan, Scheduler, Unit, Verdict
from .workers import WorkerPool, shared_pool

THREAD, LOOP, INLINE = "thread", "loop", "inline"
_OK, _FAILED, _CANCELLED = 0, 1, 2
_START, _QUEUED, _SKIP, _CANCEL, _COLLECT, _DONE = (
    Verdict.START, Verdict.QUEUED, Verdict.SKIP, Verdict.CANCEL, Verdict.COLLECT, Verdict.DONE,
)  # fmt: skip


_NONE: Any = object()


class _Collect(str):
    """A map whose elements all have an outcome: the driver reports the map's own."""


class Job:
    """A started unit on its way: where it runs and the names its code reads."""

    __slots__ = ("awaitable", "begun", "code", "info", "ns", "place", "unit")

    def __init__(self, unit: Unit, place: str, ns: dict[str, Any] | None = None, code: CodeType | None = None):
        self.unit = unit
        self.place = place
        self.ns = ns
        self.code = code  # what a thread or inline job evaluates
        self.info: dict[str, Any] = {}  # what the unit's record gets besides its value
        self.awaitable: Any = None  # what a sync call returned, for the loop to await
        self.begun = False  # begun in the hold that finished the unit before it


def plan_of(flow: CompiledFlow) -> Plan:
    return Plan(
        order=flow.order,
        children=flow.children,
        indegree=flow.indegree,
        group_of=flow.group_of,
        parent_of={g: group.parent for g, group in flow.groups.items()},
        group_workers={g: group.workers for g, group in flow.groups.items() if group.workers},
    )


class Execution:
    """One run of a compiled flow. Create it, then ``await execution.execute()`` on any loop.

    ``threads=False`` runs sync code on the loop itself, one call at a time (a kernel that
    cannot start threads).
    """

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
            settings=settings.model_dump(exclude_defaults=True, exclude={"model"}),
        )
        # the cache: keys are known up front; ``force`` steps run anyway and store what they get
        self.cache = cache if settings.cache else None
        self.force = force
        self.keys: dict[str, str | None] = {}
        if self.cache is not None:
            keys = step_keys(name, flow, inputs, f"{self.model} temperature={settings.temperature}")
            self.keys = keys.keys
            self.run.inputs = keys.inputs
            for step_name, why in keys.reasons.items():
                self.run.steps[step_name].cache_note = f"not cached: {why}"
        self._lock = threading.Lock()
        self.journal = Journal(self.run, observers, self._lock)
        self._record = self.journal.record  # under the lock
        self.places = Places(pool if pool is not None or not threads else None, remote)
        self._threads = threads
        self.remote = remote  # sync steps run on the cluster, if there is one
        # plain calls (no llm, map, timeout, retry) may skip the loop, unless sent to a cluster
        self.direct = flow.simple if remote is None else frozenset()
        self.sched = Scheduler(
            plan_of(flow), settings.workers, sequential=settings.sequential, stop_on_error=settings.on_error == "stop"
        )
        self.values: dict[str, Any] = {}
        self.elements: dict[str, Elements] = {}
        self.async_callees: dict[Any, bool] = {}
        self._places: dict[str, str] = {}  # where steps whose callee cannot change run
        self.tasks: dict[Unit, asyncio.Task[Any]] = {}  # the task running each unit on the loop
        self._all_tasks: set[asyncio.Task[Any]] = set()
        self._pulls: dict[str, Pull] = {}  # maps whose iterable is being pulled
        self.on_threads: set[Unit] = set()  # units whose code runs on a worker thread now
        self._phase = "new"  # then "running", then "ended" (RUN_FINISHED recorded)
        self._done: asyncio.Future[None] | None = None

    # -- the run ------------------------------------------------------------------------
    @property
    def observers(self) -> list[ev.Observer]:
        return self.journal.observers

    def subscribe(self, observer: ev.Observer) -> None:
        """Add an observer before the run starts."""
        self.journal.observers.append(observer)

    @property
    def cancelling(self) -> bool:
        return self.sched.reason is not None

    async def execute(self) -> Run:
        """Run every step; return the :class:`Run` whatever happened to the steps."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._phase != "new":  # cancelled before it began: nothing to run
                return self.run
            self._phase = "running"
            if self._threads and self.places.pool is None:
                self.places.pool = shared_pool()
            self.places.bind(loop)
            self.journal.soon = self.places.soon
            self._done = loop.create_future()
            self.sched.announce = bool(self.observers)
            self._record(ev.RUN_STARTED, detail={"model": self.model, "steps": len(self.steps)})
            starts = self._apply(self.sched.start())
        if self.remote is not None:
            starts += self._check_sendable()
        self._dispatch(starts)
        timeout = self.settings.timeout
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, self.cancel, f"the run timed out after {timeout:g} s")
        try:
            await asyncio.shield(self._done)
        except asyncio.CancelledError:  # the caller's task was cancelled: settle every unit, then go on
            self.cancel("cancelled")
            await self._quiesce()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        await self._quiesce()
        return self.run

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel the run from any thread, keeping what finished; before it began, it ends here and now."""
        with self._lock:
            self._apply(self.sched.cancel(reason))  # (a cancel starts nothing)
            if self._phase == "new":
                self._record(ev.RUN_STARTED, detail={"model": self.model, "steps": len(self.steps)})
                self._end()
                ended_here = True
            else:
                ended_here = False
        if ended_here:
            self.journal.deliver()  # no loop will: the observers hear of it here

    async def _quiesce(self) -> None:
        """Wait for this run's tasks (cancelled ones included), then end the run."""
        while self._all_tasks:
            await asyncio.wait(set(self._all_tasks))
        with self._lock:
            self._end()
        self.journal.deliver()

    def _end(self) -> None:
        """Under the lock: the run's last event, once."""
        if self._phase == "ended":
            return
        self._phase = "ended"
        # a thread still inside abandoned user code goes back to the pool when that returns
        abandoned = len(self.on_threads) + self.places.still_out()
        detail = {"status": self.sched.outcome(), "reason": self.sched.reason, "abandoned_threads": abandoned}
        self._record(ev.RUN_FINISHED, detail=detail)

    def _check_sendable(self) -> list[Unit]:
        error = unsendable(self.flow, self.inputs, self.async_callees)
        if error is None or error.step is None:
            return []
        with self._lock:
            return self._settle(error.step, _FAILED, error, None, f"step '{error.step}' cannot be sent to the cluster")

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
            starts = self._settle(unit, outcome, value, info)
            if keep is not None and starts:
                self._keep_one(starts, keep)
            return starts

    def _settle(
        self, unit: Unit, outcome: int, value: Any, info: dict[str, Any] | None, stop: str | None = None
    ) -> list[Any]:
        sched = self.sched
        if outcome == _OK:
            decisions = sched.succeeded(unit)
        elif outcome == _FAILED:
            decisions = sched.failed(unit, stop)
        else:
            decisions = sched.cancelled(unit, str(value or "cancelled"))
            return [] if decisions is None else self._apply(decisions)
        if decisions is None:  # it had settled: a thread a cancel left behind, say
            return []
        if type(unit) is tuple:
            els = self.elements[unit[0]]
            els.outcome(unit[1], outcome == _OK, value)
            label, detail = els.label(unit[1]), els.detail(unit[1])
            if info:
                detail.update(info)
        else:
            label, detail = unit, info or None  # type: ignore[assignment]
        if outcome == _OK:
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
                starts.append(_Collect(unit))
            elif verdict is _DONE and self._done is not None:
                self.places.soon(_resolve, self._done)
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
            label, detail = self._label(unit)
            self._record(ev.STARTED, label, 1, detail=detail)
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
                job = Job(start, keep, els.namespace(start[1]), els.code.code)
            elif type(start) is str and start in self.direct and (self.keys.get(start) is None or start in self.force):
                try:  # (evaluating its callee is a name or an attribute: cheap)
                    job = self._job(start)
                except Exception:
                    continue  # _prepare reports it
                if job.place == INLINE:
                    job.place = keep
                elif job.place != keep:
                    starts[i] = job  # prepared, for the other place
                    continue
            else:
                continue
            job.begun = self._begin(start, on_thread=keep == THREAD)
            starts[i] = starts[0]
            starts[0] = job
            return

    # -- starting units (outside the lock) ---------------------------------------------------
    def _dispatch(self, starts: list[Any], keep: str | None = None) -> Job | None:
        """Get started units going; return one for the caller to run itself, if it asked
        (``keep``: a worker thread keeps a thread job, a loop task a loop job)."""
        if len(starts) == 1 and type(starts[0]) is Job and starts[0].begun:
            return starts[0]  # the common case: the one unit it started, begun for the caller
        kept: Job | None = None
        todo = deque(starts)
        while todo:
            job = self._prepare(todo.popleft(), todo)
            if job is None:
                continue
            if job.place == INLINE:
                todo.extend(self._inline(job))
            elif kept is None and job.place == keep:
                kept = job
            elif job.place == THREAD:
                self.places.on_pool(self._thread_jobs, job)
            elif self.places.on_loop_thread():
                self._task(job)
            else:
                self.places.soon(self._task, job)
        return kept

    def _prepare(self, unit: Any, todo: deque[Any]) -> Job | None:
        """Where a started unit runs; None when it settled here (a cache hit, a bad name, a map's end)."""
        kind = type(unit)
        if kind is Job:
            return unit  # type: ignore[no-any-return]
        if kind is tuple:
            els = self.elements[unit[0]]
            return Job(unit, els.place, els.namespace(unit[1]), els.code.code)
        if kind is _Collect:
            todo.extend(self._collect(unit))
            return None
        key = self.keys.get(unit)
        if key is not None and unit not in self.force:
            assert self.cache is not None
            hit = self.cache.get(key)
            if hit is not MISS:
                value, kept = hit
                todo.extend(self._report(unit, _OK, value, {**kept, "cached": True}))
                return None
        if unit not in self.direct:
            return Job(unit, LOOP)
        try:
            return self._job(unit)
        except Exception as exc:
            todo.extend(self._report(unit, _FAILED, exc))
            return None

    def _job(self, name: str) -> Job:
        """A direct step's job: its namespace and where it runs (raises what evaluating its callee raises)."""
        code = self.code[name]
        job = Job(name, THREAD, code=code.expr.code)
        reads = code.reads
        job.ns = namespace(reads, self._lookup, self._blocking_llm(name, job.info) if "llm" in reads else None)
        where = self._places.get(name)
        if where is None:
            where = place(code.expr, job.ns, self.async_callees)
            if name in self.flow.fixed_callee:  # the same function all run long: ask once
                self._places[name] = where
        job.place = where
        return job

    def _lookup(self, name: str) -> Any:
        value = self.values.get(name, _NONE)
        if value is not _NONE:
            return value
        group = self.flow.groups.get(name)
        if group is not None and group.named:
            return {m: self.values[m] for m in group.members}
        return self.inputs[name]

    def _collect(self, unit: _Collect) -> list[Any]:
        name = str(unit)
        try:
            value = self.elements[name].value()
        except Exception as exc:
            return self._report(name, _FAILED, exc)
        return self._finished(name, value, {})

    def _finished(self, unit: Unit, value: Any, info: dict[str, Any], keep: str | None = None) -> list[Any]:
        """A unit's value: stored in the cache when it has a key, then reported."""
        key = self.keys.get(unit) if type(unit) is str else None
        if key is not None and not self.cancelling:
            assert self.cache is not None
            kept = {"llm": info["llm"]} if "llm" in info else {}  # what a cached step still shows
            note = self.cache.put(key, (value, kept))
            if note:
                self.run.steps[unit].cache_note = note  # type: ignore[index]
        return self._report(unit, _OK, value, info, keep)

    def _task(self, job: Job) -> None:
        """On the loop: a task for a started unit (none if a cancel settled it meanwhile)."""
        loop = self.places.loop
        assert loop is not None
        if not self.sched.live(job.unit):
            return
        task = loop.create_task(self._loop_jobs(job))
        self.tasks[job.unit] = task
        self._all_tasks.add(task)
        task.add_done_callback(self._all_tasks.discard)

    # -- running units -------------------------------------------------------------------
    def _inline(self, job: Job) -> list[Any]:
        """Code with no call in it, evaluated here (it is cheap); returns what it started."""
        with self._lock:
            if not self._begin(job.unit):
                return []
        try:
            value = eval(job.code, job.ns)  # type: ignore[arg-type]
        except Exception as exc:
            return self._report(job.unit, _FAILED, exc, job.info)
        return self._value(job, value)

    def _thread_jobs(self, job: Job | None) -> None:
        """On a worker thread: run a job, then each one it made ready that this thread keeps."""
        while job is not None:
            unit = job.unit
            if not job.begun:
                with self._lock:
                    if not self._begin(unit, on_thread=True):
                        return
            job.info["thread"] = True
            try:
                value = eval(job.code, job.ns)  # type: ignore[arg-type]
            except BaseException as exc:  # even SystemExit: it is the step's error, not the run's
                starts = self._report(unit, _FAILED, exc, job.info, THREAD)
            else:
                if is_awaitable(value):
                    self._adopt_later(job, value)
                    return
                starts = self._finished(unit, value, job.info, THREAD)
            if len(starts) == 1 and type(starts[0]) is Job and starts[0].begun:
                job = starts[0]  # the common case: the one unit it started, begun for this thread
            else:
                job = self._dispatch(starts, keep=THREAD)

    def _value(self, job: Job, value: Any) -> list[Any]:
        if is_awaitable(value):
            self._adopt_later(job, value)
            return []
        return self._finished(job.unit, value, job.info)

    def _adopt_later(self, job: Job, awaitable: Any) -> None:
        """A sync callable returned a coroutine: the loop awaits it, as the same unit."""
        with self._lock:
            self.on_threads.discard(job.unit)
        job.awaitable = awaitable
        self.places.soon(self._adopt, job)

    def _adopt(self, job: Job) -> None:
        if self.sched.live(job.unit):
            job.place = LOOP
            self._task(job)
        elif asyncio.iscoroutine(job.awaitable):  # cancelled in the meantime
            job.awaitable.close()

    async def _loop_jobs(self, job: Job | None) -> None:
        """A task: run a job, then each one it started that this task keeps."""
        task = asyncio.current_task()
        assert task is not None
        while job is not None:
            job = await self._loop_job(job)
            if job is not None:  # (only a run's cancel stops a running unit's task: see _stop)
                self.tasks[job.unit] = task

    async def _loop_job(self, job: Job) -> Job | None:
        unit = job.unit
        if job.awaitable is None and not job.begun:
            with self._lock:
                if not self._begin(unit):
                    self.tasks.pop(unit, None)
                    return None
        try:
            if job.awaitable is not None:  # it began on a thread
                value = await job.awaitable
            elif type(unit) is str and self.steps[unit].kind == "map":
                return self._dispatch(await self._expand(unit), keep=LOOP)
            else:
                value = await self._attempt(job)
        except asyncio.CancelledError:
            starts = self._report(unit, _CANCELLED, self.sched.reason)
        except Exception as exc:
            starts = self._report(unit, _FAILED, exc, job.info, LOOP)
        else:
            starts = self._finished(unit, value, job.info, LOOP)
        return self._dispatch(starts, keep=LOOP)

    async def _attempt(self, job: Job) -> Any:
        unit = job.unit
        if type(unit) is tuple:
            els = self.elements[unit[0]]
            step = self.steps[unit[0]]
            label, detail, code = els.label(unit[1]), els.detail(unit[1]), els.code
        else:
            step = self.steps[unit]  # type: ignore[index]
            label, detail, code = step.name, None, self.code[step.name].expr
        ns = job.ns
        if ns is None:
            ns = namespace(self.code[step.name].reads, self._lookup, self._blocking_llm(label, job.info))
        if step.name in self.direct:  # an async call: one attempt, no deadline
            value = eval(code.code, ns)
            return await value if is_awaitable(value) else value
        return await attempts(self, label, step.options, code, ns, job.info, detail)

    async def _expand(self, name: str) -> list[Any]:
        """A map: pull its iterable (a cancel stops the pull), then let the scheduler start its elements."""
        compiled = self.code[name]
        assert compiled.bindings is not None
        ns = namespace(compiled.reads, self._lookup, self._blocking_llm(name, {}))
        pull = Pull(await evaluate_code(self, name, compiled.bindings, ns, {}, send=False))
        with self._lock:
            self._pulls[name] = pull
        try:
            bindings = await self.in_thread(pull.pull)
        finally:
            with self._lock:
                self._pulls.pop(name, None)
        check_size(name, bindings)
        els = Elements(name, compiled.expr, compiled.targets, bindings, ns)
        opts = self.steps[name].options
        els.choose_place(not (opts.retries or opts.timeout is not None or self.remote), self.async_callees)
        with self._lock:
            if not self.sched.live(name):
                return []
            self.elements[name] = els
            self.tasks.pop(name, None)
            self._record(ev.EXPANDED, name, detail={"count": len(bindings)})
            return self._apply(self.sched.expanded(name, len(bindings)))

    # -- what attempts need (see attempts.Host) -------------------------------------------------
    def started(self, label: str, attempt: int, detail: dict[str, Any] | None) -> bool:
        with self._lock:
            if self.cancelling:
                return False
            self._record(ev.STARTED, label, attempt=attempt, detail=detail)
            return True

    def retried(self, label: str, attempt: int, error: BaseException, detail: dict[str, Any] | None) -> None:
        self.emit(ev.RETRIED, label, attempt=attempt, error=error, detail=detail)

    def in_thread(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        return self.places.in_thread(fn, *args)

    def send(self, label: str, code: Code, ns: dict[str, Any]) -> asyncio.Future[Any]:
        return self.places.send(self.name, label, code, ns)

    async def ask(self, label: str, call: LLMCall, info: dict[str, Any]) -> Any:
        on_text = (lambda shown: self.emit(ev.TEXT, label, detail=shown)) if self.observers else None
        settings = self.settings
        return await call_llm(call, info, model=settings.model, temperature=settings.temperature, on_text=on_text)

    def _blocking_llm(self, label: str, info: dict[str, Any]) -> Any:
        """``llm`` for code on a worker thread: sends the call to the loop and waits."""

        def llm(template: Any, **kwargs: Any) -> Any:
            loop = self.places.loop
            if loop is None or self.places.on_loop_thread():
                raise RuntimeError("llm() inside another call needs a worker thread, and this run has none")
            work = asyncio.run_coroutine_threadsafe(self.ask(label, deferred_llm(template, **kwargs), info), loop)
            return work.result()

        return llm

    # -- events ---------------------------------------------------------------------------
    def emit(self, kind: ev.Kind, step: str | None = None, **fields: Any) -> None:
        """Record an event from any thread; the observers get it on the loop, in order."""
        with self._lock:
            self._record(kind, step, **fields)
        if self.observers and self.places.on_loop_thread():
            self.journal.deliver()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


__all__ = ["Execution", "Job", "plan_of"]
