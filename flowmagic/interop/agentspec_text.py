"""flowmagic DSL text written from an Agent Spec flow: fresh names, prompt templates, and
the statements (lines, ``parallel`` groups, ``if`` blocks, ``for`` loops) rendered as a cell.

Text from the file reaches the DSL only as identifiers (checked, see :class:`Names`) and
``repr()`` string literals.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Union

from .agentspec import AgentSpecError

Component = dict[str, Any]

RESERVED = frozenset({"llm", "parallel", "branch", "zip", "range"})  # DSL keywords, and builtins the text calls
_PLACEHOLDER = re.compile(r"{{\s*(\w+)\s*}}")
_TRAILING_NEWLINE = re.compile(r"(\r\n|\n|\r)\Z")


@dataclass
class Line:
    text: str
    decorators: str = ""


@dataclass
class Group:
    name: str | None  # None: an unnamed group, there only for its worker limit
    workers: int | None
    branches: list[tuple[str, list[Item]]]


@dataclass
class IfBlock:
    arms: list[tuple[str | None, list[Item]]]  # each arm's test (None: else) and its statements


@dataclass
class Loop:
    target: str
    rounds: int
    body: list[Item]


Item = Union[Line, Group, IfBlock, Loop]  # noqa: UP007 - a runtime alias, Python 3.10 too


@dataclass
class Translated:
    """The statements of one node, and the DSL name of each of its outputs (by output title)."""

    items: list[Item]
    outputs: dict[str, str]


@dataclass
class Names:
    used: set[str] = field(default_factory=set)
    tried: dict[str, int] = field(default_factory=dict)  # base -> the last suffix tried for it

    def new(self, wanted: str) -> str:
        """A fresh DSL identifier as close to ``wanted`` as possible."""
        base = re.sub(r"\W", "_", wanted.strip(), flags=re.ASCII).strip("_") or "value"
        if base[0].isdigit():
            base = "_" + base
        if keyword.iskeyword(base) or base in RESERVED:
            base += "_"
        # go on from the last suffix tried, so a thousand outputs of one name do not retry 1, 2, 3...
        name, n = base, self.tried.get(base, 1)
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.tried[base] = n
        self.used.add(name)
        return name


def describe(component: Component) -> str:
    return f"{component.get('component_type')} '{component.get('name')}'"


def titles(properties: Any) -> list[str]:
    return [str(p.get("title")) for p in properties or [] if isinstance(p, dict)]


def template(text: Any, node: Component, values: dict[str, str]) -> tuple[str, list[str]]:
    """An Agent Spec template (``{{name}}``) in flowmagic's syntax (``{name}``), and the DSL names it reads.

    As WayFlow renders it (with Jinja's defaults): one newline at its very end is dropped.
    """
    if not isinstance(text, str):
        raise AgentSpecError(f"{describe(node)}: its template is not a string")
    text = _TRAILING_NEWLINE.sub("", text, count=1)
    out: list[str] = []
    used: dict[str, None] = {}
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        out.append(literal(text[pos : match.start()], node))
        title = match.group(1)
        if title not in values:
            raise AgentSpecError(f"{describe(node)}: no value for placeholder '{title}'")
        out.append("{" + values[title] + "}")
        used[values[title]] = None
        pos = match.end()
    out.append(literal(text[pos:], node))
    return "".join(out), list(used)


def is_list_of(outer: dict[str, Any], inner: dict[str, Any]) -> bool:
    """Is a value of schema ``outer`` a list of ``inner`` values (so a map iterates over it)?"""
    if outer.get("type") != "array":
        return False
    return inner.get("type") != "array" or outer.get("items", {}).get("type") == "array"


def literal(text: str, node: Component) -> str:
    for tag in ("{{", "{%", "{#"):
        if tag in text:
            where = text.index(tag)
            raise AgentSpecError(
                f"{describe(node)}: its template uses {text[where : where + 24]!r}; flowmagic renders "
                "plain {{name}} placeholders only (no filters, attributes or control tags)"
            )
    return text.replace("{", "{{").replace("}", "}}")


def render(items: list[Item], indent: int) -> list[str]:
    """The statements as the lines of a cell, indented by ``indent`` spaces."""
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if isinstance(item, Line):
            if item.decorators:
                lines.append(pad + item.decorators)
            lines.append(pad + item.text)
            continue
        if isinstance(item, IfBlock):
            for number, (test, body) in enumerate(item.arms):
                word = "else" if test is None else "if" if number == 0 else "elif"
                lines.append(f"{pad}{word}{'' if test is None else ' ' + test}:")
                lines.extend(render(body, indent + 4))
            continue
        if isinstance(item, Loop):
            lines.append(f"{pad}for {item.target} in range({item.rounds}):")
            lines.extend(render(item.body, indent + 4))
            continue
        workers = f" (workers={item.workers})" if item.workers else ""
        lines.append(f"{pad}parallel{' ' + item.name if item.name else ''}{workers}:")
        for name, body in item.branches:
            if len(body) == 1:
                lines.extend(render(body, indent + 4))
            else:
                lines.append(f"{pad}    branch {name}:")
                lines.extend(render(body, indent + 8))
    return lines

