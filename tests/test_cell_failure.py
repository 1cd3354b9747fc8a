"""A %%flow cell whose run fails fails like any cell: after its view is drawn and NAME.last is set,
with one short error and no traceback; "Run All" (nbclient here) stops there unless the cell is
tagged raises-exception. In a real IPython shell, and in a real kernel through nbclient."""

from __future__ import annotations

import os
import re
import traceback
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError
from test_notebooks import execute

from flowmagic import FlowFailed

BROKEN = """
a = 6 * 7
b = explode(a)
c = b + 1
"""


def explode(value: int) -> int:
    raise RuntimeError(f"no answer for {value}")


def test_a_failed_run_fails_its_cell_in_short_after_setting_last(shell: Any, capsys: Any) -> None:
    shell.user_ns["explode"] = explode
    result = shell.run_cell("%%flow broken" + BROKEN)
    assert isinstance(result.error_in_exec, FlowFailed)
    run = shell.user_ns["broken"].last
    assert result.error_in_exec.run is run and run.status == "failed"
    assert run["a"] == 42  # what finished is kept
    out = capsys.readouterr().out
    assert "FlowFailed: flow 'broken' failed: 1 failed, 1 skipped; 1 finished step kept in broken.last" in out
    assert "  b: RuntimeError: no answer for 42" in out
    assert "Traceback" not in out and 'File "' not in out
    assert out.index("flow 'broken' failed\n") < out.index("FlowFailed")  # the summary is shown first


def test_a_run_that_succeeds_or_runs_in_the_background_does_not_fail_the_cell(shell: Any) -> None:
    assert shell.run_cell("%%flow fine\na = 1").success
    shell.user_ns["explode"] = explode
    result = shell.run_cell("%%flow later --background --quiet" + BROKEN)
    assert result.success  # the cell has returned before the run ends: nothing to fail


def test_rerun_of_a_failing_step_fails_the_line(shell: Any) -> None:
    shell.user_ns["explode"] = explode
    shell.run_cell("%%flow broken" + BROKEN)
    result = shell.run_cell("%flow rerun broken b")
    assert isinstance(result.error_in_exec, FlowFailed)


def notebook(tags: list[str]) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext flowmagic"),
        nbformat.v4.new_code_cell("def explode(value):\n    raise RuntimeError(f'no answer for {value}')"),
        nbformat.v4.new_code_cell("%%flow broken" + BROKEN, metadata={"tags": tags}),
        nbformat.v4.new_code_cell("after = broken.last.status"),
    ]
    return nb


def test_in_a_kernel_a_failing_cell_stops_run_all_unless_tagged(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    nbformat.write(notebook([]), path)
    with pytest.raises(CellExecutionError) as caught:
        execute(path, tmp_path / "plain")
    assert "FlowFailed: flow 'broken' failed" in str(caught.value)

    nbformat.write(notebook(["raises-exception"]), path)
    nb = execute(path, tmp_path / "tagged")
    failed, after = nb.cells[2], nb.cells[3]
    errors = [out for out in failed.outputs if out.output_type == "error"]
    assert [e.ename for e in errors] == ["FlowFailed"] and len(errors[0].traceback) == 2
    assert any("text/html" in out.get("data", {}) for out in failed.outputs)  # the view came first
    assert after.execution_count is not None  # Run All went on past the tagged cell


def test_reading_a_failed_step_raises_its_error_from_its_line_in_the_cell(shell: Any, capsys: Any) -> None:
    shell.run_cell("def explode(value):\n    raise RuntimeError(f'no answer for {value}')")
    shell.run_cell("%%flow broken\na = 6 * 7\nparallel:\n    b = explode(a)\n    c = a + 1\n")
    capsys.readouterr()
    result = shell.run_cell("broken.last['b']")
    assert isinstance(result.error_in_exec, RuntimeError)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    assert re.search(r"<flow broken>(:|, line )4\b", shown), shown  # the step's line in the cell
    assert "b = explode(a)" in shown and "raise RuntimeError" in shown  # then the user's own code
    assert "flowmagic" + os.sep not in shown and "Could not get source" not in shown, shown
    frames = traceback.extract_tb(result.error_in_exec.__traceback__)
    assert [f.filename for f in frames][-2] == "<flow broken>" and frames[-2].lineno == 4


def test_a_grid_cell_with_a_failed_variant_fails_after_its_table(shell: Any, capsys: Any) -> None:
    shell.user_ns["explode"] = explode
    result = shell.run_cell("%%flow div --grid x=1,0\na = 6 * 7\nb = a // x if x else explode(a)\n")
    assert isinstance(result.error_in_exec, FlowFailed)
    variants = shell.user_ns["div"].variants
    assert [run.status for run in variants] == ["succeeded", "failed"]  # the table came, NAME.variants is set
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    assert "FlowFailed: flow 'div': 1 of 2 variants did not succeed; see div.variants" in out, out
    assert "x=0: failed: b: RuntimeError: no answer for 42" in out and "Traceback" not in out
    assert shell.run_cell("%%flow div --grid x=1,2\na = 6 * 7\nb = a // x\n").success
