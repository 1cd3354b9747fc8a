"""What the browser tests do in a notebook page, for JupyterLab and Notebook 7 alike.

Both apps build the notebook from the same JupyterLab components, so a cell is a
``.jp-CodeCell`` with a ``.jp-InputPrompt`` (``[*]`` while it runs), the toolbar has
a ``.jp-Notebook-ExecutionIndicator``, and the menu bar has "Run" > "Run All Cells".
Only the URL of a notebook differs (``JupyterServer.notebook_url``).

``run_flow_cells`` runs a notebook whose last cell is a ``%%flow`` cell while a
recorder in the page notes every state the view shows; ``check_live_and_succeeded``
asserts the view was seen live and ended with every step succeeded.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .conftest import BrowserPage, JupyterServer

VIEW = ".flowmagic-view"
NOTEBOOK_READY_TIMEOUT = 60_000  # ms: page load, kernel start-up
RUN_TIMEOUT = 60_000  # ms: a flow takes a few seconds at 0.3 s a call

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
        widget: view.classList.contains('flowmagic-live'),
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
  const box = view.getBoundingClientRect();
  return {
    widget: view.classList.contains('flowmagic-live'),
    static: view.classList.contains('flowmagic-static'),
    details: view.querySelectorAll('details.fm-step').length,
    width: box.width,
    height: box.height,
    status: status ? status.dataset.status : null,
    nodes: Array.from(view.querySelectorAll('.fm-node')).map(n => {
      const r = n.getBoundingClientRect();
      return {step: n.dataset.step, state: n.dataset.state, cached: n.dataset.cached ?? null,
              width: r.width, height: r.height};
    }),
    timelines: view.querySelectorAll('svg.fm-timeline, .fm-timeline').length,
    bars: Array.from(view.querySelectorAll('.fm-timeline .fm-bar')).map(b => b.dataset.step),
  };
}
"""

# console errors that are not about the view: resources an offline server does not have
_NETWORK_NOISE = re.compile(r"Failed to load resource|net::ERR_|favicon", re.IGNORECASE)

# Uncaught errors of the Jupyter app itself, known upstream and not about the view; each is matched with
# the top frame of its stack, so the same message thrown from anywhere else still fails the test.
KNOWN_APP_ERRORS = (
    # Notebook 7: the shortcuts plugin reads registry.plugins[id].schema of a plugin the setting registry has
    # not loaded yet, a race on every page load (https://github.com/jupyter/notebook/issues/7862)
    re.compile(
        r"^TypeError: Cannot read properties of undefined \(reading 'schema'\)\n"
        r"\s+at [^\n]*/static/notebook/notebook_core\.[0-9a-f]+\.js\b"
    ),
)


@contextmanager
def diagnostics(bp: BrowserPage, server: JupyterServer) -> Iterator[None]:
    """Turn any failure into one message with a page screenshot and the server log's tail."""
    try:
        yield
    except Exception as exc:
        # outside pytest's tmp_path, which keeps only the last three runs
        shot = Path(tempfile.gettempdir()) / f"flowmagic-browser-failure-{server.app}.png"
        try:
            bp.page.screenshot(path=str(shot), full_page=True)
            where = f"page screenshot: {shot}"
        except Exception as shot_exc:
            where = f"(no page screenshot: {shot_exc})"
        console = "\n".join(bp.console[-30:]) or "(empty)"
        uncaught = "\n".join(bp.page_errors) or "(none)"
        pytest.fail(
            f"[jupyter {server.app}] {type(exc).__name__}: {exc}\n\n{where}\nserver log: {server.log}\n"
            f"--- browser console (last 30) ---\n{console}\n"
            f"--- page errors (known app errors too) ---\n{uncaught}\n"
            f"--- server log tail ---\n{server.log_tail()}",
            pytrace=False,
        )


def open_notebook(page: Any, server: JupyterServer, name: str) -> None:
    """Open the notebook ``name`` in the server's app and wait until its kernel can run cells."""
    page.goto(server.notebook_url(name), wait_until="domcontentloaded")
    # the kernel is up, idle and connected to the page: cells run before that are dropped
    server.wait_for_kernel(name, timeout=NOTEBOOK_READY_TIMEOUT / 1000)
    page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first.wait_for(
        state="attached", timeout=NOTEBOOK_READY_TIMEOUT
    )
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=NOTEBOOK_READY_TIMEOUT)


