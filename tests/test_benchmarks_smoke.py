"""Smoke test: ``python -m benchmarks.run --quick`` runs and prints every row.

No performance thresholds here: speed is judged by the benchmark itself. The
quick run never measures the peers (that needs ``--peers`` and their own
environments); the peers' "not installed" path is checked with the adapter's
imports failing in this environment. The Dask executor's rows start a real local
cluster (Dask distributed is a test dependency).
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
    "fan-out 16": "fan-out 16 x 0.2 s",
    "soundtrack (steps)": "critic steps",
    "soundtrack (map)": "critics as a map",
    "slow/fast": "slow branch",
    "wide": "independent no-op steps",
    "chain": "chain of",
    "llm": "llm calls",
    "map time": "no-op items: total time",
    "map memory": "no-op items: peak memory",
    "import": "import in a fresh process",
    "load_ext": "%load_ext flowmagic",
}
SYSTEMS = ("flowmagic", "flowmagic async", "thread-pool", "asyncio")
PEER_COLUMNS = ("LangGraph", "WayFlow", "LLMFlows async", "LLMFlows blocking", "Dask")
#: The systems each added row has a number for ("-" elsewhere); the others have all of SYSTEMS.
MEASURED = {
    "llm": ("flowmagic", "thread-pool", "asyncio"),  # llm steps always run on flowmagic's event loop
    "import": ("flowmagic", "thread-pool", "asyncio"),
    "load_ext": ("flowmagic",),
}


#: The Dask executor's table: a phrase for each row, and the systems it has a number for ("-" elsewhere).
DASK_SYSTEMS = ("flowmagic threads", "flowmagic dask", "serial loop", "process pool", "Dask, hand-written")
DASK_ROWS = {
    "200-row batch of a CPU-bound step": DASK_SYSTEMS,
    "500-row batch of a no-op step": DASK_SYSTEMS,
    "100 independent no-op steps, one run": ("flowmagic threads", "flowmagic dask", "Dask, hand-written"),
}


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


def _table_at(lines: list[str], header_index: int) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the Markdown table whose header is ``lines[header_index]``."""
    rows = []
    for line in lines[header_index + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    return _cells(lines[header_index]), rows


def _main_table(stdout: str) -> tuple[list[str], list[list[str]]]:
    lines = stdout.splitlines()
    header_index = next(i for i, line in enumerate(lines) if line.startswith("| workload ") and "metric" in line)
    return _table_at(lines, header_index)


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_row_for_each_workload(quick_run: tuple[subprocess.CompletedProcess[str], Path], workload: str) -> None:
    proc, _ = quick_run
    header, rows = _main_table(proc.stdout)
    matching = [r for r in rows if WORKLOADS[workload] in r[0]]
    assert len(matching) == 1, f"no single row for {workload!r} in:\n{proc.stdout}"
    row = dict(zip(header, matching[0], strict=True))
    measured = MEASURED.get(workload, SYSTEMS)
    for system in SYSTEMS:
        if system in measured:
            assert _is_number(row[system]), f"{workload} / {system}: {row[system]!r} is not a number"
        else:
            assert row[system] == "-", f"{workload} / {system}: {row[system]!r} should be '-'"
    if workload in ("fan-out", "soundtrack (steps)", "wide", "chain", "map time"):
        ratios = [v for k, v in row.items() if "÷" in k]
        assert ratios and all(_is_number(v) for v in ratios), row


def _dask_table(stdout: str) -> tuple[list[str], list[list[str]]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## The Dask executor"))
    header_index = next(i for i in range(start, len(lines)) if lines[i].startswith("| workload | metric |"))
    return _table_at(lines, header_index)


@pytest.mark.parametrize("phrase", list(DASK_ROWS))
def test_dask_executor_rows(quick_run: tuple[subprocess.CompletedProcess[str], Path], phrase: str) -> None:
    proc, _ = quick_run
    header, rows = _dask_table(proc.stdout)
    matching = [r for r in rows if phrase in r[0]]
    assert len(matching) == 1, f"no single Dask row for {phrase!r} in:\n{proc.stdout}"
    row = dict(zip(header, matching[0], strict=True))
    for system in DASK_SYSTEMS:
        if system in DASK_ROWS[phrase]:
            assert _is_number(row[system]) and float(row[system]) > 0, f"{phrase} / {system}: {row[system]!r}"
        else:
            assert row[system] == "-", f"{phrase} / {system}: {row[system]!r} should be '-'"
    assert _is_number(row["flowmagic threads ÷ flowmagic dask"]), row
    assert _is_number(row["flowmagic dask ÷ Dask, hand-written"]), row


def test_dask_executor_json(
    quick_run: tuple[subprocess.CompletedProcess[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the CPU-bound batch's checksum is crunch() summed over the rows, computed here independently
    proc, out = quick_run
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.dask_batch import crunch

    dask = json.loads(out.read_text())["dask"]
    assert dask["slots"] >= 2 and dask["startup_s"] > 0 and dask["first_batch_s"] > 0, dask
    rows = {r["key"]: r for r in dask["rows"]}
    assert set(rows) == {"dask_cpu", "dask_rows", "dask_steps"}
    assert (rows["dask_cpu"]["items"], rows["dask_rows"]["items"]) == (200, 500)
    assert rows["dask_cpu"]["checksum"] == sum(crunch(i) for i in range(200))
    assert rows["dask_rows"]["checksum"] == sum(range(1, 501))
    assert set(rows["dask_cpu"]["value"]) == set(DASK_SYSTEMS)
    assert all(len(v) == 1 for v in rows["dask_steps"]["samples"].values())
    assert "Cluster: LocalCluster" in proc.stdout and "start-up" in proc.stdout


def test_a_wrong_batch_result_posts_no_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # a system whose values differ from the serial loop's fails the row instead of timing it
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import dask_batch

    class NoCluster:
        def run(self, fn: object) -> dict[str, float]:
            return {}

    good = {"serial loop": lambda: [1, 2, 3], "flowmagic dask": lambda: [1, 2, 3]}
    row = dask_batch.measure_batch("k", "t", "per_row", good, 3, 1, NoCluster())
    assert row["checksum"] == 6 and set(row["value"]) == set(good)
    for wrong in ([1, 2, 4], [1, 2]):
        fns = {"serial loop": lambda: [1, 2, 3], "flowmagic dask": lambda wrong=wrong: wrong}
        with pytest.raises(RuntimeError, match="flowmagic dask"):
            dask_batch.measure_batch("k", "t", "per_row", fns, 3, 1, NoCluster())


def test_quick_run_leaves_the_peers_out(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = quick_run
    header, _ = _main_table(proc.stdout)
    assert not set(PEER_COLUMNS) & set(header), header
    assert "peers: not measured in --quick (run with --peers)" in proc.stdout
    assert "peers: creating" not in proc.stderr
    assert json.loads(out.read_text())["peers"] == []


def test_slow_fast_gap_is_measured_from_the_steps(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    # a step cannot start before the step it depends on has ended: a negative gap would be a broken probe
    _, out = quick_run
    row = next(r for r in json.loads(out.read_text())["rows"] if r["key"] == "slowfast")
    for system in SYSTEMS:
        assert len(row["samples"][system]) == 1 and row["samples"][system][0] >= 0, row


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
    assert {r["key"] for r in data["results"]} == {
        "fanout",
        "fanout16",
        "soundtrack",
        "soundtrack_map",
        "wide",
        "chain",
    }
    for r in data["results"]:
        assert set(r["value"]) == set(SYSTEMS)
    rows = {r["key"]: r for r in data["rows"]}
    assert set(rows) == {
        "slowfast", "loop", "llm", "eval_overhead", "eval_llm", "map_time", "map_memory", "import", "load_ext"
    }
    assert set(rows["eval_overhead"]["value"]) == {"flowmagic", "thread-pool", "one call per run"}
    assert rows["eval_overhead"]["scale"] == 200
    assert rows["eval_llm"]["value"]["flowmagic"] >= 1.0  # a makespan over the ideal
    assert set(rows["loop"]["value"]) == {"flowmagic", "flowmagic async", "thread-pool"}
    assert all(v > 0 for v in rows["loop"]["value"].values()) and rows["loop"]["scale"] == 100
    assert (rows["llm"]["calls"], rows["llm"]["workers"]) == (20, 8)
    assert rows["llm"]["scale"] == pytest.approx(math.ceil(20 / 8) * 0.2)
    assert rows["map_time"]["items"] == rows["map_memory"]["items"] == 1_000
    assert all(v > 0 for v in rows["map_memory"]["value"].values())


def test_cached_rerun_row(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = quick_run
    assert "## The step cache" in proc.stdout
    cache = json.loads(out.read_text())["cache"]
    assert cache["steps"] == 100
    assert cache["cached_s"] > 0 and cache["uncached_noop_s"] > 0
    assert f"cached rerun {cache['cached_s'] * 1e3:.1f} ms" in proc.stdout


def test_a_peer_that_does_not_import_is_a_not_installed_column(monkeypatch: pytest.MonkeyPatch) -> None:
    # this environment has flowmagic, not LangGraph: the worker's import of the adapter fails
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.peers import runner
    from benchmarks.peers.env import COLUMNS, PEERS

    assert COLUMNS == PEER_COLUMNS
    peer = next(p for p in PEERS if p.key == "langgraph_peer")
    monkeypatch.setattr(runner, "python", lambda _peer: Path(sys.executable))
    outcome = runner.Outcome("LangGraph", peer, "invoke")
    runner.run_column(outcome, [{"kind": "map", "key": "map", "items": 10}], repeat=1, task_timeout=60)
    assert outcome.status.startswith("not installed: import failed: ModuleNotFoundError"), outcome.status
    assert "langgraph" in outcome.status and outcome.results == {}
    assert runner.cell_value(outcome, "map_time", "total_s", 1.0) == "not installed"
    assert runner.notes(outcome, {}) == [f"LangGraph: {outcome.status}"]
