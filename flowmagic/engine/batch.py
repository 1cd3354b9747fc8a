"""Batches: one flow over many rows of inputs, a bounded number at a time, results in row order.

``flow.batch(rows, executor="dask")`` (or ``"threads"``) runs the whole flow once per
row. On threads every row is a run on one event loop, at most ``in_flight`` at
once. On a cluster the rows travel in chunks: each chunk is one task that runs its
rows' flows one after another on a worker (threads there), at most ``in_flight``
chunks at once, so a hundred thousand rows cost a few hundred tasks, not a
hundred thousand. A worker that dies takes its chunk with it; the cluster runs
the chunk again elsewhere, or, past its limit, every row of it is reported failed.

Results come back as :class:`RowResult` in row order however the rows finish
(:func:`stream`), each with the values of the flow's final steps, or the first
error. A failed row never stops the others. Nothing is sent before every row and
every value the flow reads has been pickled, so a value that cannot travel is an
error naming the step that reads it, and the input.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import hashlib
import itertools
import math
import queue
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import NotSendableError
from ..flow import present
from .remote import Remote, check, dumps
from .workers import WorkerPool

if TYPE_CHECKING:
    from ..flow.flow import Flow

#: Rows per chunk at most, when the chunk size is left to the batch.
MAX_CHUNK = 256


@dataclass
class RowResult:
    """What one row's run gave: its final steps' values, or the first error."""

    index: int
    status: str  # "succeeded", "failed" or "cancelled"
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # "step: ErrorType: message"
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class Batch:
    """The rows of a batch, filled in row order as they finish (``flow.batch`` while it runs)."""

    def __init__(self, flow: str, total: int, executor: str, final_steps: Sequence[str]) -> None:
        self.flow = flow
        self.total = total
        self.executor = executor
        self.final_steps = tuple(final_steps)
        self.results: list[RowResult] = []
        self.started = time.time()
        self.finished: float | None = None
        self.failures = 0

    def add(self, result: RowResult) -> None:
        self.results.append(result)
        if not result.ok:
            self.failures += 1

    @property
    def done(self) -> int:
        return len(self.results)

    @property
    def values(self) -> list[dict[str, Any] | None]:
        """Each row's final values, None for a row that failed."""
        return [r.values if r.ok else None for r in self.results]

    @property
    def errors(self) -> dict[int, str]:
        """Row index -> what failed, for every row that did not succeed."""
        return {r.index: r.error or r.status for r in self.results if not r.ok}

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def status(self) -> str:
        if self.finished is None:
            return "running"
        if self.done < self.total:
            return "cancelled"
        return "failed" if self.failures else "succeeded"

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[RowResult]:
        return iter(self.results)

    def __getitem__(self, index: int) -> RowResult:
        return self.results[index]

    def progress(self) -> str:
        failed = f", {self.failures:,} failed" if self.failures else ""
        return f"{self.done:,} of {self.total:,} rows{failed} in {self.seconds:.1f} s on {self.executor}"

    def __repr__(self) -> str:
        return f"<Batch {self.flow!r} {self.status}: {self.progress()}>"

    def _repr_html_(self) -> str:
        return str(present.draw("batch", self))


# -- running ------------------------------------------------------------------------
def rows_of(flow: Flow, rows: Sequence[Mapping[str, Any]], inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each row's inputs (``inputs`` under every row), checked against the flow before anything runs."""
    from ..errors import did_you_mean

    known = flow.inputs
    checked = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"row {index} is a {type(row).__name__}; each row is a dict of the flow's inputs")
        for key in row:
            if key not in known:
                raise ValueError(
                    f"row {index}: '{key}' is not an input of flow '{flow.name}'.{did_you_mean(key, known)}"
                    f" Its inputs: {', '.join(known) or 'none'}"
                )
        checked.append({**inputs, **row})
    if checked:
        flow.resolve_inputs(checked[0])  # every other name the flow reads must exist
    return checked


