"""The driver: runs what a run's :class:`~flowmagic.engine.book.Book` decides.

How a unit runs once the scheduler STARTs it (:meth:`Execution._dispatch`, :meth:`_prepare`):

- a cached step succeeds at once, with its stored value, and so does a name's value after
  an ``if`` block (a join: the chosen arm's value);
- code with no call in it (``total = a + b``) is evaluated right where the decision was
  taken, on a worker thread or the loop;
- a plain sync call runs on a worker thread. The thread that finishes a unit begins one
  of the units that follow it in the same hold of the lock and runs it next
  (:meth:`~flowmagic.engine.book.Book._keep_one`), so a chain of sync steps, or a map's
  elements, run back to back on one thread with one hold between two;
- everything else (``llm``, async calls, ``@retries``/``@timeout``, the cluster, a map's
  iterable) runs as a task on the run's loop through :mod:`.attempts`; a task that
  finishes a unit goes on with a loop unit it started.

The loop's side (tasks, attempts, maps' iterables, loops) is :mod:`.on_loop`'s.

Whatever the path, user code starts only after ``_begin`` (under the lock) and every
outcome goes back through ``_report``. Without threads (:class:`~flowmagic.engine.places.Places`
with no pool, as in a browser kernel) the same decisions hold and sync code runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
from typing import Any

from . import capture
from . import events as ev
from .cache import MISS
from .evaluate import is_awaitable
from .iterations import LoopError
from .jobs import FAILED, INLINE, LOOP, OK, THREAD, Collect, Job, plan_of
from .on_loop import OnLoop
from .record import Run
from .remote import unsendable
from .scheduler import Unit
from .workers import shared_pool


class Execution(OnLoop):
    """One run of a compiled flow. Create it, then ``await execution.execute()`` on any loop.

    ``threads=False`` runs sync code on the loop itself, one call at a time (a kernel that
    cannot start threads).
    """

    async def execute(self) -> Run:
        """Run every step on the running loop; return the :class:`Run` whatever happened to the steps."""
        if not self.start(asyncio.get_running_loop(), threading.get_ident(), waiting=True):
            return self.run  # cancelled before it began: nothing to run
        return await self.wait()

    def start(
        self, loop: asyncio.AbstractEventLoop, loop_thread: int, waiting: bool = False, here: bool = False
    ) -> bool | Job:
        """Begin the run, from any thread, on ``loop`` (whose thread is ``loop_thread``): record its
        start and get its first steps going. False if it had ended already (cancelled before it began).

        Started from the thread that waits for the run (see :mod:`.runner`), sync steps go straight
        to the worker threads, and that thread waits for :attr:`ended`. :meth:`wait` must run on the
        loop when :attr:`waiting` says so (a ``--timeout``, observers, or ``waiting`` asked for);
        otherwise the loop starts it with the run's first task, if there is one.

        With ``here``, one sync step is kept for the calling thread, which would only wait
        otherwise: the :class:`Job` comes back, for :meth:`run_here`. Only when the run begins
        with one step, has no ``--timeout`` (a step on this thread could not be left behind) and
        no cluster.
        """
        with self._lock:
            if self._phase != "new":
                return False
            self._phase = "running"
            capture.install()
            self.waiting = waiting or self.settings.timeout is not None or bool(self.observers)
            if self._threads and self.places.pool is None:
                self.places.pool = shared_pool()
            if self.places.pool is not None:
                self._pool_waits = self.places.pool.waits
            self.places.bind(loop, loop_thread)
            self.journal.soon = self.places.soon
            self._done = loop.create_future()
            self.sched.announce = bool(self.observers) or self.watched
            self._record(ev.RUN_STARTED, detail={"model": self.model, "steps": len(self.steps)})
            starts = self._apply(self.sched.start())
        if self.remote is not None:
            starts += self._check_sendable()
        # (only a run that begins with one step: where many begin, workers run them, and the
        # waiting thread joining in measured slower on 1,000 independent steps)
        here = here and len(starts) == 1 and self.settings.timeout is None and self.remote is None
        here = here and self.places.pool is not None
        kept = self._dispatch(starts, keep=THREAD if here else None)
        return kept if kept is not None else True

    def run_here(self, job: Job) -> None:
        """On the thread that started the run (``start(here=True)``): run the job it kept, and what
        follows it on this thread, in a context of its own. A ``KeyboardInterrupt`` in a step goes on
        to the caller, which cancels the run."""
        contextvars.copy_context().run(self._thread_jobs, job, True)

    async def wait(self) -> Run:
        """On the run's loop, after :meth:`start`: wait for its end (or its ``--timeout``), and
        for its tasks to settle."""
        assert self._done is not None
        timeout = self.settings.timeout
        timer = None
        if timeout is not None:
            loop = asyncio.get_running_loop()
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
        for child in list(self.nested):  # its subflows' runs (one a worker thread waits for, say)
            child.cancel(reason)
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
            self._over()

    def end_now(self) -> None:
        """End the run here and now if it has not ended (a cancel whose tasks did not settle in time)."""
        with self._lock:
            if self._phase == "ended":
                return
            self._end()
        self.journal.deliver()
        self._over()

    async def _quiesce(self) -> None:
        """Wait for this run's tasks (cancelled ones included), then end the run."""
        while self._all_tasks:
            await asyncio.wait(set(self._all_tasks))
        with self._lock:
            self._end()
        self.journal.deliver()
        self._over()

    def _check_sendable(self) -> list[Unit]:
        error = unsendable(self.flow, self.inputs, self.async_callees)
        if error is None or error.step is None:
            return []
        with self._lock:
            return self._settle(error.step, FAILED, error, None, f"step '{error.step}' cannot be sent to the cluster")

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
        if kind is Collect:
            todo.extend(self._collect(unit))
            return None
        join = self.flow.joins.get(unit)
        if join is not None:  # a name's value after an if block: the chosen arm's
            cond, steps = join
            todo.extend(self._report(unit, OK, self.values[steps[self.values[cond]]]))
            return None
        pick = self.flow.picks.get(unit)
        if pick is not None:  # a name's value after a for loop: its last iteration's
            loop, name = pick
            found = self.values[loop].get(name, MISS)
            if found is MISS:
                line = self.steps[loop].line
                no = LoopError(f"'{name}' has no value: the loop on line {line} assigned it in no iteration")
                todo.extend(self._report(unit, FAILED, no))
            else:
                todo.extend(self._report(unit, OK, found))
            return None
        key = self.keys.key(unit) if self.keys is not None else None
        if key is not None and unit not in self.force:
            assert self.cache is not None and self.keys is not None
            hit = self.cache.get(key)
            if hit is not MISS:
                value, kept = hit
                todo.extend(self._report(unit, OK, value, {**kept, "cached": True}))
                return None
            self.keys.missed(unit)
        if unit not in self.direct:
            return Job(unit, LOOP)
        try:
            return self._job(unit)
        except Exception as exc:
            todo.extend(self._report(unit, FAILED, exc))
            return None

    def _collect(self, unit: Collect) -> list[Any]:
        name = str(unit)
        try:
            value = self.elements[name].value()
        except Exception as exc:
            return self._report(name, FAILED, exc)
        return self._finished(name, value, {})

    def _finished(self, unit: Unit, value: Any, info: dict[str, Any], keep: str | None = None) -> list[Any]:
        """A unit's value: stored in the cache when it has a key, then reported."""
        key = self.keys.made.get(unit) if self.keys is not None and type(unit) is str else None
        if key is not None and not self.cancelling:
            assert self.cache is not None
            kept = {"llm": info["llm"]} if "llm" in info else {}  # what a cached step still shows
            note = self.cache.put(key, (value, kept))
            if note:
                self.run.steps[unit].cache_note = note  # type: ignore[index]
        return self._report(unit, OK, value, info, keep)

    # -- running units -------------------------------------------------------------------
    def _inline(self, job: Job) -> list[Any]:
        """Code with no call in it, evaluated here (it is cheap); returns what it started."""
        with self._lock:
            if not self._begin(job.unit):
                return []
        try:
            value = eval(job.code, job.ns)  # type: ignore[arg-type]
        except Exception as exc:
            return self._report(job.unit, FAILED, exc, job.info)
        return self._value(job, value)

    def _thread_jobs(self, job: Job | None, here: bool = False) -> None:
        """On a worker thread (or, ``here``, the run's own): run a job, then each one it made ready
        that this thread keeps."""
        while job is not None:
            unit = job.unit
            if not job.begun:
                with self._lock:
                    if not self._begin(unit, on_thread=True):
                        return
            if isinstance(unit, tuple):
                if job.ns is None:  # an element begun in the hold that finished the one before
                    job.ns = self.elements[unit[0]].namespace(unit[1])
            else:
                if job.ns is None:  # a step begun in the hold that finished the one before
                    try:
                        self.place_begun(job)
                    except Exception as exc:
                        job = self._dispatch(self._report(unit, FAILED, exc), keep=THREAD)
                        continue
                    if job.place == LOOP:  # an async call: the loop awaits it
                        self.on_threads.discard(unit)
                        self.places.soon(self._task, job)
                        return
                job.info["thread"] = True
            try:
                token = capture.enter((self.weak, unit))  # what it prints, a flow it calls: this unit's
                try:
                    value = eval(job.code, job.ns)  # type: ignore[arg-type]
                finally:
                    capture.leave(token)
            except BaseException as exc:  # even SystemExit: it is the step's error, not the run's
                if here and isinstance(exc, KeyboardInterrupt):
                    with self._lock:
                        self.on_threads.discard(unit)  # (no worker thread is left running it)
                    raise  # the user's, not the step's: the caller cancels the run
                starts = self._report(unit, FAILED, exc, job.info, THREAD)
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

__all__ = ["Execution", "Job", "plan_of"]
