"""The executor: where steps are scheduled.

One coordinator on an event loop owns all scheduling state (as in ``graphlib``,
nothing else mutates it). A step is queued the moment its last dependency
succeeds, so there are no lock-step rounds. Sync code runs on a thread pool,
coroutines and ``llm`` calls on the loop. Concurrency is bounded by one global
semaphore and one per ``parallel (workers=N)`` group. Everything observable is
an :class:`~flowmagic.engine.events.Event` sent to the observers; the executor
does not know who they are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import random
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

from ..flow.compile import Code, CompiledFlow
from ..flow.model import RunSettings, Step
from ..llm import provider_for, resolve_model
from ..llm.prices import cost
from ..llm.protocol import LLMError, LLMRequest, answer
from ..llm.template import render
from . import events as ev
from .cache import MISS, StepCache, step_keys
from .evaluate import LLMCall, deferred_llm, namespace, where
from .record import Recorder, Run, StepRecord
from .workers import WorkerPool

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


class _Slots:
    """Acquire several semaphores in a fixed order (groups outermost first, then global)."""

    __slots__ = ("held", "sems")

    def __init__(self, sems: list[asyncio.Semaphore]) -> None:
        self.sems = sems
        self.held = 0

    async def __aenter__(self) -> None:
        try:
            for sem in self.sems:
                await sem.acquire()
                self.held += 1
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: Any) -> None:
        for sem in reversed(self.sems[: self.held]):
            sem.release()
        self.held = 0


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
            steps={
                n: StepRecord(name=n, kind=s.kind, group=s.group, branch=s.branch, deps=s.deps)
                for n, s in self.steps.items()
            },
            model=self.model,
            sources={n: s.source for n, s in self.steps.items()},
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
        self.observers: list[ev.Observer] = [Recorder(self.run), *observers]
        self.values: dict[str, Any] = {}
        self.state = dict.fromkeys(self.steps, "pending")  # pending -> queued -> final
        self.remaining = {n: len(s.deps) for n, s in self.steps.items()}
        self.children: dict[str, list[str]] = {n: [] for n in self.steps}
        for n, s in sorted(self.steps.items(), key=lambda kv: kv[1].index):
            for d in s.deps:
                self.children[d].append(n)
        self.unfinished = len(self.steps)
        self.cancel_reason: str | None = None
        self.failed_stop = False
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.threads: set[concurrent.futures.Future[Any]] = set()  # steps now on a worker thread
        self._inbox: list[tuple[asyncio.Future[Any], concurrent.futures.Future[Any]]] = []
        self._inbox_lock = threading.Lock()
        self._drain_scheduled = False
        self.abandoned = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._pool: WorkerPool | None = None
        self._sems: dict[str | None, asyncio.Semaphore] = {}
        self._async_callees: dict[Any, bool] = {}

    # -- events -----------------------------------------------------------------
    def subscribe(self, observer: ev.Observer) -> None:
        """Add an observer before the run starts."""
        self.observers.append(observer)

    def emit(self, kind: str, step: str | None = None, **kw: Any) -> None:
        event = ev.Event(kind, step, time.time(), **kw)
        for observer in self.observers:
            try:
                observer(event)
            except Exception as exc:  # a display must never break a run
                self.observers = [o for o in self.observers if o is not observer]
                warnings.warn(f"observer {observer!r} raised {exc!r} and was removed", ObserverWarning, stacklevel=2)

    # -- the run ----------------------------------------------------------------
    async def execute(self) -> Run:
        """Run every step; return the :class:`Run` whatever happened to the steps."""
        self.loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        workers = 1 if self.settings.sequential else self.settings.workers
        self._sems[None] = asyncio.Semaphore(workers)
        for gname, group in self.groups.items():
            if group.workers:
                self._sems[gname] = asyncio.Semaphore(group.workers)
        self._pool = WorkerPool(self.name)
        self.emit(ev.RUN_STARTED, detail={"model": self.model, "steps": len(self.steps)})
        try:
            if self.settings.sequential:
                await self._sequential()
            else:
                for name in sorted(self.steps, key=lambda n: self.steps[n].index):
                    if self.remaining[name] == 0:
                        self._queue(name)
            if self.unfinished:
                try:
                    await asyncio.wait_for(self._done.wait(), self.settings.timeout)
                except asyncio.TimeoutError:
                    self._cancel(f"the run timed out after {self.settings.timeout:g} s")
                    await self._done.wait()
        except asyncio.CancelledError:
            # the caller's task was cancelled: settle every step, then let the cancel go on
            self._cancel("cancelled")
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
        self.abandoned += sum(1 for f in self.threads if not f.done())
        assert self._pool is not None
        # idle threads exit now; a thread still inside abandoned user code exits when that returns
        self._pool.shutdown(wait=self.abandoned == 0)
        if self.failed_stop or (self.cancel_reason is None and any(s == "failed" for s in self._statuses())):
            status = "failed"
        elif self.cancel_reason is not None:
            status = "cancelled"
        else:
            status = "succeeded"
        self.emit(
            ev.RUN_FINISHED,
            detail={"status": status, "reason": self.cancel_reason, "abandoned_threads": self.abandoned},
        )

    def _statuses(self) -> list[str]:
        return [r.status for r in self.run.steps.values()]

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel the run from any thread; finished results are kept."""
        loop = self.loop
        if loop is None or loop.is_closed():
            self.cancel_reason = self.cancel_reason or reason
            return
        with contextlib.suppress(RuntimeError):  # the loop has stopped: the run is over
            loop.call_soon_threadsafe(self._cancel, reason)

    def _cancel(self, reason: str) -> None:
        if self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        for task in self.tasks.values():
            if not task.done():
                task.cancel()
        for name in sorted(self.steps, key=lambda n: self.steps[n].index):
            if self.state[name] == "pending":
                self._settle(name, ev.CANCELLED, detail={"reason": reason})

    async def _sequential(self) -> None:
        for name in self.order:
            if self.cancel_reason is not None:
                break
            if self.state[name] == "pending" and self.remaining[name] == 0:
                self._queue(name)
                await self.tasks[name]

    # -- bookkeeping ------------------------------------------------------------
    def _queue(self, name: str) -> None:
        assert self.loop is not None
        self.state[name] = "queued"
        self.emit(ev.QUEUED, name)
        self.tasks[name] = self.loop.create_task(self._step(name))

    def _settle(self, name: str, kind: str, **kw: Any) -> None:
        if self.state[name] == "final":
            return
        self.state[name] = "final"
        self.emit(kind, name, **kw)
        self.unfinished -= 1
        if self.unfinished == 0 and self._done is not None:
            self._done.set()

    def _succeeded(self, name: str, value: Any, info: dict[str, Any]) -> None:
        self.values[name] = value
        self._settle(name, ev.FINISHED, value=value, detail=info or None)
        if self.cancel_reason is not None:
            return
        for child in self.children[name]:
            self.remaining[child] -= 1
            if self.remaining[child] == 0 and self.state[child] == "pending" and not self.settings.sequential:
                self._queue(child)

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
            self._cancel(f"'{name}' failed and on_error is 'stop'")

    # -- one step ---------------------------------------------------------------
    def _slots(self, step: Step) -> _Slots:
        chain: list[asyncio.Semaphore] = []
        group = step.group
        while group is not None:
            if group in self._sems:
                chain.append(self._sems[group])
            group = self.groups[group].parent
        chain.reverse()
        chain.append(self._sems[None])
        return _Slots(chain)

    def _lookup(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        group = self.groups.get(name)
        if group is not None and group.named:
            return {m: self.values[m] for m in group.members}
        return self.inputs[name]

    async def _step(self, name: str) -> None:
        step = self.steps[name]
        code = self.code[name]
        key = self.keys.get(name)
        if key is not None and name not in self.force:
            assert self.cache is not None
            hit = self.cache.get(key)
            if hit is not MISS:
                value, kept = hit
                self._succeeded(name, value, {**kept, "cached": True})
                return
        info: dict[str, Any] = {}
        try:
            ns = namespace(code.reads, self._lookup, self._blocking_llm(name, info))
            if step.kind == "map":
                value = await self._map(step, ns)
            else:
                async with self._slots(step):
                    value = await self._attempts(name, step, code.expr, ns, info)
        except asyncio.CancelledError:
            self._settle(name, ev.CANCELLED, detail={"reason": self.cancel_reason or "cancelled"})
            return
        except Exception as exc:
            self._failed(name, exc, info)
            return
        if key is not None:
            assert self.cache is not None
            kept = {"llm": info["llm"]} if "llm" in info else {}  # what a cached step still shows
            note = self.cache.put(key, (value, kept))
            if note:
                self.run.steps[name].cache_note = note
        self._succeeded(name, value, info)

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
            delay = getattr(error, "retry_after", None) or opts.backoff * 2 ** (attempt - 1)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))

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

    async def _evaluate(self, label: str, code: Code, ns: dict[str, Any], info: dict[str, Any]) -> Any:
        if code.llm:  # evaluate the call's arguments only; the prompt is sent from the loop
            ns = {**ns, "llm": deferred_llm}
        if where(code, ns, self._async_callees) == "loop":
            value = eval(code.code, ns)
        else:
            info["thread"] = True
            value = await self._in_thread(eval, code.code, ns)
        if isinstance(value, LLMCall):
            return await self._call_llm(label, value, info)
        if inspect.isawaitable(value):
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
            self.emit(ev.TEXT, label, detail=shown)

        try:
            response = await answer(provider_for(model), request, on_text)
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

    async def _map(self, step: Step, ns: dict[str, Any]) -> list[Any]:
        code = self.code[step.name]
        assert code.bindings is not None
        async with self._slots(step):
            self.emit(ev.STARTED, step.name, attempt=1)
            bindings = await self._evaluate(step.name, code.bindings, ns, {})
        if len(bindings) > MAX_MAP_ELEMENTS:
            raise ValueError(
                f"'{step.name}' would expand to {len(bindings):,} elements; the limit is {MAX_MAP_ELEMENTS:,}"
            )
        self.emit(ev.EXPANDED, step.name, detail={"count": len(bindings)})
        elements = [
            asyncio.ensure_future(self._element(step, code.expr, i, dict(zip(code.targets, b, strict=False)), ns))
            for i, b in enumerate(bindings)
        ]
        try:
            outcomes = await asyncio.gather(*elements)
        except asyncio.CancelledError:
            for e in elements:
                e.cancel()
            raise
        results = [value for _, value in outcomes]
        failures = {i: value for i, (ok, value) in enumerate(outcomes) if not ok}
        if failures:
            raise MapError(step.name, results, failures)
        return results

    async def _element(
        self, step: Step, code: Code, index: int, loop_vars: dict[str, Any], ns: dict[str, Any]
    ) -> tuple[bool, Any]:
        label = f"{step.name}[{index}]"
        detail = {"map": step.name, "index": index, "kind": "llm" if code.llm else "call"}
        info: dict[str, Any] = {}
        self.emit(ev.QUEUED, label, detail=detail)
        try:
            async with self._slots(step):
                value = await self._attempts(label, step, code, {**ns, **loop_vars}, info, detail)
        except asyncio.CancelledError:
            self.emit(ev.CANCELLED, label, detail={**detail, "reason": self.cancel_reason or "cancelled"})
            raise
        except Exception as exc:
            self.emit(ev.FAILED, label, error=exc, detail={**detail, **info})
            return False, exc
        self.emit(ev.FINISHED, label, value=value, detail={**detail, **info})
        return True, value


__all__ = ["Execution", "LLMError", "MapError", "ObserverWarning", "StepTimeout"]