def run_all_cells(page: Any) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def page_errors(bp: BrowserPage) -> list[str]:
    """Console errors (ipywidgets reports a view or model it cannot render there) and uncaught exceptions.

    Offline network noise and the app's own ``KNOWN_APP_ERRORS`` are left out.
    """
    errors = [line for line in bp.console if line.startswith("error:") and not _NETWORK_NOISE.search(line)]
    uncaught = [e for e in bp.page_errors if not any(known.search(e) for known in KNOWN_APP_ERRORS)]
    return errors + [f"uncaught: {e}" for e in uncaught]


@dataclass
class FlowRun:
    seen: list[dict[str, Any]]  # what the recorder saw, in order
    final: dict[str, Any] | None  # SNAPSHOT of the finished view
    elapsed: float  # s, from "Run All Cells" to the flow cell's final prompt


def run_flow_cells(page: Any, n_cells: int) -> FlowRun:
    """Run every cell of the open notebook (the last of ``n_cells`` is the flow) and watch the view."""
    page.evaluate(RECORDER)
    started = time.monotonic()
    run_all_cells(page)
    page.locator(VIEW).first.wait_for(timeout=RUN_TIMEOUT)
    page.wait_for_function(FINISHED, timeout=RUN_TIMEOUT, polling=50)
    # the cell has finished: its prompt reads [n], not [*]
    page.locator(".jp-Notebook .jp-CodeCell").nth(n_cells - 1).locator(".jp-InputPrompt").filter(
        has_text=re.compile(r"\[\d+\]")
    ).wait_for(timeout=RUN_TIMEOUT)
    elapsed = time.monotonic() - started
    page.evaluate("() => clearInterval(window.__fmTimer)")
    return FlowRun(seen=page.evaluate("() => window.__fmSeen"), final=page.evaluate(SNAPSHOT), elapsed=elapsed)


def check_live_and_succeeded(bp: BrowserPage, run: FlowRun, steps: tuple[str, ...]) -> None:
    """The view was seen live, ended with every step succeeded, and the page logged no errors."""
    # (1) live: a step was seen running while the flow cell was still executing
    seen = run.seen
    running = [
        s for s in seen if s["state"] == "running" and s["executing"] and s["status"] == "running" and s["widget"]
    ]
    assert running, (
        f"no step was ever seen running while the cell executed (run took {run.elapsed:.1f} s); "
        f"states seen in the page: {seen}"
    )

    # (2) the end: every step succeeded, the status says so, one timeline bar per step
    final = run.final
    assert final is not None, "the .flowmagic-view element disappeared"
    # once the run is over, the live widget has given way to its static picture, with every step's detail
    assert final["static"] and not final["widget"], f"the finished view is not the static picture: {final}"
    assert final["details"] == len(steps), f"expected a detail per step, got {final['details']}"
    assert final["width"] > 0 and final["height"] > 0, f"the view has no size: {final}"
    assert len(final["nodes"]) == len(steps), f"expected {len(steps)} .fm-node, got {final['nodes']}"
    states = {n["step"]: n["state"] for n in final["nodes"]}
    assert states == dict.fromkeys(steps, "succeeded"), f"final node states: {final['nodes']}"
    flat = [n["step"] for n in final["nodes"] if not (n["width"] > 0 and n["height"] > 0)]
    assert not flat, f"these .fm-node have no size on the page: {flat}"
    assert final["status"] == "succeeded", f".fm-status has data-status={final['status']!r}"
    assert bp.page.locator(f"{VIEW} .fm-status[data-status=succeeded]").count() == 1
    assert final["timelines"] >= 1, "no .fm-timeline in the view"
    assert sorted(final["bars"]) == sorted(steps), f"timeline bars: {final['bars']}"

    # (3) the widget rendered without errors in the page
    errors = page_errors(bp)
    assert not errors, f"errors in the browser console: {errors}"
