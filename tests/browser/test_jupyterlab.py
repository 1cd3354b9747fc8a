"""The live flowmagic view in a real JupyterLab, watched from a real Chromium.

It runs the soundtrack flow (offline model, 0.3 s a call) in a notebook and
checks, in the browser's DOM, that a step is seen running while the cell still
executes (live widget updates reach the page), that every step ends succeeded
with a status and a timeline bar each, and that the page logs no widget errors.
The view is saved as ``docs/view.png`` for the README.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .conftest import BrowserPage, LabServer

# the README's picture; a run rewrites it only when asked, so the suite leaves the tree clean:
# FLOWMAGIC_UPDATE_SCREENSHOT=1 python -m pytest tests/browser
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "view.png"

TOPIC_CELL = 'topic = "space cats"'
FLOW_CELL = """\
%%flow soundtrack
title = llm("What is a good title of a movie about {topic}?")
parallel:
    song       = llm("A song title for a movie called {title}?")
    characters = llm("Two main characters for a movie called {title}?")
lyrics = llm("Lyrics for {song}, sung by {characters}")
parallel critics:
    critic_1 = llm("As a film critic, rate: {lyrics}")
    critic_2 = llm("As a music critic, rate: {lyrics}")
    critic_3 = llm("As a teenager, rate: {lyrics}")"""
NOTEBOOK_CELLS = ["%load_ext flowmagic", TOPIC_CELL, FLOW_CELL]  # the flow cell is the last
STEPS = ("title", "song", "characters", "lyrics", "critic_1", "critic_2", "critic_3")

VIEW = ".flowmagic-view"
NOTEBOOK_READY_TIMEOUT = 60_000  # ms: page load, kernel start-up
RUN_TIMEOUT = 60_000  # ms: the flow takes about 2 s at 0.3 s a call

# Recorded in the page every 20 ms from before the run starts: each (step, state)
# the view shows, the first time it is seen, with the view's status and whether the
# flow cell was still executing (its prompt reads [*]) at that moment.
RECORDER = """
() => {
  window.__fmSeen = [];
  const seen = new Set();
  const tick = () => {
    const view = document.querySelector('.flowmagic-view');
    if (!view) return;
    const status = view.querySelector('.fm-status');
    const flowCell = view.closest('.jp-CodeCell');
    const prompt = flowCell ? (flowCell.querySelector('.jp-InputPrompt')?.textContent ?? '') : '';
    for (const node of view.querySelectorAll('.fm-node')) {
      const key = node.dataset.step + ':' + node.dataset.state;
      if (seen.has(key)) continue;
      seen.add(key);
      window.__fmSeen.push({
        step: node.dataset.step,
        state: node.dataset.state,
        status: status ? status.dataset.status : null,
        executing: prompt.includes('*'),
        t: performance.now(),
      });
    }
  };
  window.__fmTimer = setInterval(tick, 20);
}
"""

# the run is over: the view's status is final
FINISHED = """
() => {
  const status = document.querySelector('.flowmagic-view .fm-status');
  return !!status && ['succeeded', 'failed', 'cancelled'].includes(status.dataset.status);
}
"""

SNAPSHOT = """
() => {
  const view = document.querySelector('.flowmagic-view');
  if (!view) return null;
  const status = view.querySelector('.fm-status');
  return {
    widget: view.classList.contains('jupyter-widgets'),
    status: status ? status.dataset.status : null,
    nodes: Array.from(view.querySelectorAll('.fm-node')).map(n => ({
      step: n.dataset.step, state: n.dataset.state, cached: n.dataset.cached ?? null,
    })),
    timelines: view.querySelectorAll('svg.fm-timeline, .fm-timeline').length,
    bars: Array.from(view.querySelectorAll('.fm-timeline .fm-bar')).map(b => b.dataset.step),
  };
}
"""

# console errors that are not about the view: resources an offline server does not have
_NETWORK_NOISE = re.compile(r"Failed to load resource|net::ERR_|favicon", re.IGNORECASE)


@contextmanager
def diagnostics(bp: BrowserPage, server: LabServer) -> Iterator[None]:
    """Turn any failure into one message with a page screenshot and the server log's tail."""
    try:
        yield
    except Exception as exc:
        # outside pytest's tmp_path, which keeps only the last three runs
        shot = Path(tempfile.gettempdir()) / "flowmagic-browser-failure.png"
        try:
            bp.page.screenshot(path=str(shot), full_page=True)
            where = f"page screenshot: {shot}"
        except Exception as shot_exc:
            where = f"(no page screenshot: {shot_exc})"
        console = "\n".join(bp.console[-30:]) or "(empty)"
        pytest.fail(
            f"{type(exc).__name__}: {exc}\n\n{where}\nserver log: {server.log}\n"
            f"--- browser console (last 30) ---\n{console}\n"
            f"--- page errors ---\n{bp.page_errors or '(none)'}\n"
            f"--- server log tail ---\n{server.log_tail()}",
            pytrace=False,
        )


