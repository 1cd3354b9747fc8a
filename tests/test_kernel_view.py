"""The live view in a real kernel: widget updates arrive while the cell runs; saved notebooks keep a picture."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from kernel_helpers import KERNEL_NAME, Kernel, isolated_env, kernel_session, write_kernelspec
from nbclient import NotebookClient
from nbconvert import HTMLExporter

THREE_BRANCHES = textwrap.dedent(
    """
    %%flow three
    t = __import__("time")
    parallel:
        left = t.sleep(0.5)
        branch middle:
            m1 = t.sleep(0.1)
            m2 = (m1, t.sleep(0.1))
            m3 = (m2, t.sleep(0.1))
        right = t.sleep(0.25)
    done = (left, m3, right)
    """
).lstrip("\n")
STEPS = {"t", "left", "m1", "m2", "m3", "right", "done"}
NODE_TAG = re.compile(r'<g [^>]*class="fm-node"[^>]*>')


def states_of(message: Any) -> dict[str, str]:
    """step -> state, from a widget update that carries the nodes' states (else empty)."""
    nodes = json.loads((message.data.get("state") or {}).get("nodes") or "{}")
    return {name: value[0] for name, value in nodes.items()}


def node_states(html: str) -> dict[str, str]:
    """data-step -> data-state of every DAG node, whatever the order of the attributes."""
    tags = NODE_TAG.findall(html)
    return {
        re.search(r'data-step="([^"]+)"', tag).group(1): re.search(r'data-state="(\w+)"', tag).group(1)  # type: ignore[union-attr]
        for tag in tags
    }


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    with kernel_session(tmp_path_factory.mktemp("view-kernel")) as k:
        k.ok("%load_ext flowmagic")
        yield k


def test_widget_updates_arrive_before_the_cell_finishes(kernel: Kernel) -> None:
    result = kernel.ok(THREE_BRANCHES)
    ends = result.of_kind("update_display_data")
    assert len(ends) == 1, "the cell's display is replaced once, by the final picture"
    end = ends[0]
    # the DAG's SVG went once, when the widget opened; then only the nodes' states
    assert not any("fm-dag" in json.dumps(o.data) for o in result.of_kind("comm_msg"))
    # each update brings the nodes that changed: the page's picture is what they add up to
    updates = [o for o in result.of_kind("comm_msg") if "nodes" in (o.data.get("state") or {})]
    shown: dict[str, str] = {}
    pictures = []
    for o in updates:
        shown.update(states_of(o))
        pictures.append((o.time, dict(shown)))
    live = {json.dumps(p, sort_keys=True) for t, p in pictures if t < end.time and "running" in p.values()}
    # steps end at 0.1, 0.2, 0.25, 0.3 and 0.5 s: the DAG is redrawn as they do, during the cell
    assert len(live) >= 3, f"only {len(live)} different live pictures in {len(updates)} updates"
    # the widget is not painted once more at the end: the static picture (below) replaces it
    assert all(t <= end.time for t, _ in pictures), "no repaint after the final picture"
    assert all(len(states_of(o)) < len(STEPS) for o in updates[1:-1])  # not every node each time
    # the display itself: a widget while the run goes on, then its static picture, with each
    # step's detail, in place of it (so a saved notebook shows it whatever its widget state)
    first = result.of_kind("display_data")[0]
    assert "application/vnd.jupyter.widget-view+json" in first.data
    assert "application/vnd.jupyter.widget-view+json" not in end.data
    assert node_states(end.data["text/html"]) == dict.fromkeys(STEPS, "succeeded")
    assert end.data["text/html"].count('<details class="fm-step"') == len(STEPS)
    assert result.of_kind("comm_close"), "the widget is closed once its picture replaces it"
    assert "flow 'three' succeeded" in end.data["text/plain"]


def test_an_interrupted_run_shows_cancelled_nodes(kernel: Kernel) -> None:
    result = kernel.send("%%flow slow\nt = __import__('time')\nparallel:\n    a = t.sleep(30)\n    b = 1\nc = (a, b)")
    kernel.wait_until(
        lambda: any(states_of(o).get("a") == "running" for o in result.of_kind("comm_msg")),
        10,
        "step a to be drawn running",
    )
    kernel.km.interrupt_kernel()
    kernel.finish(result)
    assert result.status == "error"
    end = result.of_kind("update_display_data")[-1]
    states = node_states(end.data["text/html"])
    assert states == {"t": "succeeded", "a": "cancelled", "b": "succeeded", "c": "cancelled"}


