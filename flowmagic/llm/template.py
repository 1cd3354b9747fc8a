"""Prompt templates: ``{name}``, ``{name.attr}``, ``{name[0]}``, ``{name["key"]}``; never dunders.

Pure string work, shared by the compiler (to find a prompt's dependencies) and
the executor (to render it).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([^\[\]]+)\]")


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
    for literal, field, spec, _conversion in parsed:
        offset += len(literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        where = template.find("{" + field, offset)
        where = offset if where < 0 else where
        result.append(_placeholder(field, where))
        if spec and "{" in spec:
            raise TemplateError(f"nested placeholders are not supported in {{{field}:{spec}}}", where)
        offset = where + 2 + len(field) + (len(spec) + 1 if spec else 0)
    return result


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
    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        ph = _placeholder(field_name, 0)
        value = self.get_value(ph.root, args, kwargs)
        for kind, key in ph.path:
            value = getattr(value, key) if kind == "attr" else value[key]
        return value, ph.root


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``template`` from ``values``.

    >>> render("Hello {user.name}, item {items[0]}", {"user": type("U", (), {"name": "Ada"}), "items": ["tea"]})
    'Hello Ada, item tea'
    """
    return _SafeFormatter().vformat(template, (), dict(values))
