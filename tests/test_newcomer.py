"""Small things a newcomer met: each one fixed, each one checked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from IPython.core.error import UsageError

from flowmagic import Flow, FlowDefinitionError, __version__


def test_a_misspelt_builtin_gets_a_did_you_mean() -> None:
    flow = Flow.from_source("n = lenn(topic)", name="typo")
    with pytest.raises(FlowDefinitionError, match=r"name 'lenn' is not defined.*Did you mean 'len'\?"):
        flow.run(topic="otters")


def test_a_fully_cached_rerun_costs_nothing_and_says_it_reused_everything() -> None:
    flow = Flow.from_source('a = llm("Name a colour")\nb = a.upper()', name="costs", model="offline")
    first = flow.run()
    assert first.cost is not None  # the offline model has a price: zero
    again = flow.run()
    assert all(r.cached for r in again.steps.values())
    assert again.tokens == (0, 0) and again.cost == 0.0
    summary = again.summary()
    assert "every step reused from the cache" in summary and "speed-up" not in summary


def test_flow_names_in_hints_leave_out_ipythons_numbered_outputs(shell: Any) -> None:
    shell.run_cell("%%flow movie --quiet\na = 1")
    shell.user_ns["_8"] = shell.user_ns["movie"]  # what IPython keeps when a cell's value is a flow
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic("flow", "history nosuch")
    assert "Flows here: movie" in str(caught.value) and "_8" not in str(caught.value)


def test_the_command_line_says_its_version_and_what_each_option_does() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "flowmagic.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"flowmagic {__version__}"
    text = subprocess.run(
        [sys.executable, "-m", "flowmagic.cli", "run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    lines = text.split("options:")[1].splitlines()
    for option in ("--workers", "--sequential", "--on-error", "--timeout", "--model", "--set"):
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(option))
        described = lines[at].split(option, 1)[1].split(maxsplit=1)[1:] or lines[at + 1].split()
        assert described, f"{option} has no help text:\n{text}"


ROOT = Path(__file__).resolve().parent.parent


def test_the_readmes_export_example_runs_on_the_files_it_names(tmp_path: Path) -> None:
    command = "flowmagic export examples/marketing.flow --tools examples/marketing_tools.py -o marketing.yaml"
    assert command in (ROOT / "README.md").read_text()
    out = tmp_path / "marketing.yaml"
    args = [*command.split()[1:-1], str(out)]
    subprocess.run([sys.executable, "-m", "flowmagic.cli", *args], cwd=ROOT, check=True, capture_output=True)
    exported = yaml.safe_load(out.read_text())  # PyYAML comes with flowmagic itself
    assert exported["component_type"] == "Flow" and exported["name"] == "marketing"


def test_the_readmes_first_install_brings_a_notebook() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'pip install ".[notebook]"' in readme and "jupyter lab" in readme
    project = (ROOT / "pyproject.toml").read_text()
    notebook = re.search(r"^notebook = \[(.*?)^\]", project, re.S | re.M)
    assert notebook is not None and '"jupyterlab' in notebook.group(1)
    base = re.search(r"^dependencies = \[(.*?)^\]", project, re.S | re.M)
    assert base is not None and '"pyyaml' in base.group(1)  # YAML export works after the plain install


def test_syntax_and_definition_errors_in_a_cell_share_one_form(shell: Any, capsys: Any) -> None:
    shell.run_cell("%%flow broken\nx = 1\na = fetch_user(1\n")
    shell.run_cell("%%flow broken\nx = 1\na = fetch_usr(x)\n")
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    assert "FlowSyntaxError: '(' was never closed\n  File \"<flow>\", line 3, column 15\n" in out, out
    assert "FlowDefinitionError: name 'fetch_usr' is not defined" in out
    assert "  File \"<flow>\", line 3, column 5\n" in out
    assert "Traceback" not in out