@pytest.mark.parametrize("widget_state", [False, True], ids=["no-widget-state", "widget-state-saved"])
def test_saved_notebook_keeps_an_svg_with_every_step(tmp_path: Path, widget_state: bool) -> None:
    env = isolated_env(tmp_path)
    data_dir = Path(env["JUPYTER_DATA_DIR"])
    write_kernelspec(data_dir)
    km = KernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(data_dir=str(data_dir), kernel_dirs=[str(data_dir / "kernels")]),
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext flowmagic"), nbformat.v4.new_code_cell(THREE_BRANCHES)]
    # with the widget state saved (what `jupyter execute` does), nbconvert would draw a widget it
    # cannot run: the final picture replaced the widget, so there is none to draw
    NotebookClient(nb, km=km, timeout=60, store_widget_state=widget_state).execute(env=env, cwd=str(tmp_path))
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    outputs = saved.cells[1].outputs
    assert len(outputs) == 1
    data = outputs[0]["data"]
    html = data["text/html"]
    assert "<svg" in html and 'class="fm-timeline"' in html
    assert node_states(html) == dict.fromkeys(STEPS, "succeeded")
    assert "flow 'three' succeeded" in data["text/plain"]
    # what nbconvert (and so a static reader) makes of it: the picture, not a widget placeholder
    page, _ = HTMLExporter().from_notebook_node(saved)
    assert node_states(page) == dict.fromkeys(STEPS, "succeeded")
    assert "widget-view" not in json.dumps([c.get("outputs") for c in saved.cells])
    assert all(f'<details class="fm-step" data-step="{step}">' in page for step in STEPS)


def test_dry_run_draws_every_step_pending_and_quiet_draws_nothing(kernel: Kernel) -> None:
    dry = kernel.ok(THREE_BRANCHES.replace("%%flow three", "%%flow three --dry-run"))
    (shown,) = dry.of_kind("display_data")
    assert node_states(shown.data["text/html"]) == dict.fromkeys(STEPS, "pending")
    assert not dry.of_kind("comm_msg"), "a dry run draws a picture, it starts no widget"
    quiet = kernel.ok(THREE_BRANCHES.replace("%%flow three", "%%flow three --quiet"))
    assert quiet.outputs == []
    assert kernel.value("three.last.status") == "succeeded"


def test_an_answer_streams_into_the_step_detail_while_the_cell_runs(kernel: Kernel) -> None:
    kernel.ok("import os; _latency = os.environ.get('FLOWMAGIC_OFFLINE_LATENCY')")
    kernel.ok("os.environ['FLOWMAGIC_OFFLINE_LATENCY'] = '0.8'")  # slow enough to watch it being written
    try:
        result = kernel.ok('%%flow talk --no-cache\nanswer = llm("List five colours of the sea")')
    finally:
        kernel.ok(
            "os.environ.pop('FLOWMAGIC_OFFLINE_LATENCY') if _latency is None "
            "else os.environ.update(FLOWMAGIC_OFFLINE_LATENCY=_latency)"
        )
    end = result.of_kind("update_display_data")[0]
    states = [(o.data.get("state") or {}, o.time) for o in result.of_kind("comm_msg")]
    sent = [(json.loads(state.get("details") or "{}"), t) for state, t in states]
    partial = [d.get("answer", "") for d, t in sent if "answer so far" in d.get("answer", "") and t < end.time]
    # the step's detail is sent again with more of the answer as it arrives
    assert len(set(partial)) >= 2, f"{len(partial)} partial answers seen"


def test_a_batch_shows_a_progress_bar_that_moves_while_the_cell_runs(kernel: Kernel) -> None:
    code = textwrap.dedent(
        """
        import time
        from flowmagic import Flow
        rows_flow = Flow.from_source("y = time.sleep(0.01) or x", name="rows", namespace={"time": time})
        batch = rows_flow.batch([{"x": i} for i in range(100)], executor="threads", in_flight=2)
        batch.status, len(batch.values)
        """
    )
    result = kernel.ok(code)
    displays = [o for o in result.of_kind("display_data") if "application/vnd.jupyter.widget-view+json" in o.data]
    assert len(displays) == 1, "one progress display for the batch"
    states = [o.data.get("state") or {} for o in result.of_kind("comm_msg")]
    counts = [s["value"] for s in states if isinstance(s.get("value"), int)]
    lines = [s["value"] for s in states if isinstance(s.get("value"), str)]
    # 100 rows of 10 ms two at a time take 0.5 s: the bar is redrawn along the way, then full
    assert len(set(counts)) >= 3 and counts == sorted(counts) and counts[-1] == 100, counts
    assert "100 of 100 rows" in lines[-1] and "(succeeded)" in lines[-1], lines[-1]
    assert "('succeeded', 100)" in result.text
