"""Agent Spec (JSON or YAML) to and from flowmagic flows.

Agent Spec describes a flow as nodes on a single control-flow path, with
``ParallelFlowNode`` the only place where work runs side by side. A flowmagic flow
is a DAG whose steps start as soon as what they read is ready. So:

- export (:func:`export_text`) cuts the DAG into stages, each a step or a
  ``ParallelFlowNode`` of independent sub-sequences (see ``agentspec_export``); an
  ``if`` block is a ``BranchingNode`` whose branches meet again after it
  (``agentspec_blocks``), a ``for`` loop one that goes back (``agentspec_loops``), a call
  of another flow a ``FlowNode`` (``agentspec_subflows``);
- import (:func:`import_source`) turns an Agent Spec flow into flowmagic DSL text
  and a namespace holding the tools it was given and what it builds itself (see ``agentspec_import``):
  a ``BranchingNode`` becomes an ``if`` block, or a ``for`` loop when it goes back
  (``agentspec_paths``); the text is parsed like any ``%%flow`` cell, and nothing from
  the file is ever evaluated as code. It keeps WayFlow's semantics: its extended nodes,
  renames (``input_mapping``/``output_mapping``), worker limits, sequential maps, outputs,
  structured LLM outputs (``agentspec_structured``).

The documents are plain dicts: the ``pyagentspec`` package is not needed to run
either direction (the tests check the output with its deserializer).

>>> from flowmagic import Flow
>>> flow = Flow.from_source("answer = llm('Say hello to {name}')", name="hello")
>>> text = flow.to_agentspec()
>>> again = Flow.from_agentspec(text, model="offline")
>>> again.run(name="Ada")["answer"] != ""
True
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from ..errors import FlowError

if TYPE_CHECKING:
    from ..flow.flow import Flow

Format = Literal["json", "yaml"]

AGENTSPEC_VERSION = "25.4.2"  # the first version with ParallelFlowNode and ParallelMapNode


class AgentSpecError(ValueError, FlowError):
    """A flow that Agent Spec cannot express, or an Agent Spec file flowmagic cannot run."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback
        return [f"{type(self).__name__}: {self}"]


def export_dict(flow: Flow, namespace: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Agent Spec document of ``flow`` as a plain dict.

    ``namespace`` is where the functions the flow calls are found (their
    signatures and type hints give the tools' inputs and outputs).
    """
    from .agentspec_export import export

    return export(flow, namespace or {})


def export_text(flow: Flow, format: Format = "json", namespace: Mapping[str, Any] | None = None) -> str:
    """The Agent Spec document of ``flow`` as JSON or YAML text."""
    return dumps(export_dict(flow, namespace), format)


def dumps(document: dict[str, Any], format: Format = "json") -> str:
    if format == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if format == "yaml":
        plain = json.loads(json.dumps(document))  # no shared objects, so no YAML anchors
        return str(_yaml().safe_dump(plain, sort_keys=False, allow_unicode=True))
    raise ValueError(f"Agent Spec is written as 'json' or 'yaml', not {format!r}")


def loads(text: str) -> dict[str, Any]:
    """An Agent Spec document from JSON or YAML text (JSON when it starts with '{').

    Text that nests too deeply or expands too far is an ``AgentSpecError`` (see
    ``agentspec_bounds``), as is any text the loaders refuse.
    """
    from .agentspec_bounds import TOO_DEEP, check_yaml

    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except RecursionError:  # JSON's parser recurses per level and stops near 1,000
            raise AgentSpecError(TOO_DEEP) from None
        except ValueError as exc:  # a JSONDecodeError, or a number of more digits than int() takes
            raise AgentSpecError(f"not valid Agent Spec JSON: {exc}") from None
    else:
        yaml = _yaml()
        try:
            check_yaml(yaml, text)  # before the loader builds anything or recurses
            document = yaml.safe_load(text)
        except AgentSpecError:
            raise
        except (yaml.YAMLError, ValueError) as exc:
            raise AgentSpecError(f"not valid Agent Spec YAML: {exc}") from None
    if not isinstance(document, dict) or "component_type" not in document:
        raise AgentSpecError("not an Agent Spec document: expected a component with a 'component_type'")
    return document


def format_of(path: str, default: Format | None = None) -> Format:
    """``"json"`` or ``"yaml"`` from a file name's extension (or ``default``)."""
    lower = path.lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith((".yaml", ".yml")):
        return "yaml"
    if default is not None:
        return default
    raise ValueError(f"cannot tell the Agent Spec format of {path!r}: name it .json, .yaml or .yml")


def import_source(
    text: str,
    tools: Mapping[str, Callable[..., Any]] | None = None,
    model: str | None = None,
) -> tuple[str, dict[str, Any], str]:
    """Translate an Agent Spec flow: (flowmagic DSL text, its namespace, the flow's name).

    The namespace holds the ``tools`` the flow calls, the default values of its inputs, and
    what the translation builds itself (the flow a map runs for each element, the schema of an
    LLM node's structured answer); nothing else that can be called. ``model`` replaces every LLM
    configuration of the file (e.g. ``"offline"``).
    """
    from .agentspec_import import translate

    return translate(loads(text), dict(tools or {}), model)


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - a dependency of flowmagic; only a broken install lacks it
        raise AgentSpecError("Agent Spec YAML needs PyYAML: pip install pyyaml (or use JSON)") from None
    return yaml


__all__ = ["AGENTSPEC_VERSION", "AgentSpecError", "dumps", "export_dict", "export_text", "format_of", "import_source"]
