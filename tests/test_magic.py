"""The %%flow magic in a real, fresh IPython shell per test."""

from __future__ import annotations

import itertools
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell

from flowmagic import Flow, FlowDefinitionError, FlowFailed, FlowSyntaxError, Run

SLEEPERS = "import time\ndef nap(s=0.2, *_):\n    time.sleep(s)\n    return s\n"


def cell(shell: InteractiveShell, text: str) -> object:
    result = shell.run_cell(text)
    return result.error_in_exec or result.error_before_exec


def overlap(run: Run, names: list[str]) -> bool:
    return max(run.steps[n].started or 0 for n in names) < min(run.steps[n].finished or 0 for n in names)


def test_cell_binds_the_flow_runs_it_and_prints_a_summary(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cell(shell, SLEEPERS) is None
    error = cell(shell, "%%flow demo\nparallel:\n    a = nap(0.2)\n    b = nap(0.2)\ntotal = a + b\n")
    assert error is None
    flow = shell.user_ns["demo"]
    assert isinstance(flow, Flow) and flow.name == "demo"
    run = flow.last
    assert isinstance(run, Run) and run.status == "succeeded" and run["total"] == 0.4
    assert overlap(run, ["a", "b"])
    out = capsys.readouterr().out
    assert "flow 'demo' succeeded" in out and "speed-up" in out
    for name in ("a", "b", "total"):
        assert f"  {name} " in out


def test_syntax_error_shows_a_caret_on_the_cell_line_without_traceback(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    error = cell(shell, "%%flow broken\na = 1\nb = max(a,\n")
    assert isinstance(error, FlowSyntaxError)
    assert error.lineno == 3  # line 1 of the cell is the %%flow line
    out = capsys.readouterr().out
    assert "'(' was never closed" in out and "^" in out
    assert "Traceback" not in out and "flowmagic/" not in out
    assert "broken" not in shell.user_ns


def test_unknown_name_fails_before_anything_runs_with_did_you_mean(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cell(shell, "ran = []\ndef fetch_user(name):\n    ran.append(name)\n    return name\n")
    error = cell(shell, "%%flow f\nu = fetch_user('ada')\nv = fetch_usr(u)\n")
    assert isinstance(error, FlowDefinitionError)
    assert (error.line, error.col) == (3, 4)
    out = capsys.readouterr().out
    assert "Did you mean 'fetch_user'?" in out and "Traceback" not in out
    assert shell.user_ns["ran"] == []
    assert "f" not in shell.user_ns  # nothing is bound when the check fails


def test_dry_run_draws_without_running(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    cell(shell, "calls = []")
    assert cell(shell, "%%flow plan --dry-run\na = calls.append(1)\nb = a\n") is None
    assert shell.user_ns["plan"].last is None and shell.user_ns["calls"] == []
    out = capsys.readouterr().out
    assert "flow 'plan': 2 steps" in out and "b" in out


def test_quiet_prints_nothing_but_keeps_the_run(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    assert cell(shell, "%%flow q --quiet\na = 1\n") is None
    assert capsys.readouterr().out == ""
    assert shell.user_ns["q"].last["a"] == 1


def test_sequential_and_workers_options(shell: InteractiveShell) -> None:
    cell(shell, SLEEPERS)
    body = "parallel:\n" + "".join(f"    s{i} = nap(0.1)\n" for i in range(4))
    cell(shell, "%%flow seq --sequential\n" + body)
    run = shell.user_ns["seq"].last
    starts = sorted(run.steps.values(), key=lambda r: r.started)
    assert all(a.finished <= b.started for a, b in itertools.pairwise(starts))
    cell(shell, "%%flow two --workers 2\n" + body)
    run = shell.user_ns["two"].last
    assert not overlap(run, ["s0", "s1", "s2"]) and overlap(run, ["s0", "s1"])


def test_config_traitlets_set_defaults(shell: InteractiveShell) -> None:
    cell(shell, SLEEPERS)
    cell(shell, "%config FlowMagics.workers = 1")
    cell(shell, '%config FlowMagics.model = "offline"')
    cell(shell, "%%flow c\nparallel:\n    a = nap(0.05)\n    b = nap(0.05)\nm = llm('Say hi')\n")
    run = shell.user_ns["c"].last
    assert not overlap(run, ["a", "b"])
    assert run.model == "offline" and run.steps["m"].llm["offline"] is True


def test_on_error_stop_and_continue(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    cell(shell, SLEEPERS + "def boom():\n    raise ValueError('no')\n")
    body = "parallel:\n    bad = boom()\n    slow = nap(1)\nafter = slow\n"
    cell(shell, "%%flow keep\n" + body)
    run = shell.user_ns["keep"].last
    assert run.status == "failed" and run["after"] == 1
    cell(shell, "%%flow stop --on-error stop\n" + body)
    run = shell.user_ns["stop"].last
    assert run.status == "failed" and run.steps["slow"].status == "cancelled"
    out = capsys.readouterr().out
    assert "FAILED" in out and "ValueError: no" in out


def test_timeout_cancels_the_run(shell: InteractiveShell) -> None:
    cell(shell, "import asyncio")
    error = cell(shell, "%%flow t --timeout 0.2\na = 1\nb = asyncio.sleep(5)\n")
    assert isinstance(error, FlowFailed) and "the run timed out after 0.2 s" in str(error)  # the cell fails
    run = shell.user_ns["t"].last
    assert run.status == "cancelled" and run["a"] == 1


def test_background_returns_at_once_and_can_be_cancelled(shell: InteractiveShell) -> None:
    cell(shell, SLEEPERS)
    start = time.monotonic()
    assert cell(shell, "%%flow bg --background\na = 1\nb = nap(0.4)\nc = b\n") is None
    assert time.monotonic() - start < 0.3
    flow = shell.user_ns["bg"]
    assert flow.last.status == "running"
    flow.session.handle.wait(3)
    assert flow.last.status == "succeeded" and flow.last["c"] == 0.4
    cell(shell, "%%flow bg2 --background\na = 1\nb = nap(2)\n")
    flow = shell.user_ns["bg2"]
    time.sleep(0.1)
    flow.cancel()
    assert flow.session.handle.wait(2).status == "cancelled" and flow.last["a"] == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%%flow", "name"),
        ("%%flow 1abc", "identifier"),
        ("%%flow x --sequental", "Did you mean '--sequential'?"),
        ("%%flow x --workers 0", "--workers must be at least 1"),
        ("%%flow x --on-error maybe", "invalid choice"),
        ("%%flow x --timeout -1", "--timeout must be"),
    ],
)
def test_bad_options_are_usage_errors(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    from IPython.core.error import UsageError

    error = cell(shell, line + "\na = 1\n")
    assert isinstance(error, UsageError)
    assert message in capsys.readouterr().err + str(error)


def test_help_lists_every_option(shell: InteractiveShell) -> None:
    doc = shell.find_cell_magic("flow").__doc__
    for option in (
        "--workers",
        "--model",
        "--no-cache",
        "--sequential",
        "--dry-run",
        "--background",
        "--quiet",
        "--on-error",
        "--timeout",
    ):
        assert option in doc


def test_unload_removes_what_load_added_and_load_again_works(shell: InteractiveShell) -> None:
    assert shell.find_cell_magic("flow") is not None
    assert any(issubclass(FlowSyntaxError, t) for t in shell.custom_exceptions)
    shell.run_line_magic("unload_ext", "flowmagic")
    assert shell.find_cell_magic("flow") is None
    assert "FlowMagics" not in shell.magics_manager.registry
    assert shell.custom_exceptions == ()
    shell.run_line_magic("load_ext", "flowmagic")
    assert cell(shell, "%%flow again\na = 2\n") is None and shell.user_ns["again"].last["a"] == 2


def test_rerunning_a_cell_rebinds_the_name(shell: InteractiveShell) -> None:
    cell(shell, "%%flow r\na = 1\n")
    first = shell.user_ns["r"]
    cell(shell, "%%flow r\na = 2\n")
    assert shell.user_ns["r"] is not first and shell.user_ns["r"].last["a"] == 2
