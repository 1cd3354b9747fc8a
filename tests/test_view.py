"""The view without a browser: shapes, layouts, painted SVG, the timeline, and the widget's comm messages."""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

from flowmagic import Flow
from flowmagic.engine import events as ev
from flowmagic.flow.shape import shape_of
from flowmagic.view.dag import DagPainter, NodeState
from flowmagic.view.detail import PREVIEW, step_html
from flowmagic.view.layout import layout, node_size
from flowmagic.view.state import node_states
from flowmagic.view.timeline import lanes, paint_timeline

NESTED = """
a = 1
parallel g:
    b = a
    branch w:
        c = a
        d = c
        parallel inner:
            x = d
            y = d
    parallel h:
        p = a
        q = a
e = g
"""


def node_states_in(svg: str) -> dict[str, str]:
    return dict(re.findall(r'<g class="fm-node" data-step="([^"]+)" data-state="(\w+)"', svg))


# -- the shape -----------------------------------------------------------------------------
def test_shape_nests_groups_and_branch_blocks_like_the_dot_text() -> None:
    flow = Flow.from_source(NESTED)
    shape = shape_of(flow)
    parents = {c.id: c.parent for c in shape.clusters}
    assert parents == {
        "cluster_g": None,
        "cluster_g/w": "cluster_g",
        "cluster_inner": "cluster_g/w",
        "cluster_h": "cluster_g",
    }
    where = {n.name: n.cluster for n in shape.nodes}
    assert where == {
        "a": None,
        "b": "cluster_g",  # a one-step branch is no cluster of its own
        "c": "cluster_g/w",
        "d": "cluster_g/w",
        "x": "cluster_inner",
        "y": "cluster_inner",
        "p": "cluster_h",
        "q": "cluster_h",
        "e": None,
    }
    dot = flow.to_dot()
    for cluster in shape.clusters:
        assert f'subgraph "{cluster.id}"' in dot
    assert dot.index('subgraph "cluster_g/w"') < dot.index('subgraph "cluster_inner"') < dot.index('"x" [label=')


def test_the_layout_key_ignores_code_but_not_shape() -> None:
    one = Flow.from_source("a = 1\nb = a + 1").shape
    same = Flow.from_source("a = 2\nb = a * 5").shape
    other = Flow.from_source("a = 1\nb = 2").shape
    assert one.key == same.key
    assert one.key != other.key


# -- layouts -------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["dot", "pygraphviz", "layered"])
def test_every_engine_places_every_node_inside_its_clusters(engine: str) -> None:
    shape = Flow.from_source(NESTED).shape
    result = layout(shape, engine)
    assert result.engine == engine
    assert set(result.nodes) == {n.name for n in shape.nodes}
    assert set(result.clusters) == {c.id for c in shape.clusters}
    assert [(e.tail, e.head) for e in result.edges] == list(shape.edges)
    parents = {c.id: c.parent for c in shape.clusters}
    for node in shape.nodes:
        box = result.nodes[node.name]
        assert (round(box.width), round(box.height)) == tuple(round(v) for v in node_size(node))
        cluster = node.cluster
        while cluster is not None:
            outer = result.clusters[cluster]
            assert outer.x <= box.x and box.x + box.width <= outer.x + outer.width + 0.5, (node.name, cluster)
            assert outer.y <= box.y and box.y + box.height <= outer.y + outer.height + 0.5, (node.name, cluster)
            cluster = parents[cluster]
    for tail, head in shape.edges:  # top to bottom
        assert result.nodes[tail].y < result.nodes[head].y


def test_engine_falls_back_to_dot_then_to_the_pure_python_layout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from flowmagic.view.layout import available_engine

    assert available_engine() == "pygraphviz"  # the test extras install the wheel
    monkeypatch.setitem(sys.modules, "pygraphviz", None)  # as if it were not installed
    assert available_engine() == "dot"  # CI installs Graphviz
    monkeypatch.setenv("PATH", str(tmp_path))  # and now no dot either: only pip
    assert available_engine() == "layered"
    shape = Flow.from_source("only_pip = 1\nstill = only_pip").shape
    assert layout(shape).engine == "layered"


