"""A JSON-ready instance of a pydantic model, built field by field from a source of leaf values.

:func:`instance` walks a model's required fields and their annotations: nested models, optionals and unions,
literals and enums, lists, sets, tuples and dicts, numbers with bounds, strings with lengths, dates, times and
UUIDs. At each leaf it asks the :class:`Leaves` it was given for a value, then fits the value to the field's
bounds; what the values say is up to the caller. Deeper than ``max_depth`` nested models, optional fields
get None and lists no items, so a recursive model ends.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import re
import types
import typing
import uuid
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

_T = TypeVar("_T")
_TIMES: dict[Any, str] = {dt.datetime: "2024-05-17T10:30:00", dt.date: "2024-05-17", dt.time: "10:30:00"}
_BOUNDS = ("ge", "gt", "le", "lt", "min_length", "max_length")
_LISTS = (list, set, frozenset, tuple, Sequence)


class Leaves(Protocol):
    """Where a model's values come from.

    ``leaf(kind, name, index)`` is the value of a leaf of ``kind`` "string", "number", "integer", "boolean" (read
    as yes when it starts with "yes" or "true") or "key" (of a dict), for the field ``name`` (in the singular
    for a list's items) at ``index`` in its list (0 outside lists). ``option`` picks one of a literal's or an
    enum's values and ``count`` says how many items a list should have."""

    def leaf(self, kind: str, name: str, index: int) -> str: ...

    def option(self, options: Sequence[_T]) -> _T: ...

    def count(self) -> int: ...


def instance(model: type[BaseModel], leaves: Leaves, max_depth: int = 4) -> Any:
    """A value for ``model`` made of ``leaves``, ready for ``json.dumps`` and, usually, valid for ``model``."""
    return _Walk(leaves, max_depth).value(model, "", 0, 0)


class _Walk:
    """One walk through a model: the leaves it asks, and how deep it may go."""

    def __init__(self, leaves: Leaves, max_depth: int) -> None:
        self.leaves, self.max_depth = leaves, max_depth

    def value(self, tp: Any, name: str, depth: int, index: int, meta: Sequence[Any] = ()) -> Any:
        """A value for the annotation ``tp`` of the field ``name``; ``meta`` holds its constraints."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        bounds = {k: getattr(m, k) for m in meta for k in _BOUNDS if getattr(m, k, None) is not None}
        if origin is typing.Annotated:
            return self.value(args[0], name, depth, index, [*meta, *args[1:]])
        if origin is typing.Union or origin is types.UnionType:
            options = [a for a in args if a is not type(None)]
            return self.value(options[0], name, depth, index, meta) if options and depth < self.max_depth else None
        if origin is typing.Literal:
            return self.leaves.option(args)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self.leaves.option(list(tp)).value
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = [(n, f) for n, f in tp.model_fields.items() if f.is_required()]
            return {f.alias or n: self.value(f.annotation, n, depth + 1, index, f.metadata) for n, f in fields}
        if origin is tuple and args and args[-1] is not Ellipsis:
            return [self.value(a, name, depth, index) for a in args]
        if origin in _LISTS or tp in _LISTS:
            return self.items(args[0] if args else str, re.sub(r"s$", "", name), depth, bounds)
        if origin is dict or tp is dict:
            keys = [self.leaves.leaf("key", name, i) for i in range(2)]
            return {key: self.value(args[1] if args else str, name, depth, index) for key in keys}
        if tp is bool:
            return self.leaves.leaf("boolean", name, index).lower().startswith(("yes", "true"))
        if tp in (int, float, decimal.Decimal):
            return self.number(name, index, bounds, integer=tp is int)
        if tp is uuid.UUID:
            return str(uuid.UUID(bytes=hashlib.sha256(name.encode()).digest()[:16]))
        if tp in _TIMES:
            return _TIMES[tp]
        text = self.leaves.leaf("string", name, index)[: bounds.get("max_length")]
        return text.ljust(bounds.get("min_length", 0), ".")

    def items(self, tp: Any, name: str, depth: int, bounds: dict[str, Any]) -> list[Any]:
        """As many different items as the leaves ask for, within the list's bounds (none below the depth)."""
        wanted = min(self.leaves.count(), bounds.get("max_length", 20))
        count = 0 if depth >= self.max_depth else max(bounds.get("min_length", 0), wanted)
        items: list[Any] = []
        for index in range(count * 5):  # repeats are drawn again: sets refuse them, and lists of twins look broken
            if len(items) == count:
                break
            if (item := self.value(tp, name, depth, index)) not in items:
                items.append(item)
        return items

    def number(self, name: str, index: int, bounds: dict[str, Any], integer: bool) -> float | int:
        """The leaves' number for ``name`` (0 if they give none), moved inside the field's bounds."""
        text, step = self.leaves.leaf("integer" if integer else "number", name, index), 1 if integer else 0.01
        value = float(text) if re.fullmatch(r"-?\d+(?:\.\d+)?", text.strip()) else 0.0
        if (low := bounds.get("ge", bounds.get("gt"))) is not None:
            value = max(value, low + step * ("gt" in bounds))
        if (high := bounds.get("le", bounds.get("lt"))) is not None:
            value = min(value, high - step * ("lt" in bounds))
        return int(value) if integer else float(value)
