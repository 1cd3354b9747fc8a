"""The workshop notebooks in ``notebooks/`` run top to bottom, offline, in a real kernel.

Each notebook is executed with nbclient in an isolated kernel (its HOME, Jupyter and
IPython directories in a temporary directory), with no OpenAI settings, so every
``llm()`` step is answered by the embedded offline model and nothing reaches the network.
The committed files themselves must carry no outputs, so they stay reviewable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from kernel_helpers import KERNEL_NAME, isolated_env, write_kernelspec
from nbclient import NotebookClient

ROOT = Path(__file__).parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"
FM_NODE = re.compile(r'class="fm-node"')
NO_NETWORK = re.compile(
    r"\[model: (offline \(offline: embedded model, |[\w.-]+ \(replayed from [\w.-]+: )no network\)\]"
)


def execute(path: Path, root: Path) -> Any:
    """Run the notebook at ``path`` top to bottom in a fresh isolated kernel; return it executed."""
    env = isolated_env(root, {"FLOWMAGIC_OFFLINE_LATENCY": "0.05"})
    for var in [v for v in env if v.startswith("OPENAI_")]:
        del env[var]  # no API key, no base URL, no organisation: the offline model answers
    data_dir = Path(env["JUPYTER_DATA_DIR"])
    write_kernelspec(data_dir)
    km = KernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(data_dir=str(data_dir), kernel_dirs=[str(data_dir / "kernels")]),
    )
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, km=km, timeout=60, store_widget_state=False).execute(env=env, cwd=str(path.parent))
    return nb


def failing(cell: Any) -> bool:
    """A cell that fails on purpose: tagged so, which nbclient and ``jupyter execute`` honour."""
    return "raises-exception" in cell.get("metadata", {}).get("tags", [])


def flow_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("%%flow ")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_offline_top_to_bottom(path: Path, tmp_path: Path) -> None:
    nb = execute(path, tmp_path)
    problems = []
    for index, cell in enumerate(nb.cells):
        errors = [out for out in cell.get("outputs", []) if out.output_type == "error"]
        if failing(cell):  # a cell that shows a failure on purpose must fail, and fail in short
            if not errors or errors[0].ename != "FlowFailed" or len(errors[0].traceback) > 6:
                problems.append(f"cell {index} is tagged raises-exception but did not fail in short: {errors}")
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                problems.append(f"cell {index}: {out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr":
                # nothing, not even the Graphviz wheel's fontconfig warning (the layout silences it)
                problems.append(f"cell {index} wrote to stderr: {out.text.strip()[:500]}")
    assert not problems, "\n".join(problems)

    # at least one %%flow cell shows the view; once the run is over, the live widget has given way
    # to the run's static picture with every step's detail, so the saved notebook shows it
    views = [
        out
        for cell in flow_cells(nb)
        for out in cell.outputs
        if FM_NODE.search(out.get("data", {}).get("text/html", "")) and 'class="fm-step"' in out["data"]["text/html"]
    ]
    assert views, f"no %%flow cell of {path.name} produced the view"
    assert not any(WIDGET in out.get("data", {}) for out in views)

    # and every other %%flow cell that runs says it succeeded (a --dry-run cell only draws its flow)
    for cell in (c for c in flow_cells(nb) if not failing(c) and "--dry-run" not in c.source.splitlines()[0]):
        ends = [out["data"]["text/plain"] for out in cell.outputs if "text/plain" in out.get("data", {})]
        assert ends and " succeeded" in ends[-1].splitlines()[0], f"{cell.source.splitlines()[0]}: {ends}"

    # every run that used llm() steps says it ran on the offline model or replayed a recording
    # (so nothing went out)
    summaries = [
        out["data"]["text/plain"]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "text/plain" in out.get("data", {}) and "[model: " in out["data"]["text/plain"]
    ]
    for summary in summaries:
        assert NO_NETWORK.search(summary), summary


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs]
    counted = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count is not None]
    assert not with_outputs, f"{path.name}: clear the outputs of cells {with_outputs}"
    assert not counted, f"{path.name}: clear the execution counts of cells {counted}"
    assert flow_cells(nb), f"{path.name} has no %%flow cell"
    assert any(c.source.strip() == "%load_ext flowmagic" for c in code), f"{path.name} never loads the extension"


def test_every_notebook_is_listed_in_the_index() -> None:
    assert NOTEBOOKS, "no notebooks in notebooks/"
    index = (NOTEBOOK_DIR / "README.md").read_text()
    missing = [p.name for p in NOTEBOOKS if p.name not in index]
    assert not missing, f"notebooks/README.md does not list {missing}"
