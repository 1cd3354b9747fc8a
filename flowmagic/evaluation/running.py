"""Running an evaluation: every (variant, example) is a run of the flow, at most ``workers`` at
once across the whole evaluation, on one event loop, cached like any run (so re-evaluating after
editing one prompt runs only what the edit touched), then scored.

Everything is checked before anything runs: the data, the variants' inputs and settings, and
every name the flow reads (a column the flow needs and the data lacks is a
``FlowDefinitionError`` with a caret). A failed example is a failed row with its error. An
interrupt (or ``timeout``) cancels what has not finished; the rows that finished stay in
``flow.last_evaluation``. The previous finished evaluation of each flow is kept for comparison.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

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
    limit = workers or flow.settings.workers
    from ..engine.runner import LoopThread, wait_for

    runner = LoopThread()
    future = runner.submit(_all(flow, plans, named_scorers, ev, limit, show))
    try:
        wait_for(future, timeout)  # (in short waits: an interrupt lands at once)
        ev.status = "failed" if ev.failures else "succeeded"
    except concurrent.futures.TimeoutError:
        ev.status = "cancelled"
    except KeyboardInterrupt:
        ev.status = "cancelled"
        raise
    finally:
        if not future.done():
            future.cancel()  # (its task is cancelled on the loop: every run under way with it)
            with contextlib.suppress(BaseException):
                future.result(timeout=5)
        runner.stop()
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
        for index, example in enumerate(examples):
            given = {k: v for k, v in example.items() if k in inputs}
            resolved = flow.resolve_inputs({**given, **own_inputs})  # a missing column: an error with a caret
            plans.append((Row(variant, index, example), (run_settings, resolved)))
    return plans


async def _all(
    flow: Flow, plans: list[tuple[Row, Any]], scorers: dict[str, Any], ev: Evaluation, limit: int, show: Any
) -> None:
    gate = asyncio.Semaphore(max(1, limit))
    todo = iter(plans)

    async def worker() -> None:
        for row, (settings, inputs) in todo:
            async with gate:
                await _one(flow, row, settings, inputs, scorers)
            ev.rows.append(row)
            if show is not None:
                show()

    await asyncio.gather(*(worker() for _ in range(min(limit, len(plans)))))


async def _one(flow: Flow, row: Row, settings: Any, inputs: dict[str, Any], scorers: dict[str, Any]) -> None:
    from ..engine.cache import default_cache
    from ..engine.driver import Execution

    began = time.perf_counter()
    execution = Execution(flow.name, flow.compiled, inputs, settings, cache=default_cache)
    try:
        run = await execution.execute()
    finally:
        row.seconds = time.perf_counter() - began
    row.run = run
    row.status = str(run.status)
    row.tokens = run.tokens
    row.cost = run.cost
    row.cached = sum(r.cached for r in run.top_steps)
    finals = flow.final_steps
    row.outputs = dict(run.outputs)
    if run.status != "succeeded":
        failed = [(n, r) for n, r in run.steps.items() if r.status == "failed" and r.map is None]
        row.error = (
            f"{failed[0][0]}: {type(failed[0][1].error).__name__}: {failed[0][1].error}" if failed else run.status
        )
        return
    outputs = Outputs(run.outputs)
    outputs.final = row.outputs[finals[0]] if len(finals) == 1 else {s: row.outputs[s] for s in finals}
    for name, scorer in scorers.items():
        try:
            if isinstance(scorer, Judge):  # one more llm step, cached, kept out of the history
                asker = scorer.flow()
                asked = asker.resolve_inputs(scorer.inputs(row.example, outputs))
                judged = await Execution(
                    asker.name, asker.compiled, asked, asker.settings, cache=default_cache
                ).execute()
                value: Any = scorer.verdict(judged["verdict"])
            else:
                value = scorer(row.example, outputs)
            row.scores[name] = None if value is None else float(value)
        except Exception as exc:  # a scorer that raises scores nothing, and says why
            row.scores[name] = None
            row.error = f"scorer {name}: {type(exc).__name__}: {exc}"


__all__ = ["evaluate", "previous"]
