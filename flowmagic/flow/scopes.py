"""Which step a name means where it is read: the scopes that ``if`` blocks open.

A flow assigns each name once, except in the arms of an ``if`` block, where each arm
may assign it again, and after a ``for`` loop whose body assigns it: the loop's value
then *shadows* the one before it, and a reader sees the latest assignment before it
(:meth:`Scope.resolve` with ``before``). Each arm is a :class:`Scope` inside the one around the block.
After the block, a name assigned in every arm (``else`` included) is one value, taken
from the chosen arm by a *join* step; a name assigned in only some arms cannot be read
outside them.

Every assignment and join is a :class:`Binding`; once all are known, each gets the
name of the unit that runs it (:func:`name_bindings`): the name itself for the one a
reader outside every block sees (and for a name bound once), ``name@LINE`` for the
others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..dsl.syntax import Pos


@dataclass(eq=False)
class Binding:
    """A name given a value: by a step line, or by a join after an ``if`` block."""

    name: str
    pos: Pos
    key: str = ""  # the unit's name, set by name_bindings
    order: int = 0  # where it stands among the flow's units (a reader after it sees it)


@dataclass(eq=False)
class Scope:
    """The top of the flow (``cond`` None) or one arm of an ``if`` block."""

    parent: Scope | None = None
    cond: str | None = None  # the unit of the block's condition
    names: dict[str, Binding] = field(default_factory=dict)
    partial: dict[str, int] = field(default_factory=dict)  # name -> line of the block that assigns it in some arms
    earlier: dict[str, list[Binding]] = field(default_factory=dict)  # bindings a loop's value shadowed

    def bound(self, name: str) -> Binding | None:
        """The binding of ``name`` here or around here, if any."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def conflict(self, name: str) -> str | None:
        """Why ``name`` cannot be assigned here, or None."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return f"step '{name}' is already defined on line {scope.names[name].pos.line}"
            if name in scope.partial:
                return f"step '{name}' is already defined in the 'if' block on line {scope.partial[name]}"
            scope = scope.parent
        return None

    def resolve(self, name: str, before: int | None = None) -> Binding | str | None:
        """The binding a read of ``name`` here means (by the unit at ``before``: the latest one
        before it, where a loop shadowed one); a message if it cannot be read here; None when no
        step assigns it (an input)."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                found = scope.names[name]
                if before is not None and found.order > before:
                    # a shadowed assignment that came before the reader, if any (else a step declared later)
                    found = next((b for b in reversed(scope.earlier.get(name, ())) if b.order < before), found)
                return found
            if name in scope.partial:
                return (
                    f"'{name}' is assigned in only some arms of the 'if' block on line {scope.partial[name]}, "
                    "so it has no value here: assign it in every arm (an 'else:' too)"
                )
            scope = scope.parent
        return None

    def declare(self, binding: Binding) -> None:
        self.names[binding.name] = binding

    def shadow(self, binding: Binding) -> None:
        """A loop's value of a name assigned before the loop: readers after the loop see it."""
        self.earlier.setdefault(binding.name, []).append(self.names[binding.name])
        self.names[binding.name] = binding


def name_bindings(bindings: list[Binding], top: Scope) -> None:
    """Give every binding its unit's name (see the module's docstring)."""
    count: dict[str, int] = {}
    for b in bindings:
        count[b.name] = count.get(b.name, 0) + 1
    for b in bindings:
        seen_from_top = top.names.get(b.name) is b
        b.key = b.name if seen_from_top or count[b.name] == 1 else f"{b.name}@{b.pos.line}"
