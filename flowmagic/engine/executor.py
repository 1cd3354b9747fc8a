"""The executor: where steps are scheduled.

A step is queued the moment its last dependency succeeds, so there are no
lock-step rounds. Sync code runs on worker threads, coroutines and ``llm`` calls
on an event loop. Concurrency is bounded by the run's ``workers`` and each
``parallel (workers=N)`` group's: a step claims a slot of each (:class:`Claim`),
and a finishing step hands its slot straight to the next one in line.

Nothing is handed between threads that need not be. A plain sync call (no
``@retries``, ``@timeout``, map or ``llm``) runs on a worker thread, and the thread
that finishes it starts the steps it made ready itself, running one of them next,
so a chain of sync steps stays on one thread; a loop step's task likewise goes on
with the next loop step. The scheduling state is therefore shared by the loop and
the worker threads, under one lock held only for bookkeeping, never around user code.

A map's elements are not a task each: a few pullers, one for each slot the map can
use, take the elements in order and run them back to back, on worker threads when
they are plain sync calls and as tasks on the loop otherwise (see :class:`Elements`).

Everything observable is an :class:`~flowmagic.engine.events.Event`: the run's
record is updated as it happens, and the observers get every event on the loop's
thread, in order; the executor does not know who they are.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import functools
import inspect
import itertools
import random
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ..flow.compile import Code, CompiledFlow
from ..flow.model import RunSettings, Step
from ..llm import ask, resolve_model
from ..llm.prices import cost
from ..llm.protocol import LLMError, LLMRequest
from ..llm.template import render
from . import events as ev
from .cache import MISS, StepCache, step_keys
from .claims import Claim, Limit, give, resolve, share, take
from .evaluate import LLMCall, deferred_llm, is_awaitable, namespace, where
from .record import Recorder, Run, StepRecord
from .remote import NotSendableError, Remote, check, evaluate, pack
from .workers import WorkerPool, shared_pool

#: A map larger than this is refused with an error rather than flooding the machine.
MAX_MAP_ELEMENTS = 1_000_000


class StepTimeout(TimeoutError):
    """A step ran past its ``@timeout``."""


class MapError(RuntimeError):
    """Some elements of a map failed; ``results`` holds every element's value or error."""

    def __init__(self, name: str, results: list[Any], failures: dict[int, BaseException]) -> None:
        first_index, first = next(iter(failures.items()))
        super().__init__(
            f"{len(failures)} of {len(results)} elements of '{name}' failed; "
            f"first: {name}[{first_index}]: {type(first).__name__}: {first}"
        )
        self.results = results
        self.failures = failures


class ObserverWarning(UserWarning):
    """An observer raised; it was removed so the run could go on."""


