"""Smoke test: ``python -m benchmarks.run --quick`` runs and prints every row.

No performance thresholds here: speed is judged by the benchmark itself.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: A phrase identifying each workload's row in the results table.
WORKLOADS = {
    "fan-out": "fan-out 4 x 0.2 s",
    "soundtrack (steps)": "critic steps",
    "soundtrack (map)": "critics as a map",
    "wide": "independent no-op steps",
    "chain": "chain of",
}
SYSTEMS = ("flowmagic", "flowmagic async", "thread-pool", "asyncio")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    return proc, out


def test_exits_zero(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = quick_run
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def test_header_names_the_machine(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = quick_run
    head = proc.stdout.splitlines()[:5]
    assert any("CPUs" in line and "Python" in line and "flowmagic" in line for line in head), proc.stdout


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_row_for_each_workload(quick_run: tuple[subprocess.CompletedProcess[str], Path], workload: str) -> None:
    proc, _ = quick_run
    lines = proc.stdout.splitlines()
    header_index = next(i for i, line in enumerate(lines) if line.startswith("| workload ") and "metric" in line)
    header = _cells(lines[header_index])
    rows = []
    for line in lines[header_index + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    matching = [r for r in rows if WORKLOADS[workload] in r[0]]
    assert len(matching) == 1, f"no single row for {workload!r} in:\n{proc.stdout}"
    row = dict(zip(header, matching[0], strict=True))
    for system in SYSTEMS:
        assert _is_number(row[system]), f"{workload} / {system}: {row[system]!r} is not a number"
    ratios = [v for k, v in row.items() if "÷" in k]
    assert ratios and all(_is_number(v) for v in ratios), row


def test_overhead_is_printed(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = quick_run
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "per-run overhead" in line)
    rows = {(c := _cells(line))[0]: c[1] for line in lines[start:] if line.startswith("| ") and len(_cells(line)) == 2}
    for system in SYSTEMS:
        assert _is_number(rows.get(system, "")), f"no overhead number for {system}:\n{proc.stdout}"


def test_json_output(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = quick_run
    assert proc.returncode == 0
    data = json.loads(out.read_text())
    assert data["quick"] is True
    assert {r["key"] for r in data["results"]} == {"fanout", "soundtrack", "soundtrack_map", "wide", "chain"}
    for r in data["results"]:
        assert set(r["value"]) == set(SYSTEMS)


def test_cached_rerun_row(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = quick_run
    assert "## The step cache" in proc.stdout
    cache = json.loads(out.read_text())["cache"]
    assert cache["steps"] == 100
    assert cache["cached_s"] > 0 and cache["uncached_noop_s"] > 0
    assert f"cached rerun {cache['cached_s'] * 1e3:.1f} ms" in proc.stdout
