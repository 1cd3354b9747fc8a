"""The view as a room sees it, in a real JupyterLab and a real Chromium.

In the light and the dark theme: every text of the live view and of the final picture stands
out from what is behind it (a contrast of at least 4.5:1, computed in the page from the
colours the browser resolved); a click on a node while the run goes on opens that step's detail;
the live view keeps one height from its first repaint to its last; a 20-branch group with
25-character names keeps its node text at 12 px or more as rendered. With
FLOWMAGIC_UPDATE_SCREENSHOT=1 the light and dark views are saved under docs/ for the README.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kernel_helpers import isolated_env

from .pages import diagnostics, open_notebook, page_errors, run_all_cells

if TYPE_CHECKING:
    from .conftest import BrowserPage, JupyterServer

DOCS = Path(__file__).resolve().parents[2] / "docs"
WIDE = "wide_branch_name_number_{:02d}"  # 25 characters

SLOW_FLOW = """\
%%flow room
t = __import__("time")
parallel:
    slow = t.sleep(4)
    quick = t.sleep(0.2)
    other = t.sleep(0.3)
after = (quick, other)
done = (slow, after)"""

# Samples, every 50 ms while the flow cell runs: the live view's height and whether it is live.
WATCH = """
() => {
  window.__fmHeights = [];
  window.__fmWatch = setInterval(() => {
    const live = document.querySelector('.flowmagic-live');
    if (live) window.__fmHeights.push(live.getBoundingClientRect().height);
  }, 50);
}
"""

# Every text element of the view with its colour and the colour behind it, blended, and the
# contrast ratio between them (WCAG's relative luminance).
CONTRAST = """
(selector) => {
  const probe = document.createElement('canvas').getContext('2d');
  const rgba = (css) => {  // any CSS colour the browser resolved -> [r, g, b, a] in 0..255, 0..1
    probe.clearRect(0, 0, 1, 1);
    probe.fillStyle = '#000'; probe.fillStyle = css; probe.fillRect(0, 0, 1, 1);
    const [r, g, b, a] = probe.getImageData(0, 0, 1, 1).data;
    return [r, g, b, a / 255];
  };
  const over = (top, under) => top.slice(0, 3).map((c, i) => c * top[3] + under[i] * (1 - top[3])).concat([1]);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const pageBehind = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) return c;
    }
    return [255, 255, 255, 1];
  };
  const root = document.querySelector(selector);
  if (!root) return null;
  const out = [];
  for (const el of root.querySelectorAll('text, span, th, td, .fm-status, summary')) {
    if (!el.textContent.trim() || el.getBoundingClientRect().width === 0) continue;
    const style = getComputedStyle(el);
    let behind = pageBehind(el.closest('svg') || el);
    const node = el.closest('.fm-node');
    if (node) behind = over(rgba(getComputedStyle(node.querySelector('.fm-box')).fill), behind);
    const bar = el.classList.contains('fm-bar-label') ? el.parentNode.querySelector('.fm-bar') : null;
    if (bar && Number(el.getAttribute('x')) < Number(bar.getAttribute('x')) + Number(bar.getAttribute('width'))) {
      behind = over(rgba(getComputedStyle(bar).fill), behind);
    }
    const ink = over(rgba(el.tagName === 'text' ? style.fill : style.color), behind);
    const [a, b] = [lum(ink), lum(behind)].sort((x, y) => y - x);
    out.push({text: el.textContent.trim().slice(0, 40), ratio: (a + 0.05) / (b + 0.05)});
  }
  return out;
}
"""

# The rendered size of each node name: its font size times the SVG's scale on the page.
NODE_TEXT_PX = """
() => Array.from(document.querySelectorAll('.flowmagic-view .fm-node text')).map((t) => {
  const svg = t.ownerSVGElement;
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  return parseFloat(t.getAttribute('font-size')) * scale;
})
"""


def use_theme(server: JupyterServer, theme: str) -> None:
    """JupyterLab's theme for the next page load (its user settings, read when a page opens)."""
    config = Path(isolated_env(server.root.parent / "user")["JUPYTER_CONFIG_DIR"])
    folder = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "themes.jupyterlab-settings").write_text(json.dumps({"theme": theme}))


def low_contrast(page: Any, selector: str) -> list[dict[str, Any]]:
    found = page.evaluate(CONTRAST, selector)
    assert found, f"no text found in {selector}"
    return [item for item in found if item["ratio"] < 4.5]