def test_a_layout_is_computed_once_per_shape() -> None:
    first = layout(Flow.from_source("s = 1\nt = s").shape, "layered")
    again = layout(Flow.from_source("s = 'x'\nt = s * 2").shape, "layered")
    assert again is first


# -- the painted DAG -----------------------------------------------------------------------
def test_repainting_changes_states_not_positions() -> None:
    shape = Flow.from_source(NESTED).shape
    painter = DagPainter(shape, layout(shape, "layered"))
    before = painter.paint({})
    after = painter.paint(
        {"a": NodeState("succeeded", seconds=0.5), "b": NodeState("running"), "c": NodeState("failed")}
    )
    assert set(node_states_in(before).values()) == {"pending"}
    states = node_states_in(after)
    assert (states["a"], states["b"], states["c"], states["e"]) == ("succeeded", "running", "failed", "pending")
    positions = re.compile(r'<rect x="[^"]+" y="[^"]+"')
    assert positions.findall(before) == positions.findall(after)
    assert "<animate" in after and "<animate" not in before  # a running node pulses


def test_a_map_of_a_thousand_items_is_one_node_with_its_progress() -> None:
    flow = Flow.from_source("items = range(1000)\nsquares = [x * x for x in items]\ntotal = sum(squares)")
    run = flow.run()
    states = node_states(run)
    assert states["squares"].total == 1000 and states["squares"].done == 1000
    svg = DagPainter(flow.shape, layout(flow.shape)).paint(states)
    assert len(node_states_in(svg)) == 3
    assert "1000/1000" in svg


def test_the_critical_path_is_marked_in_the_dag_and_the_timeline() -> None:
    flow = Flow.from_source(
        "import_time = __import__('time')\n"
        "parallel:\n    slow = import_time.sleep(0.05)\n    fast = 1\nlast = (slow, fast)"
    )
    run = flow.run()
    assert run.critical_path[-2:] == ["slow", "last"]
    html = run.show()._repr_mimebundle_()["text/html"]
    assert html.count("fm-arrow-critical)") == len(run.critical_path) - 1
    bar = re.search(r'<rect class="fm-bar" data-step="slow"[^>]*>', html)
    assert bar is not None and 'stroke-width="2"' in bar.group(0)


# -- the timeline --------------------------------------------------------------------------
def test_one_lane_per_branch_and_overlapping_steps_get_rows_of_their_own() -> None:
    flow = Flow.from_source(
        "t = __import__('time')\n"
        "a = t.sleep(0.03)\n"
        "b = t.sleep(0.03)\n"  # a and b are independent: both in the lane outside branches, at the same time
        "parallel:\n"
        "    branch left:\n        l1 = (a, t.sleep(0.01))\n        l2 = l1\n"
        "    right = (b, t.sleep(0.01))\n"
    )
    run = flow.run()
    by_lane = lanes(run)
    assert set(by_lane) == {"outside branches", "left", "right"}
    assert len(by_lane["outside branches"]) >= 2  # t, a and b overlapped: not on one row
    assert [r.name for row in by_lane["left"] for r in row] == ["l1", "l2"]
    svg = paint_timeline(run)
    assert sorted(re.findall(r'class="fm-bar" data-step="([^"]+)"', svg)) == sorted(run.steps)
    assert "speed-up" in svg


def test_each_bar_goes_in_the_first_row_free_when_it_starts() -> None:
    """The rows of a lane, checked against the rule written out plainly, on many random timings
    (running steps, bars that end as the next begins, bars that start together)."""
    import random

    run = Flow.from_source("".join(f"s{i} = {i}\n" for i in range(60))).run()  # one lane: "steps"
    for seed in range(50):
        rng = random.Random(seed)
        for r in run.steps.values():
            r.started = rng.choice([0.0, 1.0, 2.0]) + round(rng.random() * 3, 1)
            r.finished = None if rng.random() < 0.1 else r.started + rng.choice([0.0, round(rng.random() * 2, 1)])
        expected: list[list[str]] = []
        ends: list[float | None] = []
        for r in sorted(run.steps.values(), key=lambda r: (r.started or 0.0, r.name)):
            free = [i for i, end in enumerate(ends) if end is not None and end <= (r.started or 0.0)]
            if free:
                expected[free[0]].append(r.name)
                ends[free[0]] = r.finished
            else:
                expected.append([r.name])
                ends.append(r.finished)
        assert [[r.name for r in row] for row in lanes(run)["steps"]] == expected, seed


