"""Which steps a rerun may reuse: the cache policy.

A rerun reuses ``llm`` steps and pure expressions (arithmetic, f-strings, indexing, and calls of
built-ins such as ``len`` or ``sorted``, of ``str`` methods, and of ``math``, ``json``, ``re`` and
friends) whose inputs are unchanged. A call of any other Python function, sync or async, runs
again: it may read the clock, the network, a file or a random generator, and the cache cannot
know. Opting in: ``@cache`` on the step, :func:`cacheable` on the function, or
``cache_calls=True`` for the whole flow. ``@cache(False)`` opts any step out.

What a step's calls call is read from its expression when the flow is compiled
(:func:`flowmagic.flow.expressions.callees`) and resolved against the run's inputs here, before
the run starts: nothing is evaluated, and an object's attributes are looked up only on modules.
"""

from __future__ import annotations

import builtins
import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..flow.compiled import CompiledStep
from ..flow.model import Step

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__flowmagic_cacheable__"

#: Built-ins whose result depends only on their arguments.
PURE_BUILTINS = frozenset(
    [
        "abs",
        "all",
        "any",
        "ascii",
        "bin",
        "bool",
        "bytes",
        "chr",
        "complex",
        "dict",
        "divmod",
        "enumerate",
        "float",
        "format",
        "frozenset",
        "hex",
        "int",
        "isinstance",
        "issubclass",
        "len",
        "list",
        "max",
        "min",
        "oct",
        "ord",
        "pow",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "slice",
        "sorted",
        "str",
        "sum",
        "tuple",
        "type",
        "zip",
    ]
)
#: Modules (by top-level package) whose functions depend only on their arguments.
PURE_MODULES = frozenset(
    ["math", "cmath", "json", "re", "textwrap", "string", "statistics", "operator", "unicodedata", "html", "base64"]
)
#: Methods that read their object and return a new value, on a value of unknown type (a step's,
#: a loop variable): every public ``str`` method. Not ``get``: on a step's value that could be an
#: HTTP client's, and a wrongly reused value costs more than a cheap expression run again.
PURE_METHODS = frozenset(n for n in dir(str) if not n.startswith("_"))
#: ... and on an input known to be a plain value (a dict, a list): its reading methods too.
_READING = PURE_METHODS | frozenset(["get", "keys", "values", "items", "copy", "count", "index"])
_VALUES = (str, bytes, int, float, complex, bool, tuple, frozenset, list, dict, set)


def cacheable(fn: F) -> F:
    """Mark a function whose result depends only on its arguments: a step calling it is reused
    on a rerun when its inputs are unchanged, as if the step had ``@cache``.

    >>> @flowmagic.cacheable
    ... def word_count(text): return len(text.split())
    """
    setattr(fn, _MARK, True)
    return fn


def not_reused(step: Step, compiled: CompiledStep, inputs: Mapping[str, Any], cache_calls: bool) -> str | None:
    """Why a rerun runs ``step`` again whatever its inputs (a note for the user), or None when
    it may be reused."""
    if step.kind == "loop":  # its iterations' steps are reused one by one
        return "runs every time: a loop (each iteration's steps are reused on their own)"
    if step.options.cache is not None:
        return None if step.options.cache else "not cached: @cache(False)"
    if cache_calls or step.kind == "join":
        return None
    for callee in compiled.callees:
        if not _pure(callee, inputs):
            shown = callee.lstrip(".") or "a computed function"
            return f"runs every time: it calls {shown}() (@cache on the step, or @flowmagic.cacheable on it, reuses it)"
    return None


def _pure(callee: str, inputs: Mapping[str, Any]) -> bool:
    if callee == "llm":
        return True
    if not callee:
        return False
    if callee.startswith("."):  # a method of a value computed in the expression
        return callee[1:] in PURE_METHODS
    head, *attrs = callee.split(".")
    if head not in inputs:  # a step's value, a map's loop variable, or a built-in
        if attrs:
            return len(attrs) == 1 and attrs[0] in PURE_METHODS
        return head in PURE_BUILTINS
    value = inputs[head]
    for i, attr in enumerate(attrs):
        if isinstance(value, _VALUES):
            return i == len(attrs) - 1 and attr in _READING
        if not isinstance(value, types.ModuleType):
            return False  # an object's attribute could be a property: nothing is looked up on it
        value = getattr(value, attr, None)
    return _pure_callable(value)


def _pure_callable(value: Any) -> bool:
    if getattr(value, _MARK, False) is True:
        return True
    name = getattr(value, "__name__", None)
    if name in PURE_BUILTINS and getattr(builtins, name) is value:
        return True
    if isinstance(value, type):  # a data class: building one computes nothing else
        return dataclasses.is_dataclass(value) or hasattr(value, "__pydantic_fields__")
    if not isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return False
    module = getattr(value, "__module__", None) or ""
    return module.partition(".")[0].lstrip("_") in PURE_MODULES
