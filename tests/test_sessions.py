"""One session per flow name: a cell that defines a flow again is the same flow, edited. Its
still-running background run is cancelled first, and --dry-run keeps NAME.last."""

from __future__ import annotations

import threading
import time
from typing import Any

from flowmagic.engine.history import default_history


def test_rerunning_a_background_cell_cancels_the_run_still_going(shell: Any, capsys: Any) -> None:
    release = threading.Event()
    shell.user_ns["wait"] = lambda: release.wait(5) and "released"
    assert shell.run_cell("%%flow bg --background --quiet\na = 1\nb = wait()").success
    first = shell.user_ns["bg"].last
    deadline = time.monotonic() + 10
    under_way = ("succeeded", "running")
    while (first.steps["a"].status, first.steps["b"].status) != under_way and time.monotonic() < deadline:
        time.sleep(0.01)  # until the run is well under way: a has finished, b waits for the release
    assert first.status == "running" and first.steps["b"].status == "running"
    capsys.readouterr()
    assert shell.run_cell("%%flow bg\na = 2").success  # (--quiet would not say it)
    release.set()
    second = shell.user_ns["bg"].last
    out = capsys.readouterr().out
    assert "cancelled the background run of 'bg' that was still going" in out
    assert first.status == "cancelled" and first["a"] == 1  # what finished is kept
    assert second.status == "succeeded" and second is not first
    assert first.finished is not None and second.started is not None and first.finished <= second.started
    assert [e.run for e in default_history.entries("bg")][-2:] == [first, second]  # never overlapping


def test_dry_run_keeps_the_last_run_and_the_history(shell: Any) -> None:
    assert shell.run_cell("%%flow f --quiet\na = 1").success
    ran = shell.user_ns["f"].last
    assert shell.run_cell("%%flow f --dry-run --quiet\na = 1\nb = a + 1").success
    flow = shell.user_ns["f"]
    assert flow.last is ran and "b" in flow.steps  # the new definition, the old run
    assert shell.run_cell("%%flow f --quiet\na = 1\nb = a + 1").success
    assert flow is not shell.user_ns["f"] and shell.user_ns["f"].last["b"] == 2


def test_a_name_bound_to_something_else_starts_a_new_session(shell: Any) -> None:
    shell.user_ns["g"] = 42
    assert shell.run_cell("%%flow g --quiet\na = 1").success
    assert shell.user_ns["g"].last["a"] == 1
