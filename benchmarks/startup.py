"""Start-up cost: ``import flowmagic`` and ``%load_ext flowmagic``, each in a fresh process.

Each sample is a new ``python -c`` process (so nothing is imported yet) that
times only the statement itself with ``time.perf_counter``; the row is the
median of the samples. ``%load_ext`` is timed after IPython and an
``InteractiveShell`` exist, as in a notebook kernel, so it includes importing
flowmagic. For scale, the baselines' cells time ``import concurrent.futures``
and ``import asyncio``, and each peer's cell the imports a user writes to
build a flow with it (in the peer's own environment).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOAD_EXT_TARGET_MS = 150.0

IMPORT_CODE = (
    "import importlib, sys, time\n"
    "t = time.perf_counter()\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n"
    "print(time.perf_counter() - t)\n"
)
LOAD_EXT_CODE = (
    "import time\n"
    "from IPython.core.interactiveshell import InteractiveShell\n"
    "shell = InteractiveShell.instance()\n"
    "t = time.perf_counter()\n"
    "shell.run_line_magic('load_ext', 'flowmagic')\n"
    "print(time.perf_counter() - t)\n"
)


def samples(code: str, args: list[str], n: int, python: str = sys.executable) -> list[float]:
    """Seconds printed by ``code`` (its last output line) in ``n`` fresh processes."""
    out = []
    for _ in range(n):
        proc = subprocess.run([python, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or ["no output"]
            raise RuntimeError(f"timing {' '.join(args) or 'load_ext'} failed: {lines[-1]}")
        out.append(float(proc.stdout.strip().splitlines()[-1]))
    return out


def import_ms(modules: list[str], n: int, python: str = sys.executable) -> float:
    return statistics.median(samples(IMPORT_CODE, modules, n, python)) * 1e3


def measure(n: int) -> list[dict[str, Any]]:
    imports = {
        "flowmagic": import_ms(["flowmagic"], n),
        "thread-pool": import_ms(["concurrent.futures"], n),
        "asyncio": import_ms(["asyncio"], n),
    }
    load_ext = statistics.median(samples(LOAD_EXT_CODE, [], n)) * 1e3
    return [
        {
            "key": "import",
            "title": "import in a fresh process (flowmagic: import flowmagic)",
            "metric": "ms",
            "scale": 1.0,
            "value": imports,
        },
        {
            "key": "load_ext",
            "title": "%load_ext flowmagic in a fresh IPython shell",
            "metric": "ms",
            "scale": 1.0,
            "value": {"flowmagic": load_ext},
        },
    ]
