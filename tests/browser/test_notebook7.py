"""The live flowmagic view in a real Jupyter Notebook 7, watched from a real Chromium.

Notebook 7 (the ``notebook`` package, 7.x) is built from JupyterLab's components but
is its own app: one document a page at ``/notebooks/NAME.ipynb``, its own shell and
toolbar, and it loads the ipywidgets manager as a federated extension of its own.
This runs a small flow (offline model, 0.3 s a call) and checks, in the browser's
DOM, that the page is Notebook 7, that a step is seen running while the cell still
executes, that every step ends succeeded with a status and a timeline bar each, and
that the page logs no widget errors. The shared steps are in ``pages.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .pages import check_live_and_succeeded, diagnostics, open_notebook, run_flow_cells

if TYPE_CHECKING:
    from .conftest import BrowserPage, JupyterServer

FLOW_CELL = """\
%%flow pitch
idea = llm("A one-line product idea about {topic}")
parallel:
    pros = llm("The strongest argument for {idea}")
    cons = llm("The strongest argument against {idea}")
verdict = llm("Weigh {pros} against {cons}: go or no go?")"""
NOTEBOOK_CELLS = ["%load_ext flowmagic", 'topic = "space cats"', FLOW_CELL]  # the flow cell is the last
STEPS = ("idea", "pros", "cons", "verdict")

# the page is Notebook 7's notebook page, not JupyterLab: its template marks the body, its config has the version
WHICH_APP = """
() => {
  const el = document.getElementById('jupyter-config-data');
  const config = el ? JSON.parse(el.textContent) : {};
  return {page: document.body.dataset.notebook ?? null, appName: config.appName ?? null,
          appVersion: config.appVersion ?? null, path: location.pathname};
}
"""


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_live_view_in_notebook7(browser_page: BrowserPage, notebook_server: JupyterServer) -> None:
    page = browser_page.page
    notebook_server.write_notebook("pitch.ipynb", NOTEBOOK_CELLS)
    with diagnostics(browser_page, notebook_server):
        open_notebook(page, notebook_server, "pitch.ipynb")
        app = page.evaluate(WHICH_APP)
        assert app["page"] == "notebooks", f"not Notebook 7's notebook page: {app}"
        assert app["appName"] == "Jupyter Notebook", f"not Notebook 7's notebook page: {app}"
        assert str(app["appVersion"]).startswith("7."), f"not Notebook 7: {app}"
        assert app["path"].endswith("/notebooks/pitch.ipynb"), f"redirected away from the notebook: {app}"

        run = run_flow_cells(page, len(NOTEBOOK_CELLS))
        check_live_and_succeeded(browser_page, run, STEPS)
