"""Several runs on one time axis: ``flowmagic.compare`` and ``%flow compare``, checked on real runs
of sleeping steps, from the positions of the bars in the SVG."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import flowmagic
from flowmagic import Flow, Run
from flowmagic.engine.history import default_history
from flowmagic.ipython import lines
from flowmagic.view.timeline import PLOT_WIDTH
from flowmagic.view.together import Comparison

NAP = 0.2
SOURCE = """\
parallel naps:
    a = nap("a")
    b = nap("b")
    c = nap("c")
d = nap("d", naps)
"""
SVG = "{http://www.w3.org/2000/svg}"


def nap(name: str, *after: Any) -> str:
    time.sleep(NAP)
    return name


@pytest.fixture(scope="module")
def runs() -> Iterator[tuple[Run, Run]]:
    """The same four naps one at a time (about 0.8 s), then with a, b and c together (about 0.4 s)."""
    sequential = Flow.from_source(SOURCE, name="naps", namespace={"nap": nap}, sequential=True, cache=False).run()
    parallel = Flow.from_source(SOURCE, name="naps", namespace={"nap": nap}, cache=False).run()
    assert sequential.status == parallel.status == "succeeded"
    yield sequential, parallel


def svg_of(picture: Comparison) -> ET.Element:
    html = picture._repr_mimebundle_()["text/html"]
    found = re.search(r"<svg.*</svg>", html, re.S)
    assert found, html
    return ET.fromstring(found.group(0))


def blocks(svg: ET.Element) -> list[ET.Element]:
    return [g for g in svg.iter(f"{SVG}g") if g.get("class") == "fm-run"]


def bars(block: ET.Element) -> list[ET.Element]:
    return [r for r in block.iter(f"{SVG}rect") if "fm-bar" in (r.get("class") or "").split()]


def extent(block: ET.Element) -> float:
    """Pixels from the left edge of the first bar to the right edge of the last."""
    spans = [(float(r.get("x", 0)), float(r.get("width", 0))) for r in bars(block)]
    return max(x + w for x, w in spans) - min(x for x, _ in spans)


def seconds(run: Run) -> float:
    """Seconds from the first step's start to the last one's end."""
    timed = [r for r in run.steps.values() if r.started is not None and r.finished is not None]
    return max(r.finished or 0.0 for r in timed) - min(r.started or 0.0 for r in timed)


def test_the_longer_run_spans_proportionally_more_pixels(runs: tuple[Run, Run]) -> None:
    sequential, parallel = runs
    svg = svg_of(flowmagic.compare(sequential, parallel, labels=["sequential", "parallel"]))
    slow, fast = blocks(svg)
    assert [len(bars(slow)), len(bars(fast))] == [4, 4]
    # one scale: pixels per second of step time are the same in both blocks
    per_second = [extent(slow) / seconds(sequential), extent(fast) / seconds(parallel)]
    assert per_second[0] == pytest.approx(per_second[1], rel=0.02)
    # so the bars' spans are in the ratio of the wall times (about 2x here), not both the full width
    walls = (sequential.wall_time or 0.0) / (parallel.wall_time or 1.0)
    assert walls > 1.5
    assert extent(slow) / extent(fast) == pytest.approx(walls, rel=0.05)
    # one axis, whose scale is that one; the longest run fills the plot
    axes = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "fm-axis"]
    assert len(axes) == 1
    scale = float(axes[0].get("data-scale", 0))
    assert scale == pytest.approx(PLOT_WIDTH / (sequential.wall_time or 1.0), rel=0.001)
    assert per_second[0] == pytest.approx(scale, rel=0.02)
    assert extent(slow) == pytest.approx(PLOT_WIDTH, rel=0.05)
    assert extent(fast) < 0.65 * PLOT_WIDTH
    # ticks in seconds under the last block only
    ticks = [t.text for t in axes[0].iter(f"{SVG}text")]
    assert ticks[0] == "0" and len(ticks) >= 3 and all(t.endswith("s") for t in ticks[1:])


def test_each_block_is_titled_and_drawn_as_its_timeline(runs: tuple[Run, Run]) -> None:
    sequential, parallel = runs
    picture = flowmagic.compare(sequential, parallel, labels=["sequential", "parallel"])
    slow, fast = blocks(svg_of(picture))
    assert [slow.get("data-label"), fast.get("data-label")] == ["sequential", "parallel"]
    title = next(fast.iter(f"{SVG}text")).text or ""
    assert title.startswith("parallel") and f"wall {parallel.wall_time:.2f}s" in title
    assert f"speed-up {parallel.speedup:.1f}x" in title and "faster than sequential" in title
    # the same bars: one per step, the critical path (a lookup, then d) outlined
    assert sorted(r.get("data-step") for r in bars(fast)) == ["a", "b", "c", "d"]
    outlined = [r.get("data-step") for r in bars(fast) if r.get("data-critical") == "true"]
    assert outlined == [s for s in parallel.critical_path if s in outlined] and "d" in outlined
    # in the parallel block a, b and c start together, in the sequential one they follow each other
    starts = {r.get("data-step"): float(r.get("x", 0)) for r in bars(fast)}
    assert max(starts[s] for s in "abc") - min(starts[s] for s in "abc") < 10
    starts = {r.get("data-step"): float(r.get("x", 0)) for r in bars(slow)}
    assert sorted(starts.values()) == sorted(set(starts.values())) and max(starts.values()) > 200
    html = picture._repr_mimebundle_()["text/html"]
    ratio = (sequential.wall_time or 0.0) / (parallel.wall_time or 1.0)
    headline = f"parallel {parallel.wall_time:.2f} s vs sequential {sequential.wall_time:.2f} s: {ratio:.1f}x faster"
    assert headline in html


def test_the_text_form_is_a_line_per_run_and_the_result(runs: tuple[Run, Run]) -> None:
    sequential, parallel = runs
    picture = flowmagic.compare(sequential, parallel, labels=["sequential", "parallel"])
    text = picture._repr_mimebundle_()["text/plain"]
    assert text == repr(picture)
    first, second, result = text.splitlines()
    assert first.startswith("sequential  wall ") and f"speed-up {sequential.speedup:.1f}x" in first
    assert second.startswith("parallel    wall ") and second.endswith("faster than sequential")
    # the bars of the text form are on one scale too
    assert first.count("█") == 24 and 8 <= second.count("█") <= 16
    ratio = (sequential.wall_time or 0.0) / (parallel.wall_time or 1.0)
    walls = f"parallel {parallel.wall_time:.2f} s vs sequential {sequential.wall_time:.2f} s"
    assert result == f"{walls}: {ratio:.1f}x faster"
    # in the other order the second run is the slower one; the result line is the same
    swapped = flowmagic.compare(parallel, sequential, labels=["parallel", "sequential"]).text().splitlines()
    assert swapped[1].endswith("slower than parallel") and swapped[2] == result


def test_default_labels_a_flow_for_its_last_run_and_mistakes(runs: tuple[Run, Run]) -> None:
    sequential, parallel = runs
    assert flowmagic.compare(sequential, parallel).labels == ["flow naps (sequential)", "flow naps"]
    flow = Flow.from_source("x = 1", name="tiny")
    with pytest.raises(ValueError, match="has not run yet"):
        flowmagic.compare(flow)
    flow.run()
    alone = flowmagic.compare(flow, sequential)
    assert alone.runs[0] is flow.last and alone.labels[0] == f"flow tiny #{default_history.entries('tiny')[-1].number}"
    with pytest.raises(ValueError, match="at least one run"):
        flowmagic.compare()
    with pytest.raises(ValueError, match="2 runs but 1 labels"):
        flowmagic.compare(sequential, parallel, labels=["one"])
    with pytest.raises(TypeError, match="not str"):
        flowmagic.compare(sequential, "parallel")  # type: ignore[arg-type]


@pytest.fixture
def napping(shell: InteractiveShell) -> InteractiveShell:
    """Three runs of ``naps`` in the shell: #1 one step at a time, #2 and #3 in parallel."""
    shell.user_ns["nap"] = nap
    for options in ("--sequential", "", "--workers 2"):
        shell.run_cell_magic("flow", f"naps --no-cache --quiet {options}", SOURCE)
    assert [e.run.status for e in default_history.entries("naps")] == ["succeeded"] * 3
    return shell