async def run_rows(
    flow: Flow, rows: Sequence[tuple[int, dict[str, Any]]], in_flight: int, on_result: Callable[[RowResult], None]
) -> None:
    """Run the flow once per ``(index, inputs)`` row, ``in_flight`` at once, sharing one thread pool.

    ``in_flight`` runners each take the next row as they finish one, so a large batch
    makes no task per row up front.
    """
    from .driver import Execution

    settings = flow.settings.changed(executor="threads", cache=False)
    pool = WorkerPool(f"{flow.name}-rows")
    final = flow.final_steps
    todo = iter(rows)  # shared by the runners

    async def runner() -> None:
        for index, row in todo:
            execution = Execution(flow.name, flow.compiled, flow.resolve_inputs(row), settings, pool=pool)
            run = await execution.execute()
            on_result(_result(index, run, final))

    try:
        await asyncio.gather(*(runner() for _ in range(max(1, min(in_flight, len(rows))))))
    finally:
        pool.shutdown()


def _result(index: int, run: Any, final: Sequence[str]) -> RowResult:
    values = {s: run.outputs[s] for s in final if s in run.outputs}
    error = None
    for name, record in run.steps.items():
        if record.status == "failed" and record.map is None:
            error = f"{name}: {type(record.error).__name__}: {record.error}"
            break
    return RowResult(index, run.status, values, error, run.wall_time or 0.0)


def stream(
    flow: Flow,
    rows: list[dict[str, Any]],
    remote: Remote | None,
    in_flight: int | None = None,
    chunk: int | None = None,
) -> Generator[RowResult, None, None]:
    """Every row's :class:`RowResult`, in row order, as soon as it and the rows before it are done.

    Closing the iterator early (an interrupt, a ``break``) cancels what has not finished. On a
    cluster every row is pickled here, before this returns: a value that cannot travel raises
    :class:`NotSendableError` now, not at the first ``next()``.
    """
    if remote is None:
        return _on_threads(flow, rows, in_flight or flow.settings.workers)
    return _on_cluster(flow, rows, remote, in_flight, chunk)


def _on_threads(flow: Flow, rows: list[dict[str, Any]], in_flight: int) -> Generator[RowResult, None, None]:
    from .runner import LoopThread

    results: queue.SimpleQueue[RowResult | BaseException | None] = queue.SimpleQueue()

    async def everything() -> None:
        try:
            await run_rows(flow, list(enumerate(rows)), in_flight, results.put)
        except BaseException as exc:
            results.put(exc)
            raise
        results.put(None)

    runner = LoopThread()  # its own: a batch may leave rows to wind down as it closes
    future = runner.submit(everything())
    try:
        yield from _in_order(_until_none(results), len(rows))
    finally:
        future.cancel()
        runner.stop()


def _until_none(results: queue.SimpleQueue[RowResult | BaseException | None]) -> Iterator[RowResult]:
    while True:
        try:
            item = results.get(timeout=0.1)  # short waits, so an interrupt lands
        except queue.Empty:
            continue
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _in_order(results: Iterator[RowResult], total: int) -> Iterator[RowResult]:
    """Rows as they finish, re-ordered: each is yielded once every row before it has been."""
    waiting: dict[int, RowResult] = {}
    following = 0
    for result in results:
        waiting[result.index] = result
        while following in waiting:
            yield waiting.pop(following)
            following += 1
    assert following == total, f"{total - following} rows never finished"


# -- on a cluster ---------------------------------------------------------------------
def _on_cluster(
    flow: Flow, rows: list[dict[str, Any]], remote: Remote, in_flight: int | None, chunk: int | None
) -> Generator[RowResult, None, None]:
    """Pickle every chunk (raising :class:`NotSendableError` before anything is sent), then send them."""
    slots = remote.slots
    size = chunk or max(1, min(MAX_CHUNK, math.ceil(len(rows) / (slots * 8))))
    limit = in_flight or 2 * slots
    shared = _shared_payload(flow, rows)
    chunks = []
    for start in range(0, len(rows), size):
        part = list(enumerate(rows[start : start + size], start))
        try:
            chunks.append((part, dumps(part)))
        except Exception as exc:
            raise _unsendable_row(flow, part, exc) from None
    return _send_chunks(flow.name, remote, shared, chunks, limit, len(rows))


