"""The live flowmagic view in a real JupyterLab, watched from a real Chromium.

It runs the soundtrack flow (offline model, 0.3 s a call) in a notebook and
checks, in the browser's DOM, that a step is seen running while the cell still
executes (live widget updates reach the page), that every step ends succeeded
with a status and a timeline bar each, and that the page logs no widget errors
(the shared steps are in ``pages.py``). With FLOWMAGIC_UPDATE_SCREENSHOT=1 the
view is saved as ``docs/view.png`` for the README.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .pages import VIEW, check_live_and_succeeded, diagnostics, open_notebook, run_flow_cells

if TYPE_CHECKING:
    from .conftest import BrowserPage, JupyterServer

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


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_live_view_in_jupyterlab(browser_page: BrowserPage, lab_server: JupyterServer, tmp_path: Path) -> None:
    page = browser_page.page
    lab_server.write_notebook("soundtrack.ipynb", NOTEBOOK_CELLS)
    with diagnostics(browser_page, lab_server):
        open_notebook(page, lab_server, "soundtrack.ipynb")
        hide_left_sidebar(page)
        run = run_flow_cells(page, len(NOTEBOOK_CELLS))
        check_live_and_succeeded(browser_page, run, STEPS)

        # the README's picture: the view alone, crisp at a device scale factor of 2
        update = os.environ.get("FLOWMAGIC_UPDATE_SCREENSHOT") == "1"
        shot = DOCS_SCREENSHOT if update else tmp_path / "view.png"
        screenshot_view(page, shot)
        assert shot.stat().st_size > 50_000, "the screenshot of the view is suspiciously small"
