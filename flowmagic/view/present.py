"""The view's drawers, registered with the core's :mod:`flowmagic.flow.present` when this loads.

The core asks for a picture of a flow or a run, a history, a diff, a table of variants, a
batch, an evaluation or a progress bar by kind; each is made here, in the view.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ..flow import present
from .batch import batch_html, live_progress
from .compare import diff_html, history_html, table
from .evaluation import evaluation_html
from .picture import FlowPicture, RunPicture


def variants_html(variants: Any) -> str:
    title = f'<div style="font-weight:600;font-size:13px">{escape(variants.title)}</div>'
    return title + table(variants.header, variants.rows, "fm-variants")


present.register("flow", FlowPicture)
present.register("run", RunPicture)
present.register("history", history_html)
present.register("diff", diff_html)
present.register("variants", variants_html)
present.register("batch", batch_html)
present.register("progress", live_progress)
present.register("evaluation", evaluation_html)