def shown(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    found: list[Any] = []
    monkeypatch.setattr(lines, "display", found.append)
    return found


def test_the_line_magic_compares_the_last_two_runs_by_default(
    napping: InteractiveShell, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    found = shown(monkeypatch)
    napping.run_line_magic("flow", "compare naps")
    (picture,) = found
    entries = default_history.entries("naps")
    assert picture.runs == [entries[1].run, entries[2].run]
    assert picture.labels == ["flow naps #2", "flow naps #3 (workers 2)"]
    assert len(blocks(svg_of(picture))) == 2
    monkeypatch.undo()
    capsys.readouterr()
    napping.run_line_magic("flow", "compare naps")  # in a terminal: the text form
    out = capsys.readouterr().out
    assert out.startswith("flow naps #2  ") and " vs " in out.splitlines()[-1]


def test_the_line_magic_takes_run_numbers(napping: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    found = shown(monkeypatch)
    napping.run_line_magic("flow", "compare naps #1 2")
    napping.run_line_magic("flow", "compare naps 3 #2 1")
    two, three = found
    assert two.labels == ["flow naps #1 (sequential)", "flow naps #2"]
    assert two.result().endswith("x faster") and two.result().startswith("flow naps #2 ")
    assert [len(blocks(svg_of(p))) for p in (two, three)] == [2, 3]
    assert three.labels[2] == "flow naps #1 (sequential)"
    # the sequential run, the longest, sets the one scale of both pictures
    sequential = default_history.get("naps", 1)
    for picture in (two, three):
        assert picture.scale == pytest.approx(PLOT_WIDTH / (sequential.wall_time or 1.0))


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("compare naps 9 1", "flow 'naps' has no run #9; the history keeps runs #1 to #3"),
        ("compare naps 1", "takes two or more run numbers"),
        ("compare naps one two", "run numbers are whole numbers like 3 or #3"),
        ("compare", "needs the name of a flow"),
        ("compare nope", "no flow named 'nope'"),
    ],
)
def test_the_line_magic_says_what_is_wrong(napping: InteractiveShell, words: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        napping.run_line_magic("flow", words)


def test_the_line_magic_needs_two_runs(shell: InteractiveShell) -> None:
    shell.user_ns["nap"] = nap
    shell.run_cell_magic("flow", "naps --quiet", SOURCE)
    with pytest.raises(UsageError, match="has run 1 time"):
        shell.run_line_magic("flow", "compare naps")


def test_help_and_completion_know_the_command(napping: InteractiveShell, capsys: Any) -> None:
    napping.run_line_magic("flow", "compare -h")
    assert capsys.readouterr().out.startswith("%flow compare NAME [A B ...]")
    assert "compare" in napping.complete(None, "%flow comp", 10)[1]
    assert napping.complete(None, "%flow compare na", 16)[1] == ["naps"]
    assert napping.complete(None, "%flow compare naps ", 19)[1] == ["1", "2", "3"]