# -- the step detail -----------------------------------------------------------------------
def test_step_detail_escapes_what_it_shows_and_bounds_long_output() -> None:
    flow = Flow.from_source("evil = '<script>alert(1)</script>' + 'x' * 10000\nbad = 1 / 0")
    run = flow.run()
    html = step_html(run, "evil")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert len(html) < PREVIEW + 2000 and "more characters" in html
    failed = step_html(run, "bad")
    assert "ZeroDivisionError" in failed and 'data-step="bad"' in failed


def test_llm_detail_shows_prompt_model_and_tokens() -> None:
    run = Flow.from_source('idea = llm("A name for a cat that likes {thing}")').run(thing="boxes")
    html = step_html(run, "idea")
    assert "A name for a cat that likes boxes" in html
    assert "offline" in html and "tokens" in html


# -- pictures without running --------------------------------------------------------------
def test_flow_show_draws_every_step_pending_and_prints_an_outline() -> None:
    flow = Flow.from_source(NESTED, name="nested")
    bundle = flow.show()._repr_mimebundle_()
    assert set(node_states_in(bundle["text/html"]).items()) == {(n, "pending") for n in flow.steps}
    assert "flow 'nested': 9 steps" in bundle["text/plain"]


def test_run_show_draws_final_states_and_timeline() -> None:
    run = Flow.from_source("a = 1\nb = 1 / 0\nc = b").run()
    html = run.show()._repr_mimebundle_()["text/html"]
    assert node_states_in(html) == {"a": "succeeded", "b": "failed", "c": "skipped"}
    assert 'class="fm-timeline"' in html


# -- the widget and its comm messages ------------------------------------------------------
class RecordingComm(BaseComm):
    """A comm that keeps what the widget would send to the frontend."""

    sent: list[tuple[float, str, dict[str, Any]]] = []

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
    ) -> None:
        RecordingComm.sent.append((time.monotonic(), msg_type, data or {}))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str, dict[str, Any]]]:
    RecordingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: RecordingComm(*a, **k))
    return RecordingComm.sent


def dag_updates(sent: list[tuple[float, str, dict[str, Any]]]) -> list[dict[str, str]]:
    """The nodes' states after each update the widget sent (each brings those that changed)."""
    values: list[dict[str, str]] = []
    shown: dict[str, str] = {}
    for _, msg_type, data in sent:
        state = data.get("state", {}) if msg_type == "comm_msg" else {}
        nodes = json.loads(state["nodes"]) if isinstance(state.get("nodes"), str) else {}
        if nodes:
            shown.update({name: value[0] for name, value in nodes.items()})
            values.append(dict(shown))
    return values


def svg_sends(sent: list[tuple[float, str, dict[str, Any]]]) -> int:
    """How many messages carried the DAG's SVG (the layout goes once; then only state)."""
    return sum('fm-dag' in json.dumps(data) for _, _, data in sent)


