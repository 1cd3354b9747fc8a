"""A cheap estimate of the bytes a value holds, for the memory budgets of the cache and the history.

The estimate never walks a big structure: it looks at most :data:`SAMPLE` items of
each container, at most :data:`DEPTH` levels down and :data:`VISITS` objects in all,
and scales what it saw by the container's length. Objects that report their own
size (``nbytes`` on arrays and series, ``__sizeof__`` on data frames) are taken at
their word. Objects seen twice count once. It is an estimate for deciding what to
evict, not an accounting: it errs on the side of a value's dominant buffers.
"""

from __future__ import annotations

import itertools
import sys
import types
from collections import deque
from collections.abc import Iterable
from typing import Any

#: Items of one container looked at; the rest are assumed to be like them.
SAMPLE = 32
#: Levels of nesting looked into.
DEPTH = 6
#: Objects looked at in all, per estimate.
VISITS = 2000

_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None))
_SEQUENCES = (list, tuple, set, frozenset, deque)
_OBJECT_SIZEOF = object.__sizeof__
# code and classes are shared by everything, not held by one value: their size alone
_SHARED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def size_of(value: Any) -> int:
    """Roughly how many bytes ``value`` keeps alive, in microseconds even for huge values."""
    return _Estimate().size(value, 0)


class _Estimate:
    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.visits = VISITS

    def size(self, value: Any, depth: int) -> int:
        if id(value) in self.seen:
            return 0
        self.seen.add(id(value))
        self.visits -= 1
        own = _own(value)
        if own is not None:
            return own
        try:
            size = sys.getsizeof(value)
        except Exception:  # a broken __sizeof__ must not break a run
            size = 64
        if isinstance(value, (*_ATOMS, *_SHARED)) or depth >= DEPTH or self.visits <= 0:
            return size
        if isinstance(value, dict):
            return size + self.items(dict.items(value), len(value), depth, pairs=True)
        if isinstance(value, _SEQUENCES):
            return size + self.items(value, len(value), depth)
        if getattr(type(value), "__sizeof__", None) is not _OBJECT_SIZEOF:
            return size  # it counts what it holds itself (a data frame does)
        fields = getattr(value, "__dict__", None)
        if isinstance(fields, dict):
            size += self.size(fields, depth + 1)
        return size

    def items(self, items: Iterable[Any], length: int, depth: int, pairs: bool = False) -> int:
        """The sampled items' sizes, scaled up to all ``length`` of them."""
        try:
            sample = list(itertools.islice(items, SAMPLE))
        except RuntimeError:  # changed while looked at (a run still adding outputs): it is measured again later
            return 0
        total = looked = 0
        for item in sample:
            if self.visits <= 0:
                break
            if pairs:
                total += self.size(item[0], depth + 1) + self.size(item[1], depth + 1)
            else:
                total += self.size(item, depth + 1)
            looked += 1
        if looked == 0:
            return 0
        return total * length // looked


def _own(value: Any) -> int | None:
    """The size an array-like reports (``nbytes``), looked up on its type so no ``__getattr__`` runs."""
    if isinstance(value, _ATOMS) or getattr(type(value), "nbytes", None) is None:
        return None
    try:
        nbytes = value.nbytes
    except Exception:
        return None
    return nbytes if isinstance(nbytes, int) and nbytes >= 0 else None
