"""The peers: LangGraph, WayFlow, LLMFlows and Dask on the benchmark's workloads.

Each peer has its own pinned virtual environment (:mod:`.env`, created on first
use under ``benchmarks/.peers-venv/``) and is measured in subprocesses
(:mod:`.worker`) that print JSON lines back to :mod:`.runner`, so neither the
peers nor their dependencies are ever imported next to flowmagic.

One adapter module per peer maps each workload onto the peer's natural API
and says how in its docstring: :mod:`.langgraph_peer`, :mod:`.wayflow_peer`,
:mod:`.llmflows_peer`, :mod:`.dask_peer`. An adapter provides

* ``dag(task, variant, recorder)``: build the DAG once, return a callable
  that runs it once; every step body is ``recorder.run`` / ``recorder.arun``
  (:mod:`.common`), which records when each step started and ended and how
  often it ran;
* ``llm(task, variant)``: a callable making ``task.calls`` chat requests to
  the local server, returning how many answers came back;
* ``map_items(task, variant)``: a callable that builds and runs a map over
  ``task.items`` items, returning how many results came back.

To add a peer: write its adapter and add a :class:`.env.Peer` to
:data:`.env.PEERS` (pinned requirements and its table columns).
"""