@pytest.mark.browser
@pytest.mark.timeout(240)
@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_the_view_reads_in_the_theme_and_a_click_opens_a_step(
    browser_page: BrowserPage, lab_server: JupyterServer, theme: str
) -> None:
    page = browser_page.page
    use_theme(lab_server, theme)
    lab_server.write_notebook("room.ipynb", ["%load_ext flowmagic", SLOW_FLOW])
    with diagnostics(browser_page, lab_server):
        open_notebook(page, lab_server, "room.ipynb")
        dark = page.evaluate("() => document.body.dataset.jpThemeLight") == "false"
        assert dark == ("Dark" in theme), f"the page is not in {theme}"
        page.evaluate(WATCH)
        run_all_cells(page)
        live = page.locator(".flowmagic-live").first
        live.locator('.fm-node[data-step="slow"][data-state="running"]').wait_for(timeout=60_000)
        live.locator('.fm-node[data-step="quick"][data-state="succeeded"]').wait_for(timeout=60_000)

        # while the run goes on: every text reads, and a click on a node opens its detail
        bad = low_contrast(page, ".flowmagic-live")
        assert not bad, f"{theme}, live view: text below 4.5:1 against its background: {bad}"
        live.locator('.fm-node[data-step="quick"]').click()
        live.locator('.fm-detail-box .fm-detail[data-step="quick"]').wait_for(timeout=10_000)
        assert live.locator('.fm-node[data-step="quick"][data-selected="true"]').count() == 1
        live.locator('.fm-bar[data-step="other"]').click()  # a bar of the timeline opens its step too
        live.locator('.fm-detail-box .fm-detail[data-step="other"]').wait_for(timeout=10_000)
        if os.environ.get("FLOWMAGIC_UPDATE_SCREENSHOT") == "1":
            page.mouse.move(0, 0)
            name = "view-dark.png" if dark else "view-light.png"
            live.screenshot(path=str(DOCS / name), animations="disabled")

        # the end: the static picture, in the theme too, and the height did not move while live
        page.locator('.flowmagic-static .fm-status[data-status="succeeded"]').wait_for(timeout=60_000)
        heights = page.evaluate("() => { clearInterval(window.__fmWatch); return window.__fmHeights; }")
        assert len(heights) > 10 and max(heights) - min(heights) < 1, f"the live view's height moved: {heights}"
        bad = low_contrast(page, ".flowmagic-static")
        assert not bad, f"{theme}, final picture: text below 4.5:1 against its background: {bad}"
        errors = page_errors(browser_page)
        assert not errors, f"errors in the browser console: {errors}"


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_a_twenty_branch_group_with_long_names_stays_legible(
    browser_page: BrowserPage, lab_server: JupyterServer
) -> None:
    page = browser_page.page
    body = "".join(f"    {WIDE.format(i)} = t.sleep(3)\n" for i in range(20))
    cell = f"%%flow wide\nt = __import__('time')\nparallel:\n{body}"
    lab_server.write_notebook("wide.ipynb", ["%load_ext flowmagic", cell])
    with diagnostics(browser_page, lab_server):
        open_notebook(page, lab_server, "wide.ipynb")
        run_all_cells(page)
        page.locator('.flowmagic-live .fm-node[data-state="running"]').first.wait_for(timeout=60_000)
        sizes = page.evaluate(NODE_TEXT_PX)
        assert len(sizes) >= 40 and min(sizes) >= 12, f"node text as rendered, px: {sorted(sizes)[:5]}"
        page.locator('.flowmagic-static .fm-status[data-status="succeeded"]').wait_for(timeout=60_000)
        sizes = page.evaluate(NODE_TEXT_PX)
        assert min(sizes) >= 12, f"final picture's node text as rendered, px: {sorted(sizes)[:5]}"
        lanes = page.locator(".flowmagic-static .fm-timeline text.fm-soft").all_text_contents()
        assert all(WIDE.format(i) in lanes for i in range(20)), f"lane names cut or missing: {lanes}"
        if os.environ.get("FLOWMAGIC_UPDATE_SCREENSHOT") == "1":
            page.locator(".flowmagic-static").first.screenshot(path=str(DOCS / "view-wide.png"))


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_two_runs_on_one_time_axis_read_in_the_dark_theme(browser_page: BrowserPage, lab_server: JupyterServer) -> None:
    page = browser_page.page
    use_theme(lab_server, "JupyterLab Dark")
    flow = "t = __import__('time')\nparallel:\n    a = t.sleep(0.6)\n    b = t.sleep(0.6)\n    c = t.sleep(0.6)"
    cells = [
        "%load_ext flowmagic",
        f"%%flow trio --sequential --quiet\n{flow}",
        "sequential = trio.last",
        f"%%flow trio --quiet\n{flow}",
        'import flowmagic\nflowmagic.compare(sequential, trio.last, labels=["sequential", "parallel"])',
    ]
    lab_server.write_notebook("compare.ipynb", cells)
    with diagnostics(browser_page, lab_server):
        open_notebook(page, lab_server, "compare.ipynb")
        run_all_cells(page)
        picture = page.locator(".fm-compare").first
        picture.wait_for(timeout=60_000)
        bad = low_contrast(page, ".fm-compare")
        assert not bad, f"the comparison: text below 4.5:1 against its background: {bad}"
        if os.environ.get("FLOWMAGIC_UPDATE_SCREENSHOT") == "1":
            picture.screenshot(path=str(DOCS / "view-compare.png"))
