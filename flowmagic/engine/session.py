"""A flow's session: the runs of one :class:`~flowmagic.flow.flow.Flow`, and how they are started.

The flow is the definition (parsed, checked, drawn, exported); its session runs it and
remembers what ran: the last run, the background run, the last set of variants and the
last batch. ``Flow.run``, ``Flow.start``, ``Flow.map`` and ``Flow.batch`` are its session's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import did_you_mean
from ..flow import present
from ..flow.variants import SETTINGS, Variants, split
from .batch import Batch, RowResult, rows_of, stream
from .cache import default_cache
from .driver import Execution
from .events import Observer
from .history import default_history
from .record import Run
from .runner import CANCEL_GRACE, RunHandle, run_all_blocking, run_blocking

if TYPE_CHECKING:
    from ..flow.flow import Flow


class Session:
    """The runs of one flow: prepare, run, start in the background, cancel; variants and batches."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.last: Run | None = None  # the latest run (live while it goes on)
        self.handle: RunHandle | None = None  # the background run, if any
        self.variants: Variants | None = None  # the last flow.map()
        self.last_batch: Batch | None = None  # the last flow.batch(), filled in as rows finish
        self.last_evaluation: Any = None  # the last flow.evaluate(), filled in as runs finish

    # -- one run ----------------------------------------------------------------------
    def execution(
        self,
        inputs: Mapping[str, Any] | None = None,
        observers: Sequence[Observer] = (),
        rerun: Sequence[str] = (),
        **settings: Any,
    ) -> Execution:
        """Prepare one run (inputs resolved now) without starting it; ``rerun`` steps and their
        descendants run even when cached. It becomes the flow's last run and joins its history."""
        from ..backends import remote_for

        flow = self.flow
        run_settings = flow.settings.changed(**settings) if settings else flow.settings
        force = frozenset(flow.descendants(*rerun)) if rerun else frozenset()
        resolved = flow.resolve_inputs(inputs or {})
        remote = remote_for(run_settings.executor)
        earlier = default_history.entries(flow.name)
        execution = Execution(
            flow.name,
            flow.compiled,
            resolved,
            run_settings,
            observers,
            default_cache,
            force,
            remote,
            previous=earlier[-1].run if earlier else None,
        )
        execution.run.shape = flow.shape
        self.last = execution.run
        number = default_history.add(flow.name, execution.run)
        execution.on_end.append(functools.partial(default_history.over, flow.name, number))
        return execution

    def run(self, inputs: Mapping[str, Any], rerun: Sequence[str] = ()) -> Run:
        return run_blocking(self.execution(inputs, rerun=rerun))

    async def arun(self, inputs: Mapping[str, Any]) -> Run:
        return await self.execution(inputs).execute()

    def start(self, execution: Execution, on_done: Callable[[Run], None] | None = None) -> RunHandle:
        """Start a prepared execution in the background; :meth:`cancel` can stop it."""
        self.handle = RunHandle(execution, on_done=on_done)
        return self.handle

    def cancel(self) -> bool:
        """Cancel the background run, waiting a moment for it to settle; False if none was going on."""
        handle = self.handle
        if handle is None or handle.done():
            return False
        handle.cancel("cancelled by the user")
        handle.wait(CANCEL_GRACE)
        return True

    # -- variants: the flow once per set of inputs or settings, side by side ----------------
    def prepare_variants(
        self, variants: Iterable[Mapping[str, Any]], inputs: Mapping[str, Any] | None = None
    ) -> tuple[Variants, list[Execution]]:
        """The :class:`Variants` to be and one execution per variant, all checked before any runs."""
        flow = self.flow
        chosen = [dict(v) for v in variants]
        if not chosen:
            raise ValueError("flow.map() needs at least one variant")
        known = [*flow.inputs, *SETTINGS]
        for key in {k: None for v in chosen for k in v}:
            if key not in known:
                raise ValueError(
                    f"'{key}' is neither an input of flow '{flow.name}' nor a setting.{did_you_mean(key, known)}"
                )
        prepared = [split(variant) for variant in chosen]
        for own_inputs, settings in prepared:  # check them all first: nothing is recorded if one is wrong
            flow.settings.changed(**settings)
            flow.resolve_inputs({**(inputs or {}), **own_inputs})
        executions = [self.execution({**(inputs or {}), **own}, **settings) for own, settings in prepared]
        result = Variants(flow.name, chosen, [e.run for e in executions], flow.final_steps)
        self.variants = result
        return result, executions

    def map(self, variants: Iterable[Mapping[str, Any]], inputs: Mapping[str, Any]) -> Variants:
        result, executions = self.prepare_variants(variants, inputs)
        run_all_blocking(executions)  # an interrupt cancels them all; result keeps what finished
        return result

    # -- batches: the flow once per row of inputs, many rows ---------------------------------
    def imap(
        self,
        rows: Iterable[Mapping[str, Any]],
        executor: str,
        in_flight: int | None,
        chunk: int | None,
        inputs: Mapping[str, Any],
    ) -> Generator[RowResult, None, None]:
        from ..backends import remote_for

        for option, number in (("in_flight", in_flight), ("chunk", chunk)):
            if number is not None and (not isinstance(number, int) or number < 1):
                raise ValueError(f"{option} must be a whole number of at least 1, not {number!r}")
        self.flow.settings.changed(executor=executor)  # an unknown executor is refused here
        checked = rows_of(self.flow, list(rows), inputs)
        return stream(self.flow, checked, remote_for(executor), in_flight, chunk)

    def batch(
        self,
        rows: Iterable[Mapping[str, Any]],
        executor: str,
        in_flight: int | None,
        chunk: int | None,
        progress: bool | None,
        inputs: Mapping[str, Any],
    ) -> Batch:
        rows = list(rows)
        results = self.imap(rows, executor, in_flight, chunk, inputs)
        batch = self.last_batch = Batch(self.flow.name, len(rows), executor, self.flow.final_steps)
        show = present.draw("progress", batch) if progress is not False else None
        try:
            for result in results:
                batch.add(result)
                if show is not None:
                    show()
        finally:
            batch.finished = time.time()
            results.close()  # an interrupt: what has not finished is cancelled
            if show is not None:
                show(final=True)
        return batch


__all__ = ["Session"]
