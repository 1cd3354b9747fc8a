"""A node's ``input_mapping`` and ``output_mapping``: WayFlow's renames of what a node reads and gives.

WayFlow writes them on its extended nodes (``ExtendedLlmNode``, ``ExtendedParallelMapNode``...)
and keeps them when it re-exports a plain node. Each maps a name inside the node (a prompt's
placeholder, a tool's parameter, a subflow's input or output, ``iterated_input``) to the name
the flow around it uses: the titles of the node's ``inputs`` and ``outputs`` and the ends of its
data edges. ``{"output": "summary"}`` exposes an LLM node's ``output`` as ``summary``. Only
renames are read: a mapping is a dict of names to names, anything else is an error.
"""

from __future__ import annotations

from collections.abc import Callable

from .agentspec import AgentSpecError
from .agentspec_text import Component, describe

MAPPINGS = ("input_mapping", "output_mapping")


def renames(node: Component, key: str) -> dict[str, str]:
    """The node's ``input_mapping`` or ``output_mapping`` (inside name -> outside name), checked."""
    found = node.get(key) or {}
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
        raise AgentSpecError(f"{describe(node)}: its {key} must map names to names (a rename), not {found!r}")
    return dict(found)


def outside(node: Component, key: str, inner: str) -> str:
    """The name the flow uses for the node's inside name ``inner``."""
    return renames(node, key).get(inner, inner)


def inside(node: Component, key: str, outer: str) -> str:
    """The node's inside name for the flow's name ``outer`` (the mapping read backwards)."""
    back = {v: k for k, v in renames(node, key).items()}
    return back.get(outer, outer)


def reading(node: Component, value: Callable[[str], str]) -> Callable[[str], str]:
    """What reads an input of ``node`` by its inside name (``value`` reads it by the flow's)."""
    mapping = renames(node, "input_mapping")
    if not mapping:
        return value
    return lambda inner: value(mapping.get(inner, inner))


__all__ = ["MAPPINGS", "inside", "outside", "reading", "renames"]
