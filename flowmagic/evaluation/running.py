"""Running an evaluation: every (variant, example) is a run of the flow, at most ``workers`` at
once across the whole evaluation (a worker thread each, sharing one event loop for ``llm``
steps), cached like any run (so re-evaluating after editing one prompt runs only what the edit
touched), then scored.

Everything is checked before anything runs: the data, the variants' inputs and settings, and
every name the flow reads (a column the flow needs and the data lacks is a
``FlowDefinitionError`` with a caret). A failed example is a failed row with its error. An
interrupt (or ``timeout``) cancels what has not finished; the rows that finished stay in
``flow.last_evaluation``. The previous finished evaluation of each flow is kept for comparison.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..engine.cache import default_cache
from ..engine.driver import Execution
from ..engine.runner import CANCEL_GRACE, loops, run_on, wait_for
from ..errors import did_you_mean
from ..flow import present
from ..flow.variants import SETTINGS, split
from .data import load
from .report import Evaluation, Row
from .scorers import Judge, Outputs

if TYPE_CHECKING:
    from ..flow.flow import Flow

#: The last finished evaluation of each flow, by name: the next one is compared with it.
previous: dict[str, Evaluation] = {}


def evaluate(
    flow: Flow,
    data: Any,
    scorers: Mapping[str, Callable[..., Any]] | Sequence[Callable[..., Any]] | None = None,
    variants: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]] | None = None,
    workers: int | None = None,
    timeout: float | None = None,
    progress: bool | None = None,
) -> Evaluation:
    """Run ``flow`` on every example of ``data`` for every variant, score each run; see the module."""
    examples = load(data)
    named_scorers = _scorers(scorers)
    named_variants = _variants(flow, variants)
    plans = _plans(flow, examples, named_variants)  # everything checked: nothing has run yet
    ev = Evaluation(flow.name, list(named_variants), list(named_scorers), examples, previous.get(flow.name))
    flow.session.last_evaluation = ev
    show = present.draw("progress", ev) if progress is not False else None
    for scorer in named_scorers.values():
        if isinstance(scorer, Judge):
            scorer.flow()  # made once, before the workers share it
    runs = Workers(flow, plans, named_scorers, ev, show)
    reason = "cancelled"
    try:
        runs.start(workers or flow.settings.workers)  # (its first rows may finish before the last worker starts)
        wait_for(runs.ended, timeout)  # (in short waits: an interrupt lands at once)
        ev.status = "failed" if ev.failures else "succeeded"
    except concurrent.futures.TimeoutError:
        ev.status, reason = "cancelled", f"the evaluation timed out after {timeout:g} s"
    except KeyboardInterrupt:
        ev.status, reason = "cancelled", "interrupted"
        raise
    finally:
        runs.stop(reason)
        if show is not None:
            show(final=True)
    if ev.status != "cancelled":
        previous[flow.name] = ev
    return ev


def _scorers(scorers: Any) -> dict[str, Callable[..., Any]]:
    if scorers is None:
        return {}
    if isinstance(scorers, Mapping):
        found = dict(scorers)
    else:
        found = {}
        for scorer in scorers:
            name = getattr(scorer, "__name__", None) or type(scorer).__name__
            while name in found:
                name += "_"
            found[name] = scorer
    for name, scorer in found.items():
        if not callable(scorer):
            raise TypeError(f"scorer '{name}' is a {type(scorer).__name__}, not a function (example, outputs) -> score")
    return found


def _variants(flow: Flow, variants: Any) -> dict[str, dict[str, Any]]:
    if variants is None:
        return {"base": {}}
    if isinstance(variants, Mapping):
        named = {str(k): dict(v) for k, v in variants.items()}
    else:
        named = {f"v{i + 1}": dict(v) for i, v in enumerate(variants)}
    if not named:
        raise ValueError("an evaluation needs at least one variant (or variants=None for the flow as it is)")
    known = [*flow.inputs, *SETTINGS]
    for name, variant in named.items():
        for key in variant:
            if key not in known:
                hint = did_you_mean(key, known)
                raise ValueError(
                    f"variant '{name}': '{key}' is neither an input of flow '{flow.name}' nor a setting.{hint}"
                )
        flow.settings.changed(**split(variant)[1])  # a bad setting raises here
    return named


def _plans(flow: Flow, examples: list[dict[str, Any]], variants: dict[str, dict[str, Any]]) -> list[tuple[Row, Any]]:
    """Each run to make, as (its row, its prepared execution settings and inputs), all checked."""
    inputs = set(flow.inputs)
    plans = []
    for variant, values in variants.items():
        own_inputs, settings = split(values)
        run_settings = flow.settings.changed(**settings) if settings else flow.settings
        # the names found once per set of columns: an example adds its own values (unless one is a
        # flow, which the full check must see: a subflow may not call this flow)
        found: dict[frozenset[str], dict[str, Any]] = {}
        for index, example in enumerate(examples):
            given = {k: v for k, v in example.items() if k in inputs}
            columns = frozenset(given)
            base = found.get(columns)
            if base is None or any(getattr(type(v), "__flowmagic_subflow__", False) for v in given.values()):
                resolved = flow.resolve_inputs({**given, **own_inputs})  # a missing column: an error with a caret
                found.setdefault(columns, resolved)
            else:
                resolved = {k: v if k in own_inputs else given.get(k, v) for k, v in base.items()}
            plans.append((Row(variant, index, example), (run_settings, resolved)))
    return plans


class Workers:
    """The evaluation's worker threads, ``limit`` of them: each takes the next (variant, example),
    runs it to its end from its own thread (its sync steps there, one after another, its ``llm``
    steps on the evaluation's one loop), scores it, and takes the next. So a run of sync steps
    costs no hand-over between threads, and the limit holds across the whole evaluation."""

    def __init__(
        self, flow: Flow, plans: list[tuple[Row, Any]], scorers: dict[str, Any], ev: Evaluation, show: Any
    ) -> None:
        self.flow = flow
        self.todo = iter(plans)
        self.size = len(plans)
        self.scorers = scorers
        self.ev = ev
        self.show = show
        self.finals = flow.final_steps
        self.loop = loops.take()  # one loop for every run's llm steps and tasks
        self.live: set[Execution] = set()  # the runs under way, for stop() to cancel
        self.stopping = False
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._left = 0
        self.ended: concurrent.futures.Future[None] = concurrent.futures.Future()  # every worker is done

    def start(self, limit: int) -> None:
        self._left = min(max(1, limit), self.size)
        if not self._left:
            self.ended.set_result(None)
        for i in range(self._left):
            thread = threading.Thread(target=self._work, name=f"flowmagic-eval-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, reason: str) -> None:
        """Take no more rows, cancel the runs under way (the rows that finished stay), let them
        settle for a moment, and end any that would not."""
        with self._lock:
            self.stopping = True
            live = list(self.live)
        for execution in live:
            execution.cancel(reason)
        deadline = time.monotonic() + CANCEL_GRACE
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for execution in live:
            execution.end_now()
        loops.give(self.loop, healthy=not any(thread.is_alive() for thread in self._threads))

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    plan = None if self.stopping else next(self.todo, None)
                if plan is None:
                    return
                row, (settings, inputs) = plan
                try:
                    kept = self._one(row, settings, inputs)
                except Exception as exc:  # never a lost table: the row says what went wrong
                    row.status, row.error, kept = "failed", f"{type(exc).__name__}: {exc}", True
                if not kept:
                    return  # cancelled with the evaluation: it did not finish
                self.ev.rows.append(row)
                if self.show is not None:
                    self.show()
        finally:
            with self._lock:
                self._left -= 1
                if not self._left:
                    self.ended.set_result(None)

    def _run(self, flow: Any, settings: Any, inputs: dict[str, Any]) -> Any:
        """One run from this thread, to its end; None if the evaluation is stopping."""
        execution = Execution(flow.name, flow.compiled, inputs, settings, cache=default_cache)
        with self._lock:
            if self.stopping:
                return None
            self.live.add(execution)
        try:
            return run_on(execution, self.loop)
        finally:
            with self._lock:
                self.live.discard(execution)

    def _one(self, row: Row, settings: Any, inputs: dict[str, Any]) -> bool:
        """Run and score one row; False if the evaluation stopped it before it finished."""
        began = time.perf_counter()
        run = self._run(self.flow, settings, inputs)
        row.seconds = time.perf_counter() - began
        if run is None or (run.status == "cancelled" and self.stopping):
            return False
        row.run = run
        row.status = str(run.status)
        row.tokens = run.tokens
        row.cost = run.cost
        row.cached = sum(r.cached for r in run.top_steps)
        row.outputs = dict(run.outputs)
        if run.status != "succeeded":
            failed = [(n, r) for n, r in run.steps.items() if r.status == "failed" and r.map is None]
            row.error = (
                f"{failed[0][0]}: {type(failed[0][1].error).__name__}: {failed[0][1].error}" if failed else run.status
            )
            return True
        outputs = Outputs(run.outputs)
        finals = self.finals
        outputs.final = row.outputs[finals[0]] if len(finals) == 1 else {s: row.outputs[s] for s in finals}
        for name, scorer in self.scorers.items():
            try:
                value = self._judge(scorer, row, outputs) if isinstance(scorer, Judge) else scorer(row.example, outputs)
                row.scores[name] = None if value is None else float(value)
            except Exception as exc:  # a scorer that raises scores nothing, and says why
                row.scores[name] = None
                row.error = f"scorer {name}: {type(exc).__name__}: {exc}"
        return True

    def _judge(self, scorer: Judge, row: Row, outputs: Outputs) -> Any:
        """One more llm step, run and cached like any, kept out of the history."""
        asker = scorer.flow()
        judged = self._run(asker, asker.settings, asker.resolve_inputs(scorer.inputs(row.example, outputs)))
        if judged is None:
            raise RuntimeError("the evaluation stopped before the judge answered")
        if judged.status != "succeeded":
            raise RuntimeError(f"the judge's run {judged.status}")
        return scorer.verdict(judged["verdict"])


__all__ = ["evaluate", "previous"]