def _send_chunks(
    name: str,
    remote: Remote,
    shared: bytes,
    chunks: Sequence[tuple[list[tuple[int, dict[str, Any]]], bytes]],
    limit: int,
    total: int,
) -> Generator[RowResult, None, None]:
    """Send the pickled chunks, at most ``limit`` at once, and yield their rows in row order."""
    token = uuid.uuid4().hex[:8]
    pending = iter(chunks)
    running: dict[concurrent.futures.Future[Any], list[tuple[int, dict[str, Any]]]] = {}

    def send_more() -> None:
        for part, payload in itertools.islice(pending, limit - len(running)):
            key = f"{name}-rows-{part[0][0]}-{token}"
            running[remote.submit(key, run_chunk, dumps((shared, payload)))] = part

    def finished() -> Iterator[RowResult]:
        send_more()
        while running:
            done, _ = concurrent.futures.wait(running, timeout=0.1, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                part = running.pop(future)
                error = future.exception()
                if error is None:
                    yield from future.result()
                else:  # the chunk itself failed (its worker died too often, say): its rows are reported
                    text = f"{type(error).__name__}: {error}"
                    yield from (RowResult(i, "failed", error=f"chunk of rows {part[0][0]}-{part[-1][0]}: {text}")
                                for i, _ in part)
            send_more()

    try:
        yield from _in_order(finished(), total)
    finally:
        if running:
            remote.cancel(list(running))


def _shared_payload(flow: Flow, rows: list[dict[str, Any]]) -> bytes:
    """The flow and the values every row reads that no row gives, pickled once; checked name by name."""
    given = {k for row in rows for k in row}
    resolved = flow.resolve_inputs(rows[0] if rows else {})
    shared = {k: v for k, v in resolved.items() if k not in given and vars(builtins).get(k, None) is not v}
    for name, value in shared.items():
        check(_reader(flow, name), name, value)
    return dumps((flow.source, flow.name, flow.settings.model_dump(), shared))


def _reader(flow: Flow, name: str) -> str:
    """The first step that reads input ``name`` (the flow's name if none does)."""
    return next((s for s, step in flow.steps.items() if name in step.inputs), flow.name)


def _unsendable_row(flow: Flow, part: list[tuple[int, dict[str, Any]]], exc: BaseException) -> NotSendableError:
    for index, row in part:
        for name, value in row.items():
            try:
                check(flow.name, name, value)
            except NotSendableError:
                return NotSendableError(
                    f"row {index}: input '{name}' (a {type(value).__name__}, read by step "
                    f"'{_reader(flow, name)}') cannot be pickled, so the batch cannot run on the "
                    f"cluster ({type(exc).__name__}: {exc}). Nothing was sent."
                )
    return NotSendableError(f"the rows cannot be pickled ({type(exc).__name__}: {exc}); nothing was sent")


_flows: dict[str, Flow] = {}


def run_chunk(payload: bytes) -> list[RowResult]:
    """On a worker: run a chunk of rows, one after another, and return their results."""
    import pickle

    shared_payload, rows_payload = pickle.loads(payload)
    digest = hashlib.blake2b(shared_payload, digest_size=16).hexdigest()
    flow = _flows.get(digest)
    if flow is None:
        from ..flow.flow import Flow

        source, name, settings, shared = pickle.loads(shared_payload)
        flow = Flow.from_source(source, name=name, namespace=shared, **{**settings, "executor": "threads"})
        if len(_flows) > 8:
            _flows.clear()
        _flows[digest] = flow
    rows = pickle.loads(rows_payload)
    results: list[RowResult] = []
    asyncio.run(run_rows(flow, rows, 1, results.append))
    return results