def open_notebook(page: Any, server: LabServer, name: str) -> None:
    page.goto(server.url(f"lab/tree/{name}"), wait_until="domcontentloaded")
    # the kernel is up, idle and connected to the page: cells run before that are dropped
    server.wait_for_kernel(name, timeout=NOTEBOOK_READY_TIMEOUT / 1000)
    page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first.wait_for(
        state="attached", timeout=NOTEBOOK_READY_TIMEOUT
    )
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=NOTEBOOK_READY_TIMEOUT)


def hide_left_sidebar(page: Any) -> None:
    """Collapse the file browser so the notebook, and the view, get the page's full width."""
    current = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if current.count():
        current.first.click()
    page.locator("#jp-left-stack").wait_for(state="hidden", timeout=10_000)


def screenshot_view(page: Any, path: Path) -> None:
    """The whole view, however tall: the page grows until the notebook shows all of it."""
    view = page.locator(VIEW).first
    for _ in range(3):
        view.scroll_into_view_if_needed()
        box, panel = view.bounding_box(), page.locator(".jp-NotebookPanel-notebook").first.bounding_box()
        if box is None or panel is None or box["height"] <= panel["height"] - 20:
            break
        size = page.viewport_size
        page.set_viewport_size(
            {"width": size["width"], "height": int(size["height"] + box["height"] - panel["height"] + 60)}
        )
    page.mouse.move(0, 0)  # no hover highlight in the picture
    path.parent.mkdir(exist_ok=True)
    view.screenshot(path=str(path), animations="disabled")


def run_all_cells(page: Any) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def page_errors(bp: BrowserPage) -> list[str]:
    """Console errors (ipywidgets reports a view or model it cannot render there) and uncaught exceptions."""
    errors = [line for line in bp.console if line.startswith("error:") and not _NETWORK_NOISE.search(line)]
    return errors + [f"uncaught: {e}" for e in bp.page_errors]


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_live_view_in_jupyterlab(browser_page: BrowserPage, lab_server: LabServer, tmp_path: Path) -> None:
    page = browser_page.page
    lab_server.write_notebook("soundtrack.ipynb", NOTEBOOK_CELLS)
    with diagnostics(browser_page, lab_server):
        open_notebook(page, lab_server, "soundtrack.ipynb")
        hide_left_sidebar(page)
        page.evaluate(RECORDER)
        started = time.monotonic()
        run_all_cells(page)

        page.locator(VIEW).first.wait_for(timeout=RUN_TIMEOUT)
        page.wait_for_function(FINISHED, timeout=RUN_TIMEOUT, polling=50)
        # the cell has finished: its prompt reads [3], not [*]
        page.locator(".jp-Notebook .jp-CodeCell").nth(len(NOTEBOOK_CELLS) - 1).locator(".jp-InputPrompt").filter(
            has_text=re.compile(r"\[\d+\]")
        ).wait_for(timeout=RUN_TIMEOUT)
        elapsed = time.monotonic() - started
        page.evaluate("() => clearInterval(window.__fmTimer)")
        seen: list[dict[str, Any]] = page.evaluate("() => window.__fmSeen")
        final = page.evaluate(SNAPSHOT)

        # (1) live: a step was seen running while the flow cell was still executing
        running = [s for s in seen if s["state"] == "running" and s["executing"] and s["status"] == "running"]
        assert running, (
            f"no step was ever seen running while the cell executed (run took {elapsed:.1f} s); "
            f"states seen in the page: {seen}"
        )

        # (2) the end: every step succeeded, the status says so, one timeline bar per step
        assert final is not None, "the .flowmagic-view element disappeared"
        assert final["widget"], "the .flowmagic-view element is not a rendered ipywidget (no .jupyter-widgets class)"
        assert len(final["nodes"]) == len(STEPS), f"expected {len(STEPS)} .fm-node, got {final['nodes']}"
        states = {n["step"]: n["state"] for n in final["nodes"]}
        assert states == dict.fromkeys(STEPS, "succeeded"), f"final node states: {final['nodes']}"
        assert final["status"] == "succeeded", f".fm-status has data-status={final['status']!r}"
        assert page.locator(f"{VIEW} .fm-status[data-status=succeeded]").count() == 1
        assert final["timelines"] >= 1, "no .fm-timeline in the view"
        assert sorted(final["bars"]) == sorted(STEPS), f"timeline bars: {final['bars']}"

        # (3) the widget rendered without errors in the page
        errors = page_errors(browser_page)
        assert not errors, f"errors in the browser console: {errors}"

        # the README's picture: the view alone, crisp at a device scale factor of 2
        update = os.environ.get("FLOWMAGIC_UPDATE_SCREENSHOT") == "1"
        shot = DOCS_SCREENSHOT if update else tmp_path / "view.png"
        screenshot_view(page, shot)
        assert shot.stat().st_size > 50_000, "the screenshot of the view is suspiciously small"
