"""The loop's side of the driver: units that run as tasks on the run's event loop.

``llm`` steps, async calls, ``@retries``/``@timeout``, a map's iterable, a ``for`` loop and a
step sent to a cluster run here (:meth:`OnLoop._loop_job`), through :mod:`.attempts` where they
need attempts and deadlines; a task that finishes a unit goes on with a loop unit it started.
This class also gives :mod:`.attempts` what it needs of a run (its ``Host`` methods). The
:class:`~flowmagic.engine.driver.Execution` is this plus the thread side and the dispatch.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from ..flow.compiled import Code
from ..llm.call import LLMCall, deferred_llm
from ..llm.call import call as call_llm
from . import capture
from . import events as ev
from .attempts import attempts
from .attempts import evaluate as evaluate_code
from .book import Book
from .elements import Elements, Pull, check_size
from .evaluate import is_awaitable, namespace
from .iterations import run_loop
from .jobs import CANCELLED, FAILED, LOOP, THREAD, Job
from .record import Run
from .scheduler import Unit


class OnLoop(Book):
    """Runs units as tasks on the run's loop; see the module's docstring."""

    # -- the driver's, used here -----------------------------------------------------------
    def _dispatch(self, starts: list[Any], keep: str | None = None) -> Job | None:
        raise NotImplementedError

    def _finished(self, unit: Unit, value: Any, info: dict[str, Any], keep: str | None = None) -> list[Any]:
        raise NotImplementedError

    def _thread_jobs(self, job: Job | None, here: bool = False) -> None:
        raise NotImplementedError

    async def wait(self) -> Run:
        raise NotImplementedError

    # -- tasks -------------------------------------------------------------------------------
    def _task(self, job: Job) -> None:
        """On the loop: a task for a started unit (none if a cancel settled it meanwhile)."""
        loop = self.places.loop
        assert loop is not None
        with self._lock:  # (so a run that ends now ends here, or waits for this task: never both)
            if not self.sched.live(job.unit):
                return
            if not self.waiting:  # the run's first task: wait() ends the run once the tasks settle
                self.waiting = True
                self._waiter = loop.create_task(self.wait())  # (held: the loop keeps tasks only weakly)
        task = loop.create_task(self._loop_jobs(job))
        self.tasks[job.unit] = task
        self._all_tasks.add(task)
        task.add_done_callback(self._all_tasks.discard)

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
        if type(unit) is str and job.begun and job.ns is None and unit in self.direct:
            try:  # a step begun in the hold that finished the one before
                self.place_begun(job)
            except Exception as exc:
                return self._dispatch(self._report(unit, FAILED, exc), keep=LOOP)
            if job.place == THREAD:  # a sync call: a worker thread runs it
                self.tasks.pop(unit, None)
                self.on_threads.add(unit)
                self.places.on_pool(self._thread_jobs, job)
                return None
        token = capture.enter((self.weak, unit))  # what it prints, a flow it calls: this unit's
        try:
            if job.awaitable is not None:  # it began on a thread
                value = await job.awaitable
            elif job.ns is not None and unit in self.direct:  # an async call, or cheap code: evaluate it here
                value = eval(job.code, job.ns)  # type: ignore[arg-type]
                if is_awaitable(value):
                    value = await value
            elif type(unit) is tuple and self.elements[unit[0]].async_calls:  # a map's async call, as above
                els = self.elements[unit[0]]
                value = eval(els.code.code, job.ns if job.ns is not None else els.namespace(unit[1]))
                if is_awaitable(value):
                    value = await value
            elif type(unit) is str and self.steps[unit].kind == "map":
                return self._dispatch(await self._expand(unit), keep=LOOP)
            elif type(unit) is str and self.steps[unit].kind == "loop":
                value = await run_loop(self, unit)
            else:
                value = await self._attempt(job)
        except asyncio.CancelledError:
            starts = self._report(unit, CANCELLED, self.sched.reason)
        except Exception as exc:
            starts = self._report(unit, FAILED, exc, job.info, LOOP)
        else:
            starts = self._finished(unit, value, job.info, LOOP)
        finally:
            capture.leave(token)
        return self._dispatch(starts, keep=LOOP)

    async def _attempt(self, job: Job) -> Any:
        unit = job.unit
        if type(unit) is tuple:
            els = self.elements[unit[0]]
            if job.ns is None:
                job.ns = els.namespace(unit[1])
            step = self.steps[unit[0]]
            label, detail, code = els.label(unit[1]), els.detail(unit[1]), els.code
        else:
            step = self.steps[unit]  # type: ignore[index]
            label, detail, code = step.name, None, self.code[step.name].expr
        ns = job.ns
        if ns is None:
            compiled = self.code[step.name]
            ns = namespace(compiled.reads, self._lookup, self._blocking_llm(label, job.info), compiled.binds)
        if step.name in self.direct:  # an async call: one attempt, no deadline
            value = eval(code.code, ns)
            return await value if is_awaitable(value) else value
        return await attempts(self, label, step.options, code, ns, job.info, detail)

    async def _expand(self, name: str) -> list[Any]:
        """A map: pull its iterable (a cancel stops the pull), then let the scheduler start its elements."""
        compiled = self.code[name]
        assert compiled.bindings is not None
        ns = namespace(compiled.reads, self._lookup, self._blocking_llm(name, {}), compiled.binds)
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
        if self.observers or self.watched:  # the answer streams into the record as it comes
            on_text: Any = lambda shown: self.emit(ev.TEXT, label, detail=shown)  # noqa: E731
        elif self._timed:  # a timeout closes a stream, which stops the server's generation too
            on_text = _ignore
        else:
            on_text = None  # asked whole: less work for the client
        settings = self.settings
        return await call_llm(
            call,
            info,
            model=settings.model,
            temperature=settings.temperature,
            on_text=on_text,
            record=settings.record,
            replay=settings.replay,
            replay_fallback=settings.replay_fallback,
        )

    @functools.cached_property
    def _timed(self) -> bool:
        """Whether a timeout could end one of this run's calls: the run's ``--timeout`` or a step's
        (looked at once per run, on its first ``llm`` call)."""
        if self.settings.timeout is not None:
            return True
        return any(step.options.timeout is not None for step in self.steps.values())

    def _blocking_llm(self, label: str, info: dict[str, Any]) -> Any:
        """``llm`` for code on a worker thread: sends the call to the loop and waits."""

        def llm(template: Any, **kwargs: Any) -> Any:
            loop = self.places.loop
            if loop is None or self.places.on_loop_thread():
                raise RuntimeError("llm() inside another call needs a worker thread, and this run has none")
            work = asyncio.run_coroutine_threadsafe(self.ask(label, deferred_llm(template, **kwargs), info), loop)
            return work.result()

        return llm


def _ignore(shown: dict[str, Any]) -> None:
    """Streaming's ``on_text`` when nobody watches (the answer streams so that it can be cut short)."""


__all__ = ["OnLoop"]
