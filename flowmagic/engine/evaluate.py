"""How one step's expression is evaluated: inline, on a worker thread, or awaited on the loop.

The scheduler decides *when* a step runs; this module decides *where* its code
runs. ``llm(...)`` calls become :class:`~flowmagic.llm.call.LLMCall` values that the
driver awaits on its event loop, so prompt steps never hold a thread.
"""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable
from types import CoroutineType, FunctionType
from typing import Any

from ..flow.compiled import Code

_BUILTINS = vars(builtins)


def namespace(
    reads: tuple[str, ...], lookup: Callable[[str], Any], llm: Any = None, binds: dict[str, str] | None = None
) -> dict[str, Any]:
    """The globals a step's code runs with: exactly the names it reads (``llm`` bound to ``llm``);
    ``binds`` says which step a name stands for where it is not the step of that name."""
    ns: dict[str, Any] = {"__builtins__": _BUILTINS}
    for name in reads:
        ns[name] = llm if name == "llm" else lookup(binds.get(name, name) if binds else name)
    return ns


def is_awaitable(value: Any) -> bool:
    """``inspect.isawaitable``, quick for coroutines and the plain values most steps return."""
    kind = type(value)
    return kind is CoroutineType or (kind not in _PLAIN and inspect.isawaitable(value))


_PLAIN = frozenset({type(None), bool, int, float, str, bytes, list, tuple, dict, set})


_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE


def is_async_callable(obj: Any) -> bool:
    if type(obj) is FunctionType and not hasattr(obj, "_is_coroutine_marker"):
        return bool(obj.__code__.co_flags & _ASYNC_FLAGS)  # a plain function: what inspect would say, quicker
    if inspect.iscoroutinefunction(obj) or getattr(type(obj), "__flowmagic_subflow__", False):
        return True  # (a flow called in a step is a subflow: the loop awaits its nested run)
    # an instance whose class defines ``async def __call__``
    return not inspect.isclass(obj) and inspect.iscoroutinefunction(getattr(type(obj), "__call__", None))  # noqa: B004


def place(code: Code, ns: dict[str, Any], known: dict[Any, bool]) -> str:
    """Where to evaluate ``code``: ``"inline"`` (no call at all: wherever the driver is),
    ``"loop"`` (an ``llm`` call or an async callee) or ``"thread"`` (a sync call).

    ``known`` remembers which callees are async, so the check runs once per callee.
    """
    if code.calls:
        return "thread"
    if code.llm:
        return "loop"
    if code.callee is None:
        return "inline"
    callee = eval(code.callee, ns)  # a name or an attribute: cheap
    try:
        is_async = known[callee]
    except KeyError:
        is_async = known[callee] = is_async_callable(callee)
    except TypeError:  # unhashable callee
        is_async = is_async_callable(callee)
    return "loop" if is_async else "thread"


def where(code: Code, ns: dict[str, Any], known: dict[Any, bool]) -> str:
    """:func:`place`, for code already on the loop: ``"loop"`` (evaluate it here) or ``"thread"``."""
    return "thread" if place(code, ns, known) == "thread" else "loop"
