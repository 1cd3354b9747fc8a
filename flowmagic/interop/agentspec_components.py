"""The Agent Spec components flowmagic imports, by kind (Agent Spec's own and WayFlow's extensions)."""

from __future__ import annotations

TOOL_NODES = ("ToolNode", "ExtendedToolNode")
LLM_NODES = ("LlmNode", "ExtendedLlmNode")
PARALLEL_NODES = ("ParallelFlowNode", "ExtendedParallelFlowNode")
WAYFLOW_MAPS = ("ExtendedParallelMapNode", "ExtendedMapNode")  # WayFlow's: a "flow", one list "iterated_input"
MAP_NODES = ("ParallelMapNode", "MapNode", *WAYFLOW_MAPS)
MESSAGE_NODES = ("OutputMessageNode", "PluginOutputMessageNode")
INPUT_NODES = ("InputMessageNode", "PluginInputMessageNode")  # what the user answers: an input of the flow
NODES = (
    *TOOL_NODES,
    *LLM_NODES,
    *PARALLEL_NODES,
    *MAP_NODES,
    *MESSAGE_NODES,
    *INPUT_NODES,
    "BranchingNode",
    "FlowNode",
    "StartNode",
    "EndNode",
)
FLOWS = ("Flow", "ExtendedFlow")
#: Nodes that can be a document's root on their own (a one-step flow).
ROOT_NODES = tuple(n for n in NODES if n not in ("BranchingNode", "StartNode", "EndNode"))

__all__ = [
    "FLOWS",
    "INPUT_NODES",
    "LLM_NODES",
    "MAP_NODES",
    "MESSAGE_NODES",
    "NODES",
    "PARALLEL_NODES",
    "ROOT_NODES",
    "TOOL_NODES",
    "WAYFLOW_MAPS",
]
