"""An imported Agent Spec document, kept within bounds of depth and size.

A document is a graph, not a tree: a YAML alias is the same object wherever it
appears, and a ``$component_ref`` names a component defined once in
``$referenced_components``. Copying at each use, as a tree walk does, costs
10^n for a 400-byte file of n nested aliases ("billion laughs"); YAML's merge
keys (``<<: *a``) copy inside the YAML loader itself; and the loaders and tree
walks recurse once per level. So, before the translation reads anything:

- YAML text is read as a stream of events first (no recursion, nothing built):
  past ``MAX_DOCUMENT_DEPTH`` levels, or past ``MAX_DOCUMENT_VALUES`` values with
  every alias counted at its full size each time it is used, it is refused;
- references are then resolved walking each object once and sharing, never
  copying, what is used twice, while the size and depth of the tree the
  document stands for are computed from the graph: the same two limits apply.

The size counts what the translation will read: an alias or a reference counts
its whole component each time it is used, except the ends of an edge
(``from_node``, ``to_node``, ``source_node``, ``destination_node``), which the
translation reads only for their ``id`` (it finds the node itself in the flow's
``nodes``), so a node that many edges touch is not counted many times over.
Past a limit the error is an ``AgentSpecError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .agentspec import AgentSpecError

#: Levels of lists and mappings, references followed (JSON's own parser stops near 1,000).
MAX_DOCUMENT_DEPTH = 200
#: Values in the tree the document stands for, aliases and references expanded.
MAX_DOCUMENT_VALUES = 250_000

EDGE_ENDS = frozenset({"from_node", "to_node", "source_node", "destination_node"})

TOO_DEEP = f"the Agent Spec document nests more than {MAX_DOCUMENT_DEPTH} levels deep"
TOO_BIG = (
    f"the Agent Spec document expands to more than {MAX_DOCUMENT_VALUES:,} values "
    "(its aliases and component references, each counted where it is used)"
)


class MissingReference(AgentSpecError):
    """A ``$component_ref`` to a component the document does not define (a credential the runtime
    would be given at load time, say)."""


def check_yaml(yaml: Any, text: str) -> None:
    """Refuse YAML text that nests too deeply or whose aliases expand too far, before it is loaded."""
    depth = 0
    count = 0  # values so far, each alias counted at the size of what it stands for
    open_anchors: list[tuple[str | None, int]] = []  # (anchor, count at its start) of each open collection
    sizes: dict[str, int] = {}  # the size of each finished anchored value
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:  # unknown, or still open: it would contain itself
                raise AgentSpecError(f"the YAML alias *{event.anchor} is used inside its own anchor, or before it")
            count += sizes[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            count += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DOCUMENT_DEPTH:
                raise AgentSpecError(TOO_DEEP)
            open_anchors.append((event.anchor, count))
            count += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, start = open_anchors.pop()
            if anchor is not None:
                sizes[anchor] = count - start
        if count > MAX_DOCUMENT_VALUES:
            raise AgentSpecError(TOO_BIG)


def resolve(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every ``$component_ref`` replaced by its component (shared, not copied)."""
    try:
        walked = _Resolver().walk(document, 1)
    except RecursionError:  # the depth limit keeps well inside Python's; a deep caller may not
        raise AgentSpecError(TOO_DEEP) from None
    assert isinstance(walked.value, dict)
    return walked.value


@dataclass(frozen=True)
class _Walked:
    value: Any  # with references resolved and ``$referenced_components`` dropped
    size: int  # values in the tree it stands for
    height: int  # levels in that tree (a scalar: 0)


_SCALAR = _Walked(None, 1, 0)


class _Resolver:
    def __init__(self) -> None:
        self.registry: dict[str, Any] = {}
        self.components: dict[str, _Walked | None] = {}  # None: being walked (a reference to it is a loop)
        self.objects: dict[int, _Walked | None] = {}  # by id(): a YAML alias is walked once, however often used

    def walk(self, value: Any, depth: int) -> _Walked:
        """``value`` resolved, at ``depth`` levels from the top (the top is 1)."""
        if not isinstance(value, (dict, list)):
            return _Walked(value, 1, 0)
        if depth > MAX_DOCUMENT_DEPTH:
            raise AgentSpecError(TOO_DEEP)
        key = id(value)
        if key in self.objects:
            done = self.objects[key]
            if done is None:
                raise AgentSpecError("the Agent Spec document contains itself (a YAML alias inside its own anchor)")
            return self._use(done, depth)
        self.objects[key] = None
        if isinstance(value, dict):
            self._declare(value)
        if isinstance(value, list):
            walked = self._list(value, depth)
        elif "$component_ref" in value:
            walked = self._reference(value["$component_ref"], depth)
        else:
            walked = self._mapping(value, depth)
        self.objects[key] = walked
        return walked

    def _list(self, value: list[Any], depth: int) -> _Walked:
        items, size, height = [], 1, 0
        for item in value:
            child = self.walk(item, depth + 1)
            items.append(child.value)
            size, height = self._grow(size, height, child)
        return _Walked(items, size, height + 1)

    def _declare(self, value: dict[Any, Any]) -> None:
        declared = value.get("$referenced_components") or {}
        if not isinstance(declared, dict):
            raise AgentSpecError("$referenced_components must map component ids to components")
        self.registry.update(declared)

    def _mapping(self, value: dict[Any, Any], depth: int) -> _Walked:
        resolved: dict[Any, Any] = {}
        size, height = 1, 0
        for k, v in value.items():
            if k == "$referenced_components":
                continue
            child = self.walk(v, depth + 1)
            resolved[k] = child.value
            if k in EDGE_ENDS and isinstance(v, dict) and "$component_ref" in v:
                child = _SCALAR  # read for its id only: see the module's docstring
            size, height = self._grow(size, height, child)
        return _Walked(resolved, size, height + 1)

    def _reference(self, ref: Any, depth: int) -> _Walked:
        if not isinstance(ref, str):
            raise AgentSpecError(f"a $component_ref names a component by its id, not {ref!r}")
        if ref not in self.components:
            if ref not in self.registry:
                raise MissingReference(f"the document refers to component {ref!r}, which it does not define")
            self.components[ref] = None
            # one level deeper than the reference: a chain of references to references stays bounded
            self.components[ref] = self.walk(self.registry[ref], depth + 1)
        done = self.components[ref]
        if done is None:
            raise AgentSpecError(f"component {ref!r} contains itself")
        return self._use(done, depth)

    @staticmethod
    def _use(done: _Walked, depth: int) -> _Walked:
        """A component walked before, used again at ``depth``: its tree must fit there too."""
        if depth - 1 + done.height > MAX_DOCUMENT_DEPTH:
            raise AgentSpecError(TOO_DEEP)
        return done

    @staticmethod
    def _grow(size: int, height: int, child: _Walked) -> tuple[int, int]:
        size += child.size
        if size > MAX_DOCUMENT_VALUES:  # a part too big makes the whole too big: stop at once
            raise AgentSpecError(TOO_BIG)
        return size, max(height, child.height)
