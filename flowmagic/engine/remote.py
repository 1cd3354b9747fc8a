"""What crosses the wire when a step runs on a cluster, and the contract a cluster backend keeps.

A step sent away travels as one payload: its compiled expression and the values
of exactly the names it reads, pickled with ``cloudpickle`` (so functions defined
in a notebook travel by value). Pickling happens here, in the kernel, before
anything is sent, so a value that cannot travel is a :class:`NotSendableError`
naming the step and the name, not a failure somewhere on a worker.

A backend (:mod:`flowmagic.backends.dask`) only has to run a function of this
package (:func:`evaluate`, or a batch's chunk) on a payload somewhere and hand
back a ``concurrent.futures.Future``.
"""

from __future__ import annotations

import builtins
import concurrent.futures
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any, Protocol

from ..errors import NotSendableError
from ..flow.compiled import CompiledFlow
from .evaluate import where

_BUILTINS = vars(builtins)


class Remote(Protocol):
    """Where steps run when they are not run on the kernel's threads."""

    @property
    def slots(self) -> int:
        """How many tasks the cluster runs at once (its worker threads)."""

    def submit(self, key: str, fn: Callable[[bytes], Any], payload: bytes) -> concurrent.futures.Future[Any]:
        """Run ``fn(payload)`` somewhere (:func:`evaluate`, say); ``key`` names it on the cluster's dashboard."""

    def cancel(self, futures: list[concurrent.futures.Future[Any]]) -> None:
        """Stop work submitted here that has not finished (forget it if it has started)."""


class Payload(bytes):
    """A packed step: bytes that do not print themselves (a worker's log shows the size, not the values)."""

    def __repr__(self) -> str:
        return f"<flowmagic payload: {len(self):,} bytes>"


def _dumps(value: Any) -> bytes:
    import cloudpickle  # the cluster backends bring it; only needed once a step is sent

    data: bytes = cloudpickle.dumps(value, protocol=5)
    return data


def check(step: str, name: str, value: Any) -> None:
    """Raise :class:`NotSendableError` if ``value`` (read by ``step`` as ``name``) cannot be pickled."""
    try:
        _dumps(value)
    except Exception as exc:
        raise _not_sendable(step, name, value, exc) from None


def dumps(value: Any) -> Payload:
    """``value`` pickled for the wire (a batch's rows, say); raises what pickling raises."""
    return Payload(_dumps(value))


def pack(step: str, code: CodeType, values: Mapping[str, Any]) -> bytes:
    """The payload for ``step``: its expression and the values it reads (``__builtins__`` left out)."""
    reads = {k: v for k, v in values.items() if k != "__builtins__"}
    try:
        return Payload(_dumps((code, reads)))
    except Exception as exc:
        for name, value in reads.items():  # which one? name it
            check(step, name, value)
        raise _not_sendable(step, "its code", None, exc) from None


def unsendable(flow: CompiledFlow, inputs: Mapping[str, Any], known: dict[Any, bool]) -> NotSendableError | None:
    """Before anything is sent: the error of the first step that would send an input that cannot travel.

    ``llm`` steps and async calls stay on the kernel's loop and send nothing; a step whose
    callee is another step's value is checked when it is sent. (Values made by steps are
    checked as each is sent.)
    """
    checked: set[str] = set()
    for name in flow.declared:
        code = flow.code[name]
        if flow.steps[name].kind == "llm" or "llm" in code.reads:
            continue
        reads = {r: inputs[r] for r in code.reads if r in inputs}
        try:
            if where(code.expr, {"__builtins__": _BUILTINS, **reads}, known) == "loop":
                continue
        except Exception:
            pass  # its callee is a step's value: it is checked when sent
        try:
            for read, value in reads.items():
                if read not in checked:
                    check(name, read, value)
                    checked.add(read)
        except NotSendableError as exc:
            return exc
    return None


def evaluate(payload: bytes) -> tuple[tuple[float, float], Any]:
    """On a worker: run a packed step; return when it began and ended (the worker's clock), and its value.

    A step may wait on the cluster for a free worker, and its value takes a while to come
    back: neither is the step's time.
    """
    import pickle
    import time

    code, reads = pickle.loads(payload)
    began = time.time()
    value = eval(code, {"__builtins__": _BUILTINS, **reads})
    return (began, time.time()), value


def _not_sendable(step: str, name: str, value: Any, exc: BaseException) -> NotSendableError:
    what = f"'{name}' (a {type(value).__module__}.{type(value).__qualname__})" if value is not None else name
    return NotSendableError(
        f"step '{step}' cannot run on the cluster: {what} cannot be pickled ({type(exc).__name__}: {exc}). "
        "A lock, an open file or a connection cannot travel: make it inside the function that uses it, "
        "or run on threads.",
        step=step,
    )
