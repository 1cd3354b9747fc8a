"""Prompt templates: ``{name}``, ``{name.attr}``, ``{name[0]}``, ``{name["key"]}``; never dunders.

A field may end with a conversion (``!r``, ``!s``, ``!a``) and a format spec
(``{score:.2f}``), whose width and precision are at most ``MAX_FORMAT_WIDTH``:
``{x:>999999999}`` would build a gigabyte string per render.

Pure string work, shared by the compiler (to find a prompt's dependencies and
refuse a bad template before anything runs) and the executor (to render it).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([^\[\]]+)\]")
#: The widest width or precision a format spec may ask for (a padded table column, not a gigabyte).
MAX_FORMAT_WIDTH = 10_000
CONVERSIONS = ("r", "s", "a")
# the start of Python's standard format spec: [[fill]align][sign][z][#][0][width][grouping][.precision]
_SPEC_NUMBERS = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d*))?", re.DOTALL)


class TemplateError(ValueError):
    """A placeholder that is not allowed; ``offset`` is its position in the template."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class Placeholder:
    field: str  # e.g. "user.name" or "items[0]"
    root: str  # the name it starts with
    path: tuple[tuple[str, Any], ...]  # ("attr", "name") or ("item", 0 | "key")
    offset: int  # where "{field" starts in the template


def placeholders(template: str) -> list[Placeholder]:
    """Parse the placeholders of ``template``; raise ``TemplateError`` for a bad one."""
    result: list[Placeholder] = []
    offset = 0
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"bad template: {exc} (write {{{{ and }}}} for literal braces)") from None
    for literal, field, spec, conversion in parsed:
        offset += len(literal) + literal.count("{") + literal.count("}")  # '{{' and '}}' came back as one
        if field is None:
            continue
        where = template.find("{" + field, offset)
        where = offset if where < 0 else where
        result.append(_placeholder(field, where))
        if spec and "{" in spec:
            raise TemplateError(f"nested placeholders are not supported in {{{field}:{spec}}}", where)
        if conversion is not None and conversion not in CONVERSIONS:
            raise TemplateError(
                f"unknown conversion '!{conversion}' in {{{field}!{conversion}}}: use !r, !s or !a", where
            )
        problem = spec_problem(spec or "")
        if problem:
            raise TemplateError(f"{problem} in {{{field}:{spec}}}", where)
        # never past the field's real end (a '{x:}' comes back with the same empty spec as '{x}'),
        # so the next find starts at or before its field and never rescans the rest of the text
        offset = where + 2 + len(field) + (len(conversion) + 1 if conversion else 0) + (len(spec) + 1 if spec else 0)
    return result


def spec_problem(spec: str) -> str | None:
    """What is wrong with a format spec's width or precision, or None.

    Only the numbers Python's standard spec would read are checked: a spec of
    another kind (``{when:%Y-%m-%d}``) is for its value's own ``__format__``.
    """
    match = _SPEC_NUMBERS.match(spec)
    assert match is not None  # every part of the pattern is optional
    for part in ("width", "precision"):
        digits = (match.group(part) or "").lstrip("0")
        # compare by length first: int() of thousands of digits is refused (or slow) on its own
        if digits and (len(digits) > len(str(MAX_FORMAT_WIDTH)) or int(digits) > MAX_FORMAT_WIDTH):
            return f"a format {part} above {MAX_FORMAT_WIDTH:,}"
    return None


def _placeholder(field: str, offset: int) -> Placeholder:
    root_match = _ROOT.match(field)
    if not root_match:
        hint = "write {name}" if not field else f"{{{field}}} is not a name"
        raise TemplateError(f"placeholders must name a value: {hint} (write {{{{ and }}}} for literal braces)", offset)
    root = root_match.group()
    path: list[tuple[str, Any]] = []
    rest = field[root_match.end() :]
    pos = 0
    while pos < len(rest):
        m = _PART.match(rest, pos)
        if not m:
            raise TemplateError(f"cannot read placeholder {{{field}}}", offset)
        if m.group(1) is not None:
            path.append(("attr", m.group(1)))
        else:
            key = m.group(2).strip()
            if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
                key_value: Any = key[1:-1]
            elif key.lstrip("-").isdigit():
                key_value = int(key)
            else:
                key_value = key
            path.append(("item", key_value))
        pos = m.end()
    if any(isinstance(part, str) and part.startswith("__") for part in [root, *(p for _, p in path)]):
        raise TemplateError(f"placeholder {{{field}}} reaches a dunder name, which is not allowed", offset)
    return Placeholder(field=field, root=root, path=tuple(path), offset=offset)


class _SafeFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        # a template built at run time was not checked when the flow was defined
        problem = spec_problem(format_spec)
        if problem:
            raise TemplateError(f"{problem}: {format_spec!r}")
        if not format_spec:
            value = as_text(value)
        return super().format_field(value, format_spec)

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        ph = _placeholder(field_name, 0)
        value = self.get_value(ph.root, args, kwargs)
        for kind, key in ph.path:
            value = getattr(value, key) if kind == "attr" else value[key]
        return value, ph.root


def as_text(value: Any) -> Any:
    """How a value reads in a prompt: a dict, list or tuple, or a pydantic model, as JSON (what
    a model reads best, and what WayFlow writes), else the value itself (``str`` then formats it).
    A container that is not JSON (a set, an object inside) falls back to ``str``.

    >>> as_text({"name": "Alice", "tags": ("a", "b")}), as_text(["é"]), as_text(3), as_text({1, 2})
    ('{"name": "Alice", "tags": ["a", "b"]}', '["é"]', 3, {1, 2})
    """
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            return value
    dump = getattr(type(value), "model_dump_json", None)
    if callable(dump):
        try:
            return str(dump(value))
        except Exception:  # a model with a field JSON cannot write
            return value
    return value


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``template`` from ``values``.

    >>> render("Hello {user.name}, item {items[0]}", {"user": type("U", (), {"name": "Ada"}), "items": ["tea"]})
    'Hello Ada, item tea'
    >>> render("User: {user}", {"user": {"name": "Alice"}})
    'User: {"name": "Alice"}'
    """
    return _SafeFormatter().vformat(template, (), dict(values))
