"""The peers' virtual environments: created on first use, one per peer, pinned.

Each peer lives in ``benchmarks/.peers-venv/<key>/`` (git-ignored), made with
``python -m venv`` from the interpreter running the benchmark and filled with
``pip install`` of the peer's pinned requirements. flowmagic is never installed
there, and the peers are never imported by the benchmark's own process: they
run in :mod:`benchmarks.peers.worker` subprocesses that print JSON back.

A file ``installed.json`` in the environment records the requirements it was
built from; an environment whose record differs (a changed pin) is rebuilt. An
environment is only recorded once its adapter module imports there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
VENV_ROOT = ROOT / "benchmarks" / ".peers-venv"
INSTALL_TIMEOUT_S = 1200


@dataclass(frozen=True)
class Peer:
    key: str  # the adapter module (benchmarks.peers.<key>) and the environment's folder
    requirements: tuple[str, ...]  # pinned
    distribution: str  # whose version the table prints
    user_imports: tuple[str, ...]  # what a user imports to build a flow (the import-time row)
    #: (column in the table, variant passed to the adapter, "sync" or "async": the kind of step
    #: functions it runs, so the table compares it with "flowmagic" or "flowmagic async")
    columns: tuple[tuple[str, str, str], ...]
    #: (column, row key, why that cell is not comparable): shown with a * and left out of the
    #: best-peer comparison
    caveats: tuple[tuple[str, str, str], ...] = ()

    @property
    def adapter(self) -> str:
        return f"benchmarks.peers.{self.key}"


# The peers' own clients where they have one; the official openai client (the
# same version as flowmagic's) where they do not (LangGraph, Dask).
PEERS: tuple[Peer, ...] = (
    Peer(
        key="langgraph_peer",
        requirements=("langgraph==1.2.22", "openai==3.52.0"),
        distribution="langgraph",
        user_imports=("langgraph.graph",),
        columns=(("LangGraph", "invoke", "sync"),),
    ),
    Peer(
        key="wayflow_peer",
        requirements=("wayflowcore==26.3.1",),
        distribution="wayflowcore",
        user_imports=("wayflowcore.flow", "wayflowcore.steps", "wayflowcore.tools"),
        columns=(("WayFlow", "sync tools", "sync"),),
    ),
    Peer(
        key="llmflows_peer",
        requirements=("llmflows==0.2.1",),
        distribution="llmflows",
        user_imports=("llmflows.flows",),
        columns=(("LLMFlows async", "async", "async"), ("LLMFlows blocking", "blocking", "sync")),
        caveats=(
            (
                "LLMFlows async",
                "llm",
                "LLMFlows has no concurrency limit: all calls go out at once, one round instead of "
                "ceil(calls / workers), so it is not the same workload as the capped rows",
            ),
        ),
    ),
    Peer(
        key="dask_peer",
        requirements=("dask==2026.8.0", "openai==3.52.0"),
        distribution="dask",
        user_imports=("dask", "dask.delayed"),
        columns=(("Dask", "threads", "sync"),),
    ),
)

COLUMNS: tuple[str, ...] = tuple(column for peer in PEERS for column, _, _ in peer.columns)
KIND: dict[str, str] = {column: kind for peer in PEERS for column, _, kind in peer.columns}
CAVEATS: dict[tuple[str, str], str] = {(column, row): text for peer in PEERS for column, row, text in peer.caveats}


def venv_dir(peer: Peer) -> Path:
    return VENV_ROOT / peer.key


def python(peer: Peer) -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    return venv_dir(peer) / scripts / ("python.exe" if os.name == "nt" else "python")


def _record(peer: Peer) -> Path:
    return venv_dir(peer) / "installed.json"


def is_installed(peer: Peer) -> bool:
    """The environment exists and was built from exactly these requirements."""
    try:
        record = json.loads(_record(peer).read_text())
    except (OSError, ValueError):
        return False
    return bool(record.get("requirements") == list(peer.requirements) and python(peer).exists())


def _last_error(output: str) -> str:
    """The line of pip's (or Python's) output that says what went wrong."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:") or "Error" in line.split(":")[0]]
    return (errors or lines or ["no output"])[-1][:300]


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def import_check(peer: Peer) -> str | None:
    """None when the adapter (and so the peer) imports in the environment, else why not."""
    try:
        proc = _run([str(python(peer)), "-c", f"import {peer.adapter}"], timeout=300)
    except subprocess.TimeoutExpired:
        return "importing it took more than 300 s"
    if proc.returncode != 0:
        return f"import failed: {_last_error(proc.stderr)}"
    return None


def ensure(peer: Peer, log: Callable[[str], None] = print) -> str | None:
    """Create and fill the peer's environment if needed; None when it is usable, else the reason."""
    if is_installed(peer):
        return None
    where = venv_dir(peer)
    log(f"peers: creating {where.relative_to(ROOT)} ({' '.join(peer.requirements)}) ...")
    shutil.rmtree(where, ignore_errors=True)
    where.parent.mkdir(parents=True, exist_ok=True)
    try:
        made = _run([sys.executable, "-m", "venv", str(where)], timeout=300)
        if made.returncode != 0:
            return f"could not create a virtual environment: {_last_error(made.stderr + made.stdout)}"
        pip = [str(python(peer)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        installed = _run([*pip, *peer.requirements], timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        return f"installing took more than {exc.timeout:.0f} s"
    if installed.returncode != 0:
        return f"pip install failed: {_last_error(installed.stderr + installed.stdout)}"
    problem = import_check(peer)
    if problem is not None:
        return problem
    _record(peer).write_text(json.dumps({"requirements": list(peer.requirements)}, indent=2) + "\n")
    log(f"peers: {peer.distribution} installed")
    return None