def test_widget_sends_live_updates_then_every_final_state(recorded: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from flowmagic.view.widget import FlowView

    flow = Flow.from_source(
        "t = __import__('time')\nparallel:\n    a = t.sleep(0.15)\n    b = t.sleep(0.3)\nc = (a, b)", name="live"
    )
    execution = flow.execution()
    view = FlowView(execution.run, flow.shape)
    execution.watch()
    bundle = view.mimebundle()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "running" in bundle["text/plain"]
    view.start()
    run = _run(execution)
    view.finish()
    updates = dag_updates(recorded)
    assert len(updates) >= 3  # live: the run took 0.3 s and a repaint is due every 0.05 s
    assert any(u.get("b") == "running" for u in updates[:-1])
    assert updates[-1] == {"t": "succeeded", "a": "succeeded", "b": "succeeded", "c": "succeeded"}
    assert svg_sends(recorded) == 1  # the DAG's SVG went once, with the widget; then only state
    final = view.mimebundle()
    assert run.status == "succeeded" and "flow 'live' succeeded" in final["text/plain"]
    assert set(node_states_in(final["text/html"]).values()) == {"succeeded"}


def test_many_fast_events_are_coalesced_into_few_updates(recorded: list[Any]) -> None:
    from flowmagic.view.widget import INTERVAL, FlowView

    body = "\n".join(f"    s{i} = {i}" for i in range(300))
    flow = Flow.from_source("parallel:\n" + body + "\ntotal = sum([" + ", ".join(f"s{i}" for i in range(300)) + "])")
    execution = flow.execution()
    view = FlowView(execution.run, flow.shape)
    execution.watch()
    counted: list[ev.Event] = []
    execution.subscribe(counted.append)
    view.start()
    run = _run(execution)
    view.finish()
    assert run.status == "succeeded"
    updates = dag_updates(recorded)
    times = [t for t, _, data in recorded if "nodes" in data.get("state", {}) and data["state"]["nodes"] != "{}"]
    assert len(counted) > 900  # three events a step
    # one repaint per interval at most, plus the final one
    assert len(updates) <= (times[-1] - times[0]) / INTERVAL + 2
    assert set(updates[-1].values()) == {"succeeded"}


def _run(execution: Any) -> Any:
    from flowmagic.engine.runner import run_blocking

    return run_blocking(execution)


def test_a_view_that_cannot_draw_says_so_and_the_run_goes_on(
    recorded: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowmagic.view import widget as widget_module
    from flowmagic.view.widget import FlowView

    def broken(shape: Any) -> Any:
        raise RuntimeError("no way to lay this out")

    monkeypatch.setattr(widget_module, "painter", broken)
    flow = Flow.from_source("a = 1\nb = a + 1", name="unlucky")
    execution = flow.execution()
    view = FlowView(execution.run, flow.shape)
    execution.watch()
    view.start()
    run = _run(execution)
    view.finish()
    assert run.status == "succeeded" and run["b"] == 2
    assert isinstance(view.error, RuntimeError)
    shown = " ".join(json.loads(view.widget.details).values())
    assert "could not draw this flow" in shown and "no way to lay this out" in shown
    bundle = view.mimebundle()
    assert "flow &#x27;unlucky&#x27; succeeded" in bundle["text/html"]  # the summary, escaped
    assert "flow 'unlucky' succeeded" in bundle["text/plain"]


def test_a_broken_graphviz_falls_back_to_the_built_in_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowmagic.view import layout as layout_module

    def broken(shape: Any, engine: str) -> Any:
        raise OSError("dot crashed")

    monkeypatch.setattr(layout_module, "_graphviz", broken)
    shape = Flow.from_source("fallback_a = 1\nfallback_b = fallback_a").shape
    with pytest.warns(RuntimeWarning, match="dot crashed"):
        assert layout_module.layout(shape).engine == "layered"
    with pytest.raises(OSError):  # asked for by name: no silent substitute
        layout_module.layout(shape, "dot")


def test_a_map_with_a_failed_element_counts_only_the_good_ones() -> None:
    flow = Flow.from_source("items = [1, 2, 0, 4]\ninverses = [1 / x for x in items]")
    run = flow.run()
    state = node_states(run)["inverses"]
    assert (state.status, state.done, state.failed, state.total) == ("failed", 3, 1, 4)
    svg = DagPainter(flow.shape, layout(flow.shape)).paint({"inverses": state})
    assert "3/4" in svg


def test_the_detail_shows_a_dataframe_as_its_table_and_an_image_as_an_image() -> None:
    import pandas as pd

    class Picture:
        def _repr_png_(self) -> bytes:
            return b"\x89PNG\r\n\x1a\n fake"

    class Broken:
        def _repr_html_(self) -> str:
            raise RuntimeError("no html today")

    flow = Flow.from_source(
        "table = pd.DataFrame({'city': ['Oslo', 'Lima'], 'n': [1, 2]})\npicture = Picture()\nbroken = Broken()",
        namespace={"pd": pd, "Picture": Picture, "Broken": Broken},
    )
    run = flow.run()
    table = step_html(run, "table")
    assert "<table" in table and "<td>Oslo</td>" in table and 'class="fm-rich"' in table
    assert 'src="data:image/png;base64,' in step_html(run, "picture")
    broken = step_html(run, "broken")  # a _repr_html_ that raises: the text preview instead
    assert "fm-rich" not in broken and "Broken object" in broken
