"""Interchange with other flow formats. Pure: no IPython, widgets or openai.

``agentspec``: export a :class:`~flowmagic.flow.flow.Flow` to Agent Spec JSON or
YAML, and import Agent Spec flows (including WayFlow's exports) as runnable flows.
"""