def retry_delay(error: BaseException, backoff: float, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt``: exponential backoff with jitter, and never
    sooner than the ``retry_after`` the error asks for (a server's Retry-After), jittered above it."""
    delay: float = backoff * 2.0 ** (attempt - 1) * random.uniform(0.5, 1.5)
    asked = getattr(error, "retry_after", None)
    if isinstance(asked, (int, float)) and asked > 0:
        delay = max(delay, float(asked) * random.uniform(1.0, 1.2))
    return delay


UNSET: Any = object()  # an element with no outcome yet


class Elements:
    """A map's elements and their outcomes, taken in order by the map's pullers.

    A puller is a claim on one slot of the map's limits: it runs element after element
    while it holds the slot and no one else waits for it, so a map of 10,000 items costs
    a few tasks or thread hand-offs rather than 10,000. The fields change under the run's lock.
    """

    __slots__ = (
        "bindings",
        "code",
        "done",
        "failures",
        "kind",
        "left",
        "name",
        "next",
        "ns",
        "results",
        "stopped",
        "targets",
        "tasks",
    )

    def __init__(
        self, name: str, code: Code, targets: tuple[str, ...], bindings: list[Any], ns: dict[str, Any], done: Any
    ) -> None:
        self.name = name
        self.code = code
        self.kind = "llm" if code.llm else "call"
        self.targets = targets
        self.bindings = bindings
        self.ns = ns
        self.done: asyncio.Future[None] = done  # resolved when the last element has an outcome
        self.results: list[Any] = [UNSET] * len(bindings)  # each element's value or error
        self.failures: dict[int, BaseException] = {}
        self.left = len(bindings)  # elements without an outcome
        self.next = 0  # the next element to start
        self.stopped = False  # the map was cancelled: outcomes that come later are dropped
        self.tasks: set[asyncio.Task[None]] = set()  # the pullers on the loop

    def label(self, index: int) -> str:
        return f"{self.name}[{index}]"

    def detail(self, index: int) -> dict[str, Any]:
        return {"map": self.name, "index": index, "kind": self.kind}

    def namespace(self, index: int) -> dict[str, Any]:
        ns = self.ns.copy()
        ns.update(zip(self.targets, self.bindings[index], strict=True))
        return ns


class Execution:
    """One run of a compiled flow. Create it, then ``await execution.execute()`` on any loop."""

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
    ) -> None:
        self.name = name
        self.steps: dict[str, Step] = flow.steps
        self.order = flow.order
        self.groups = flow.groups
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
        self.recorder = Recorder(self.run)
        self.observers: list[ev.Observer] = list(observers)
        self.values: dict[str, Any] = {}
        # the scheduling state below is shared by the loop and the worker threads, under ``_lock``
        self._lock = threading.Lock()
        self.state = dict.fromkeys(self.steps, "pending")  # pending -> queued -> final
        self.remaining = dict(flow.indegree)
        self.declared = flow.declared
        self.children = flow.children
        # sync steps run on the cluster, if there is one, instead of on the kernel's threads
        self.remote = remote
        # a step may run straight on a worker thread (no loop round trip) when it needs nothing
        # the loop gives: no llm call, map, timeout or retry, and the run is not sequential
        self.direct = frozenset() if settings.sequential or remote is not None else flow.simple
        self.unfinished = len(self.steps)
        self.cancel_reason: str | None = None
        self.failed_stop = False
        self.tasks: dict[str, asyncio.Task[Any]] = {}  # the task that runs (or ran) each loop step
        self.threads: set[concurrent.futures.Future[Any]] = set()  # loop steps now on a worker thread
        self.on_threads: set[str] = set()  # direct steps whose code is running now
        self._outbox: list[ev.Event] = []  # events for the observers, delivered on the loop
        self._delivery_scheduled = False
        self._inbox: list[tuple[asyncio.Future[Any], concurrent.futures.Future[Any]]] = []
        self._inbox_lock = threading.Lock()
        self._drain_scheduled = False
        self.abandoned = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._done: asyncio.Event | None = None
        self._pool = pool  # the caller's (a batch's rows share one), or the process's shared pool
        self._limits: dict[str | None, Limit] = {}
        self._chains: dict[str | None, tuple[Limit, ...]] = {}  # by the step's group
        self._async_callees: dict[Any, bool] = {}

    # -- events -----------------------------------------------------------------
    def subscribe(self, observer: ev.Observer) -> None:
        """Add an observer before the run starts."""
        self.observers.append(observer)

    def emit(
        self,
        kind: str,
        step: str | None = None,
        attempt: int = 0,
        error: BaseException | None = None,
        value: Any = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record an event now; the observers get it on the loop, in order (at once if this is the loop)."""
        with self._lock:
            self._record(kind, step, attempt, error, value, detail)
        if self.observers and threading.get_ident() == self._loop_thread:
            self._deliver()

    def _record(
        self,
        kind: str,
        step: str | None = None,
        attempt: int = 0,
        error: BaseException | None = None,
        value: Any = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """:meth:`emit`, for a caller that holds ``_lock``."""
        event = ev.Event(kind, step, time.time(), attempt, error, value, detail)
        self.recorder(event)
        if self.observers:
            self._outbox.append(event)
            if not self._delivery_scheduled:
                self._delivery_scheduled = True
                self._soon(self._deliver)

    def _deliver(self) -> None:
        """On the loop: hand the recorded events to the observers."""
        with self._lock:
            events, self._outbox = self._outbox, []
            self._delivery_scheduled = False
        for event in events:
            for observer in self.observers:
                try:
                    observer(event)
                except Exception as exc:  # a display must never break a run
                    self.observers = [o for o in self.observers if o is not observer]
                    warnings.warn(
                        f"observer {observer!r} raised {exc!r} and was removed", ObserverWarning, stacklevel=2
                    )

    def _soon(self, fn: Any, *args: Any) -> None:
        """Call ``fn`` on the loop, soon, from any thread (never inline: the caller may hold the lock)."""
        loop = self.loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            loop.call_soon(fn, *args)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
                loop.call_soon_threadsafe(fn, *args)

    # -- the run ----------------------------------------------------------------
    async def execute(self) -> Run:
        """Run every step; return the :class:`Run` whatever happened to the steps."""
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._done = asyncio.Event()
        workers = 1 if self.settings.sequential else self.settings.workers
        self._limits[None] = Limit(workers)
        for gname, group in self.groups.items():
            if group.workers:
                self._limits[gname] = Limit(group.workers)
        if self._pool is None:
            self._pool = shared_pool()
        with self._lock:
            self._record(ev.RUN_STARTED, detail={"model": self.model, "steps": len(self.steps)})
            if self.cancel_reason is not None:  # cancelled before it started
                reason, self.cancel_reason = self.cancel_reason, None
                self._cancel_locked(reason)
            if self.remote is not None and self.cancel_reason is None:
                self._check_sendable()
        try:
            if self.settings.sequential:
                await self._sequential()
            else:
                roots = [n for n in self.declared if not self.steps[n].deps]
                self._launch(roots)
            if self.unfinished:
                try:
                    await asyncio.wait_for(self._done.wait(), self.settings.timeout)
                except asyncio.TimeoutError:
                    self.cancel(f"the run timed out after {self.settings.timeout:g} s")
                    await self._done.wait()
        except asyncio.CancelledError:
            # the caller's task was cancelled: settle every step, then let the cancel go on
            self.cancel("cancelled")
            await self._settle_tasks()
            self._finish()
            raise
        await self._settle_tasks()
        self._finish()
        return self.run

    async def _settle_tasks(self) -> None:
        pending = [t for t in self.tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending)

    def _finish(self) -> None:
        with self._lock:
            # a thread still inside abandoned user code goes back to the pool when that returns
            self.abandoned += sum(1 for f in self.threads if not f.done()) + len(self.on_threads)
            if self.failed_stop or (self.cancel_reason is None and any(s == "failed" for s in self._statuses())):
                status = "failed"
            elif self.cancel_reason is not None:
                status = "cancelled"
            else:
                status = "succeeded"
            self._record(
                ev.RUN_FINISHED,
                detail={"status": status, "reason": self.cancel_reason, "abandoned_threads": self.abandoned},
            )
        self._deliver()

    def _statuses(self) -> list[str]:
        return [r.status for r in self.run.steps.values()]

    def _check_sendable(self) -> None:
        """Under ``_lock``, before anything is sent: every input a step sends to the cluster must pickle.

        Otherwise that step fails with a :class:`~flowmagic.engine.remote.NotSendableError` naming
        it and the run stops at once. (Values made by steps are checked as each is sent.)
        """
        checked: set[str] = set()
        for name in self.declared:
            code = self.code[name]
            if self.steps[name].kind == "llm" or "llm" in code.reads:
                continue  # llm steps stay on the kernel's loop
            inputs = {r: self.inputs[r] for r in code.reads if r in self.inputs and r not in self.values}
            try:
                if where(code.expr, {"__builtins__": vars(builtins), **inputs}, self._async_callees) == "loop":
                    continue
            except Exception:
                pass  # its callee is a step's value: it is checked when sent
            try:
                for read, value in inputs.items():
                    if read not in checked:
                        check(name, read, value)
                        checked.add(read)
            except NotSendableError as exc:
                self._failed(name, exc)
                self.failed_stop = True
                self._cancel_locked(f"step '{name}' cannot be sent to the cluster")
                return

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel the run from any thread; finished results are kept."""
        with self._lock:
            self._cancel_locked(reason)

    def _cancel_locked(self, reason: str) -> None:
        if self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        if self.loop is None:  # not started: ``execute`` cancels it at once
            return
        # every unfinished step is cancelled now; what a thread returns later is dropped (a thread
        # cannot be stopped), and the tasks are cancelled on the loop
        for name in self.declared:
            if self.state[name] != "final":
                self._settle(name, ev.CANCELLED, detail={"reason": reason})
        self._soon(self._cancel_tasks)

    def _cancel_tasks(self) -> None:
        for task in list(self.tasks.values()):
            if not task.done():
                task.cancel()

    async def _sequential(self) -> None:
        for name in self.order:
            if self.cancel_reason is not None:
                break
            if self.state[name] == "pending" and self.remaining[name] == 0:
                self._launch([name])
                task = self.tasks.get(name)  # none for a cached step
                if task is not None:
                    await asyncio.wait([task])  # (awaiting a cancelled task would raise its cancel here)

    # -- bookkeeping (under ``_lock``) ---------------------------------------------
    def _settle(
        self,
        name: str,
        kind: str,
        error: BaseException | None = None,
        value: Any = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if self.state[name] == "final":
            return
        self.state[name] = "final"
        self._record(kind, name, 0, error, value, detail)
        self.unfinished -= 1
        if self.unfinished == 0 and self._done is not None:
            self._soon(self._done.set)

    def _succeeded(self, name: str, value: Any, info: dict[str, Any]) -> list[str]:
        """Record a value; return the children it made ready."""
        self.values[name] = value
        self._settle(name, ev.FINISHED, value=value, detail=info or None)
        if self.cancel_reason is not None:
            return []
        ready = []
        for child in self.children[name]:
            self.remaining[child] -= 1
            if self.remaining[child] == 0 and self.state[child] == "pending":
                ready.append(child)
        return [] if self.settings.sequential else ready  # --sequential starts each step itself

    def _failed(self, name: str, error: BaseException, info: dict[str, Any] | None = None) -> None:
        self._settle(name, ev.FAILED, error=error, detail=info or None)
        todo = list(self.children[name])
        while todo:
            child = todo.pop(0)
            if self.state[child] == "pending":
                self._settle(child, ev.SKIPPED, detail={"reason": f"'{name}' failed"})
                todo.extend(self.children[child])
        if self.settings.on_error == "stop" and self.cancel_reason is None:
            self.failed_stop = True
            self._cancel_locked(f"'{name}' failed and on_error is 'stop'")

    def _chain(self, name: str) -> tuple[Limit, ...]:
        """The limits a step takes: its groups' (outermost first), then the run's."""
        innermost = self.steps[name].group
        chain = self._chains.get(innermost)
        if chain is None:
            limits = []
            group = innermost
            while group is not None:
                if group in self._limits:
                    limits.append(self._limits[group])
                group = self.groups[group].parent
            limits.reverse()
            limits.append(self._limits[None])
            chain = self._chains[innermost] = tuple(limits)
        return chain

    def _lookup(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        group = self.groups.get(name)
        if group is not None and group.named:
            return {m: self.values[m] for m in group.members}
        return self.inputs[name]

    # -- starting steps (any thread, without ``_lock``) ------------------------------
    def _launch(self, names: list[str], keep: str | None = None) -> Claim | None:
        """Start steps whose dependencies are done.

        A cached step succeeds at once (and may make more steps ready); a direct step claims
        its slots for a worker thread; any other becomes a task on the loop. The caller may
        ``keep`` one to run itself next, instead of handing it on: a worker thread that just
        finished a step keeps a granted ``"thread"`` claim, a loop step's task a ``"loop"`` one.
        The claims are queued under one hold of the lock, however many there are.
        """
        todo = deque(names)
        kept: Claim | None = None
        while todo:
            claims = []
            while todo:
                prepared = self._prepare(todo.popleft())
                if isinstance(prepared, list):
                    todo.extend(prepared)
                elif prepared is not None:
                    claims.append(prepared)
            granted = []
            with self._lock:
                for claim in claims:
                    if self.state[claim.step] != "pending":
                        continue
                    self.state[claim.step] = "queued"
                    if self.observers:  # the record itself has no use for it
                        self._record(ev.QUEUED, claim.step)
                    if not take(claim):
                        continue  # it waits in line; a finishing step hands it the slot
                    if kept is None and keep == ("loop" if claim.on_loop else "thread"):
                        kept = claim
                        if not claim.on_loop:
                            self._begin(claim)
                    else:
                        granted.append(claim)
            for claim in granted:
                self._submit(claim)
        return kept

    def _prepare(self, name: str) -> list[str] | Claim | None:
        """Get a ready step going: the children a cache hit made ready, its claim, or None (it failed)."""
        key = self.keys.get(name)
        if key is not None and name not in self.force:
            assert self.cache is not None
            hit = self.cache.get(key)
            if hit is not MISS:
                value, kept = hit
                with self._lock:
                    if self.state[name] != "pending":
                        return None
                    return self._succeeded(name, value, {**kept, "cached": True})
        ns: dict[str, Any] | None = None
        info: dict[str, Any] = {}  # what the step's llm calls tell its record
        on_loop = True
        if name in self.direct:
            code = self.code[name]
            try:
                ns = namespace(code.reads, self._lookup, lambda: self._blocking_llm(name, info))
                on_loop = where(code.expr, ns, self._async_callees) == "loop"
            except Exception as exc:
                with self._lock:
                    if self.state[name] == "pending":
                        self._failed(name, exc)
                return None
        # a map takes its slots in its task: for its bindings, then one per puller
        claim = Claim(name, () if self.steps[name].kind == "map" else self._chain(name), ns, on_loop)
        claim.info = info
        return claim

    def _task(self, claim: Claim) -> None:
        """On the loop: run a granted loop step as a task (which lets it go if a cancel came first)."""
        assert self.loop is not None
        self.tasks[claim.step] = self.loop.create_task(self._steps(claim))

    def _submit(self, claim: Claim) -> None:
        assert self._pool is not None
        if claim.future is not None:  # a task waiting for its slots
            self._soon(resolve, claim.future)
        elif claim.elements is not None:  # a map's puller on threads (one on the loop waits on a future)
            self._pool.submit(self._pull, claim)
        elif claim.on_loop:
            if threading.get_ident() == self._loop_thread:
                self._task(claim)
            else:
                self._soon(self._task, claim)
        else:
            self._pool.submit(self._direct, claim)

    def _granted(self, claims: list[Claim]) -> None:
        """Start the claims a finishing step's slots were handed to."""
        for claim in claims:
            self._submit(claim)

    def _keep(self, claims: list[Claim], on_loop: bool = False) -> Claim | None:
        """Under ``_lock``: take a claim out of ``claims`` for the caller to run next.

        A worker thread keeps a direct step's claim (begun here); a task keeps a loop step's.
        """
        for i, claim in enumerate(claims):
            if claim.future is None and claim.on_loop == on_loop:
                del claims[i]
                if not on_loop:
                    self._begin(claim)
                return claim
        return None

    def _begin(self, claim: Claim) -> None:
        """Under ``_lock``: a direct step starts (unless a cancel settled it while it waited)."""
        if self.state[claim.step] != "final":
            self.on_threads.add(claim.step)
            self._record(ev.STARTED, claim.step, attempt=1)
            claim.begun = True

    # -- direct steps (on a worker thread) --------------------------------------------
    def _direct(self, claim: Claim | None) -> None:
        """Run a granted claim here, then whatever it makes ready that can follow on this thread."""
        while claim is not None:
            claim = self._direct_step(claim)

    def _direct_step(self, claim: Claim) -> Claim | None:
        """Run one direct step; return the next to run on this thread, if any (already begun).

        The bookkeeping around a step takes the lock once: finishing one step, and beginning
        the next that this thread keeps, happen under the same hold.
        """
        name = claim.step
        if not claim.begun:
            with self._lock:
                self._begin(claim)
        if not claim.begun:  # cancelled while it waited for its slots
            with self._lock:
                granted = give(claim)
                keep = self._keep(granted)
            self._granted(granted)
            return keep
        assert claim.ns is not None
        claim.info["thread"] = True
        error: BaseException | None = None
        try:
            value = eval(self.code[name].expr.code, claim.ns)
        except BaseException as exc:  # even SystemExit: it is the step's error, not the run's
            error = exc
        ready: list[str] = []
        note = None
        adopted = error is None and is_awaitable(value)
        if adopted:  # a sync callable that returned a coroutine: the loop awaits it
            self._soon(self._adopt, name, value, claim.info)
        key = self.keys.get(name)
        if key is not None and error is None and not adopted and self.cancel_reason is None:
            assert self.cache is not None
            note = self.cache.put(key, (value, {}))
        with self._lock:
            self.on_threads.discard(name)
            granted = give(claim)
            if self.state[name] != "final" and not adopted:
                if note:
                    self.run.steps[name].cache_note = note
                if error is None:
                    ready = self._succeeded(name, value, claim.info)
                else:
                    self._failed(name, error, claim.info)
            keep = self._keep(granted)
        self._granted(granted)
        more = self._launch(ready, keep=None if keep else "thread")
        return keep or more

    def _adopt(self, name: str, awaitable: Any, info: dict[str, Any]) -> None:
        """On the loop: await what a direct step returned, as the step's task."""
        assert self.loop is not None
        if self.state[name] == "final":  # cancelled in the meantime
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            return
        self.tasks[name] = self.loop.create_task(self._await_direct(name, awaitable, info))

    async def _await_direct(self, name: str, awaitable: Any, info: dict[str, Any]) -> None:
        try:
            value = await awaitable
        except asyncio.CancelledError:
            with self._lock:
                self._settle(name, ev.CANCELLED, detail={"reason": self.cancel_reason or "cancelled"})
            return
        except Exception as exc:
            with self._lock:
                self._failed(name, exc, info)
            return
        with self._lock:
            ready = self._succeeded(name, value, info) if self.state[name] != "final" else []
        self._launch(ready)

    # -- loop steps ---------------------------------------------------------------
    async def _acquire(self, claim: Claim) -> None:
        """Wait on the loop until ``claim`` holds its slots."""
        with self._lock:
            if take(claim):
                return
            assert self.loop is not None
            claim.future = self.loop.create_future()
        try:
            await claim.future
        except asyncio.CancelledError:
            self._release(claim)
            raise

    def _release(self, claim: Claim) -> None:
        with self._lock:
            claim.dead = True
            granted = give(claim)
        self._granted(granted)

    def _let_go(self, claim: Claim, settle: Callable[[], object] | None = None) -> None:
        """Hand ``claim``'s slots on to the next in line, settling its step under the same hold."""
        with self._lock:
            granted = give(claim)
            if settle is not None:
                settle()
        self._granted(granted)

    async def _steps(self, claim: Claim | None) -> None:
        """A loop step, then each ready step it keeps to run next in the same task."""
        task = asyncio.current_task()
        assert task is not None
        while claim is not None:
            claim = await self._step(claim, task)

    async def _step(self, claim: Claim, task: asyncio.Task[Any]) -> Claim | None:
        """Run a loop step that holds its slots; return the next one this task keeps, if any."""
        name = claim.step
        if self.state[name] == "final":  # cancelled before it began
            self._let_go(claim)
            return None
        step = self.steps[name]
        code = self.code[name]
        info = claim.info
        ns = claim.ns
        try:
            if ns is None:
                ns = namespace(code.reads, self._lookup, lambda: self._blocking_llm(name, info))
            if step.kind == "map":
                value = await self._map(step, ns)
            else:
                if name in self.direct:  # one attempt, no deadline, and (its place was "loop") evaluated here
                    self.emit(ev.STARTED, name, attempt=1)
                    value = eval(code.expr.code, ns)
                    if is_awaitable(value):
                        value = await value
                else:
                    value = await self._attempts(name, step, code.expr, ns, info)
        except asyncio.CancelledError:
            reason = {"reason": self.cancel_reason or "cancelled"}
            self._let_go(claim, functools.partial(self._settle, name, ev.CANCELLED, detail=reason))
            return None
        except Exception as exc:
            self._let_go(claim, functools.partial(self._failed, name, exc, info))
            return None
        key = self.keys.get(name)
        if key is not None:
            assert self.cache is not None
            kept = {"llm": info["llm"]} if "llm" in info else {}  # what a cached step still shows
            note = self.cache.put(key, (value, kept))
            if note:
                self.run.steps[name].cache_note = note
        with self._lock:
            granted = give(claim)
            ready = self._succeeded(name, value, info)
            after = self._keep(granted, on_loop=True)  # the step that takes over this slot goes on here
        self._granted(granted)
        if after is None:
            after = self._launch(ready, keep="loop")
        else:
            self._launch(ready)
        if after is not None:
            self.tasks[after.step] = task
        return after

    async def _attempts(
        self, label: str, step: Step, code: Code, ns: dict[str, Any], info: dict[str, Any], detail: Any = None
    ) -> Any:
        opts = step.options
        attempt = 0
        while True:
            attempt += 1
            self.emit(ev.STARTED, label, attempt=attempt, detail=detail)
            if opts.timeout is None:  # the common case: no extra task
                try:
                    return await self._evaluate(label, code, ns, info)
                except Exception as exc:
                    error: BaseException = exc
            else:
                ok, outcome = await self._with_timeout(label, code, ns, info, opts.timeout)
                if ok:
                    return outcome
                error = outcome
            if attempt > opts.retries or self.cancel_reason is not None:
                raise error
            self.emit(ev.RETRIED, label, attempt=attempt, error=error, detail=detail)
            await asyncio.sleep(retry_delay(error, opts.backoff, attempt))

    async def _with_timeout(
        self, label: str, code: Code, ns: dict[str, Any], info: dict[str, Any], timeout: float
    ) -> tuple[bool, Any]:
        """Evaluate with a deadline: ``(True, value)`` or ``(False, error)``."""
        work = asyncio.ensure_future(self._evaluate(label, code, ns, info))
        try:
            finished, _ = await asyncio.wait({work}, timeout=timeout)
        except asyncio.CancelledError:
            work.cancel()
            raise
        if work not in finished:
            work.cancel()
            thread = " (its thread was left to finish: threads cannot be stopped)" if info.get("thread") else ""
            return False, StepTimeout(f"'{label}' timed out after {timeout:g} s{thread}")
        error = work.exception()
        return (True, work.result()) if error is None else (False, error)

    async def _evaluate(
        self, label: str, code: Code, ns: dict[str, Any], info: dict[str, Any], send: bool = True
    ) -> Any:
        if code.llm:  # evaluate the call's arguments only; the prompt is sent from the loop
            ns = {**ns, "llm": deferred_llm}
        if where(code, ns, self._async_callees) == "loop":
            value = eval(code.code, ns)
        elif self.remote is not None and send and "llm" not in ns:
            info["ran"], value = await self._send(label, code, ns)
        else:
            info["thread"] = True
            value = await self._in_thread(eval, code.code, ns)
        if isinstance(value, LLMCall):
            return await self._call_llm(label, value, info)
        if is_awaitable(value):
            value = await value
        return value

    def _in_thread(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        assert self.loop is not None and self._pool is not None
        # track the thread's own future: a cancelled step leaves it running (abandoned)
        work = self._pool.submit(fn, *args)
        self.threads.add(work)
        result = self.loop.create_future()
        work.add_done_callback(lambda done: self._post(result, done))
        return result

    def _send(self, label: str, code: Code, ns: dict[str, Any]) -> asyncio.Future[Any]:
        """Run ``code`` on the cluster; a cancel (of the run, or by ``@timeout``) cancels it there too."""
        assert self.loop is not None and self.remote is not None
        remote = self.remote
        payload = pack(label, code.code, ns)  # NotSendableError, naming the step, before anything is sent
        work = remote.submit(f"{self.name}-{label}-{uuid.uuid4().hex[:8]}", evaluate, payload)
        result = self.loop.create_future()
        work.add_done_callback(lambda done: self._post(result, done))
        result.add_done_callback(lambda r: remote.cancel([work]) if r.cancelled() and not work.done() else None)
        return result

    def _post(self, result: asyncio.Future[Any], work: concurrent.futures.Future[Any]) -> None:
        """On a worker thread: hand a finished step back, waking the loop once per batch."""
        with self._inbox_lock:
            self._inbox.append((result, work))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        assert self.loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._inbox_lock:
            inbox, self._inbox = self._inbox, []
            self._drain_scheduled = False
        for result, work in inbox:
            self.threads.discard(work)
            if result.cancelled():
                continue
            error = work.exception()
            if error is None:
                result.set_result(work.result())
            else:
                result.set_exception(error)

    def _blocking_llm(self, label: str, info: dict[str, Any]) -> Any:
        """``llm`` for code on a worker thread: sends the call to the loop and waits."""
        loop = self.loop

        def llm(template: Any, **kwargs: Any) -> Any:
            assert loop is not None
            call = deferred_llm(template, **kwargs)
            return asyncio.run_coroutine_threadsafe(self._call_llm(label, call, info), loop).result()

        return llm

    async def _call_llm(self, label: str, call: LLMCall, info: dict[str, Any]) -> Any:
        settings = dict(call.settings)
        prompt = call.template
        system = settings.pop("system", None)
        # literal templates are rendered; a prompt built in Python is sent as it is
        if "prompt" in call.templates:
            prompt = render(prompt, call.placeholders)
        if "system" in call.templates:
            system = render(system, call.placeholders)
        if settings.get("temperature") is None and self.settings.temperature is not None:
            settings["temperature"] = self.settings.temperature
        model = resolve_model(settings.pop("model", None) or self.settings.model)
        request = LLMRequest(prompt=str(prompt), model=model, system=system, **settings)
        shown = info["llm"] = {"prompt": request.prompt, "system": system, "model": model}

        def on_text(text: str) -> None:  # the answer so far, shown while it streams in
            shown["answer"] = text
            self.emit(ev.TEXT, label, detail=dict(shown))  # a snapshot: the dict grows

        try:  # streamed only when someone watches: a whole answer costs the client less
            response = await ask(request, on_text if self.observers else None)
        except LLMError as exc:
            if exc.raw is not None:  # e.g. an answer that does not fit the schema: show it
                shown["answer"] = exc.raw
            raise
        shown.update(
            answer=response.text,
            offline=response.offline,
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
            cost=cost(response.model or model, response.prompt_tokens, response.completion_tokens),
        )
        return response.value

    @contextlib.asynccontextmanager
    async def _slots(self, step: Step) -> AsyncIterator[None]:
        claim = Claim(step.name, self._chain(step.name))
        await self._acquire(claim)
        try:
            yield
        finally:
            self._release(claim)

    async def _map(self, step: Step, ns: dict[str, Any]) -> list[Any]:
        code = self.code[step.name]
        assert code.bindings is not None and self.loop is not None
        async with self._slots(step):
            self.emit(ev.STARTED, step.name, attempt=1)
            lazy = await self._evaluate(step.name, code.bindings, ns, {}, send=False)
            # one past the limit and no further: an endless or huge iterable is an error, not a hang
            bindings = await self._in_thread(list, itertools.islice(lazy, MAX_MAP_ELEMENTS + 1))
        if len(bindings) > MAX_MAP_ELEMENTS:
            raise ValueError(
                f"'{step.name}' would expand to more than {MAX_MAP_ELEMENTS:,} elements; "
                f"the limit is {MAX_MAP_ELEMENTS:,}"
            )
        self.emit(ev.EXPANDED, step.name, detail={"count": len(bindings)})
        if not bindings:
            return []
        els = Elements(step.name, code.expr, code.targets, bindings, ns, self.loop.create_future())
        if self.observers:  # the record itself has no use for it
            with self._lock:
                for i in range(els.left):
                    self._record(ev.QUEUED, els.label(i), detail=els.detail(i))
        self._start_pullers(els, step)
        try:
            await els.done
        except asyncio.CancelledError:
            self._stop(els)
            if els.tasks:
                await asyncio.wait(set(els.tasks))
            raise
        if els.failures:
            raise MapError(step.name, els.results, dict(sorted(els.failures.items())))
        return els.results

    def _start_pullers(self, els: Elements, step: Step) -> None:
        """On the loop: one puller per slot the map can use, on worker threads when its elements allow."""
        chain = self._chain(step.name)
        pullers = [Claim(step.name, chain) for _ in range(min(els.left, *(limit.size for limit in chain)))]
        threaded = self._threaded(els, step)
        for claim in pullers:
            claim.elements = els
            claim.on_loop = not threaded
            if not threaded:
                self._pull_task(claim)
        if threaded:
            with self._lock:
                granted = [claim for claim in pullers if take(claim)]  # the rest wait in line
            self._granted(granted)

    def _threaded(self, els: Elements, step: Step) -> bool:
        """Whether the elements can run back to back on worker threads: plain sync calls, like a direct step."""
        code = els.code
        opts = step.options
        if code.llm or opts.retries or opts.timeout is not None or self.remote is not None:
            return False
        if code.callee is not None and not code.calls and not set(code.callee.co_names).isdisjoint(els.targets):
            return False  # which function an element calls depends on the element: ask each on the loop
        try:
            return where(code, els.namespace(0), self._async_callees) == "thread"
        except Exception:
            return False  # the element's own evaluation reports it

    def _next_element(self, claim: Claim, started: bool) -> tuple[int | None, list[Claim]]:
        """Under ``_lock``: the index of the next element for ``claim``'s puller, recording it ``started``;
        or None (all taken, or the map stopped) and the claims its slots were handed to."""
        els = claim.elements
        assert els is not None
        if els.stopped or els.next == len(els.bindings):
            return None, give(claim)
        index = els.next
        els.next += 1
        if started:  # on a worker thread
            label = els.label(index)
            self.on_threads.add(label)
            self._record(ev.STARTED, label, attempt=1, detail=els.detail(index))
        return index, []

    def _outcome(self, els: Elements, index: int, ok: bool, value: Any, info: dict[str, Any] | None = None) -> None:
        """Under ``_lock``: an element's value (``ok``) or error."""
        if els.stopped:  # cancelled: its CANCELLED is recorded
            return
        els.results[index] = value
        detail = els.detail(index)
        if info:
            detail.update(info)
        if ok:
            self._record(ev.FINISHED, els.label(index), value=value, detail=detail)
        else:
            els.failures[index] = value
            self._record(ev.FAILED, els.label(index), error=value, detail=detail)
        els.left -= 1
        if not els.left:
            self._soon(resolve, els.done)

    def _stop(self, els: Elements) -> None:
        """On the loop, as the map is cancelled: every element without an outcome is cancelled."""
        with self._lock:
            els.stopped = True
            reason = self.cancel_reason or "cancelled"
            for index, value in enumerate(els.results):
                if value is UNSET:
                    self._record(ev.CANCELLED, els.label(index), detail={**els.detail(index), "reason": reason})
        for task in els.tasks:
            task.cancel()

    def _pull(self, claim: Claim) -> None:
        """On a worker thread: run the map's elements one after another while ``claim`` holds its slots.

        One hold of the lock between two elements: the outcome of one, the start of the next.
        """
        els = claim.elements
        assert els is not None
        code = els.code.code
        with self._lock:
            index, granted = self._next_element(claim, started=True)
        self._granted(granted)
        while index is not None:
            label = els.label(index)
            ok = True
            try:
                value = eval(code, els.namespace(index))
            except BaseException as exc:  # even SystemExit: it is the element's error, not the run's
                ok, value = False, exc
            if ok and is_awaitable(value):  # a sync callable that returned a coroutine
                with self._lock:
                    self.on_threads.discard(label)
                claim.on_loop = True  # the puller goes on on the loop, awaiting this first
                self._soon(self._pull_task, claim, index, value)
                return
            with self._lock:
                self.on_threads.discard(label)
                self._outcome(els, index, ok, value)
                holding, granted = share(claim)
                if holding:
                    index, more = self._next_element(claim, started=True)
                    granted += more
                else:  # in line: submitted again when a finishing step hands it the slots
                    index = None
            self._granted(granted)

    def _pull_task(self, claim: Claim, index: int | None = None, awaitable: Any = None) -> None:
        """On the loop: start a puller as a task (first awaiting element ``index``'s ``awaitable``, if given)."""
        assert self.loop is not None and claim.elements is not None
        task = self.loop.create_task(self._pull_on_loop(claim, index, awaitable))
        tasks = claim.elements.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if inspect.iscoroutine(awaitable):  # cancelled before it began: the coroutine is never awaited
            task.add_done_callback(lambda done: awaitable.close() if done.cancelled() else None)

    async def _pull_on_loop(self, claim: Claim, index: int | None, awaitable: Any) -> None:
        """A puller on the loop: each element in its own attempts (``@retries``, ``@timeout``, ``llm``)."""
        els, loop = claim.elements, self.loop
        assert els is not None and loop is not None
        step = self.steps[els.name]
        try:
            if index is None:
                await self._acquire(claim)
            else:  # it holds its slots
                try:
                    ok, value = True, await awaitable
                except Exception as exc:
                    ok, value = False, exc
                with self._lock:
                    self._outcome(els, index, ok, value)
            while True:
                with self._lock:
                    index, granted = self._next_element(claim, started=False)
                if index is None:
                    self._granted(granted)
                    return
                info: dict[str, Any] = {}
                detail = els.detail(index)
                try:
                    ok, value = (
                        True,
                        await self._attempts(els.label(index), step, els.code, els.namespace(index), info, detail),
                    )
                except Exception as exc:
                    ok, value = False, exc
                with self._lock:
                    self._outcome(els, index, ok, value, info)
                    holding, granted = share(claim)
                    if not holding:  # in line: a finishing step resolves the future
                        claim.future = wait = loop.create_future()
                self._granted(granted)
                if not holding:
                    await wait
        except asyncio.CancelledError:
            self._release(claim)
            raise


__all__ = ["Execution", "LLMError", "MapError", "ObserverWarning", "StepTimeout"]
