"""Make docs/view.png: the README's "30 seconds" soundtrack flow, run on the offline model, drawn
as a finished cell draws it (the DAG, the timeline, one review's detail), in headless Chromium.

    python docs/make_view_png.py          # needs playwright and a chromium on PATH (or CHROMIUM=...)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

from flowmagic import Flow
from flowmagic.view.detail import step_html
from flowmagic.view.picture import run_html

ROOT = Path(__file__).resolve().parent.parent
#: the "30 seconds" flow of README.md, as the CLI example ships it
SOUNDTRACK = ROOT / "examples" / "soundtrack.flow"


def main() -> None:
    os.environ.setdefault("FLOWMAGIC_OFFLINE_LATENCY", "0.2")
    flow = Flow.from_source(SOUNDTRACK.read_text(), name="soundtrack", model="offline", cache=False)
    run = flow.run(topic="space cats")
    assert run.status == "succeeded", run.summary()
    page = f"<html><body style='margin:12px;font-family:sans-serif;background:white'>{run_html(run)}"
    page += f"<h4 style='margin:16px 0 4px'>step reviews[2]</h4>{step_html(run, 'reviews[2]')}</body></html>"
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "no chromium on PATH: install Debian's chromium, or set CHROMIUM"
    out = Path(__file__).with_name("view.png")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1020, "height": 800}, device_scale_factor=2)
        tab.set_content(page)
        tab.screenshot(path=str(out), full_page=True)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
