"""Plain values as JSON: the on-disk form of cached values that needs no code to read back.

What counts as plain: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, and
lists, tuples and dicts of plain values, plus pydantic models. Types are matched
exactly (a ``str`` subclass or an ``OrderedDict`` is not plain), because a cached
value must come back as the very type the step returned. JSON has no tuples, bytes,
non-string keys or non-finite floats, so those are objects with one tag key::

    {"~t": [...]}             a tuple
    {"~b": "base64"}          bytes
    {"~d": [[key, value]]}    a dict whose keys are not all strings, or one starting with "~"
    {"~f": "nan"}             nan, inf or -inf
    {"~m": ["module:Name", data]}   a pydantic model: its class and ``model_dump(mode="json")``

Any other JSON object is a dict with string keys, none starting with ``~``, so a tag
is never mistaken for data. A model comes back only if its module is already
imported, the name there is a pydantic ``BaseModel`` subclass and the data
validates; nothing is imported and no other class is ever made. A model is stored
this way only if it comes back equal (else the caller pickles it instead).
"""

from __future__ import annotations

import base64
import json
import math
import sys
from typing import Any

from pydantic import BaseModel


class NotPlain(Exception):
    """The value has a part that JSON with these tags cannot hold faithfully."""


class Unreadable(Exception):
    """The data is not a value :func:`encode` wrote, or its model class is gone or refuses it."""


def encode(value: Any) -> bytes:
    """``value`` as UTF-8 JSON, or raise :class:`NotPlain`."""
    try:
        text = json.dumps(_plain(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        # lone surrogates are valid in a str and survive the round trip through surrogatepass
        return text.encode("utf-8", "surrogatepass")
    except NotPlain:
        raise
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. an int past the digit limit
        raise NotPlain(str(exc)) from None


def decode(data: bytes | memoryview) -> Any:
    """The value :func:`encode` wrote as ``data``, or raise :class:`Unreadable`."""
    try:
        return _value(json.loads(str(data, "utf-8", "surrogatepass"), parse_constant=_no_constant))
    except Unreadable:
        raise
    except Exception as exc:  # anything a malformed document provokes is the same answer
        raise Unreadable(f"{type(exc).__name__}: {exc}") from None


def _plain(value: Any) -> Any:
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"~f": repr(value)}
    if kind is list:
        return [_plain(v) for v in value]
    if kind is tuple:
        return {"~t": [_plain(v) for v in value]}
    if kind is bytes:
        return {"~b": base64.b64encode(value).decode("ascii")}
    if kind is dict:
        if all(type(k) is str and not k.startswith("~") for k in value):
            return {k: _plain(v) for k, v in value.items()}
        return {"~d": [[_plain(k), _plain(v)] for k, v in value.items()]}
    if isinstance(value, BaseModel):
        return {"~m": [_model_path(value), value.model_dump(mode="json", by_alias=True)]}
    raise NotPlain(f"{kind.__module__}.{kind.__qualname__} is not a plain value")


def _model_path(model: BaseModel) -> str:
    """Where the model's class can be found again; refuse a model that would not come back equal."""
    cls = type(model)
    path = f"{cls.__module__}:{cls.__qualname__}"
    if _model_class(path) is not cls:
        raise NotPlain(f"{cls.__qualname__} cannot be found by its name")
    try:
        again = cls.model_validate(model.model_dump(mode="json", by_alias=True))
    except Exception as exc:
        raise NotPlain(f"{cls.__qualname__} does not validate its own dump: {exc}") from None
    if again != model:
        raise NotPlain(f"{cls.__qualname__} does not come back equal from JSON")
    return path


def _model_class(path: str) -> type[BaseModel] | None:
    """The model class named ``module:Qual.Name``, looked up among imported modules only."""
    module_name, _, qualname = path.partition(":")
    found: Any = sys.modules.get(module_name)
    if found is None or not qualname or "<" in qualname:
        return None
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, BaseModel):
        return found
    return None


def _value(data: Any) -> Any:
    if isinstance(data, list):
        return [_value(v) for v in data]
    if not isinstance(data, dict):
        return data  # JSON's own scalars: None, bool, int, float, str
    if not any(k.startswith("~") for k in data):
        return {k: _value(v) for k, v in data.items()}
    if len(data) != 1:
        raise Unreadable("a tagged object has one key")
    [(tag, body)] = data.items()
    if tag == "~t" and isinstance(body, list):
        return tuple(_value(v) for v in body)
    if tag == "~b" and isinstance(body, str):
        return base64.b64decode(body, validate=True)
    if tag == "~f" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "~d" and isinstance(body, list):
        return dict(_pair(item) for item in body)
    if tag == "~m" and isinstance(body, list) and len(body) == 2 and isinstance(body[0], str):
        cls = _model_class(body[0])
        if cls is None:
            raise Unreadable(f"no pydantic model {body[0]} is imported")
        return cls.model_validate(body[1])
    raise Unreadable(f"unknown tag {tag!r}")


def _pair(item: Any) -> tuple[Any, Any]:
    if not (isinstance(item, list) and len(item) == 2):
        raise Unreadable("expected a [key, value] pair")
    return _value(item[0]), _value(item[1])


def _no_constant(name: str) -> Any:
    raise Unreadable(f"{name} is not JSON; non-finite floats are tagged")
