"""One step in detail, as HTML: status, timings, attempts, prompt, tokens, what it printed, output or error."""

from __future__ import annotations

import base64
import reprlib
from html import escape
from typing import Any

from ..engine.record import Run, format_error
from .style import INK, PAPER, SOFT_INK, state_colour

PREVIEW = 2000  # characters of an output shown; the full value is run["step"]

_repr = reprlib.Repr()
_repr.maxstring = PREVIEW
_repr.maxother = PREVIEW
_repr.maxlist = _repr.maxdict = _repr.maxtuple = _repr.maxset = 50


def preview(value: Any) -> str:
    """A bounded text of a value: strings as they are, anything else as a short repr."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = _repr.repr(value)
        except Exception as exc:  # a broken __repr__ must not break the view
            text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= PREVIEW else text[:PREVIEW] + f"… ({len(text) - PREVIEW} more characters)"


def step_html(run: Run, name: str, now: float | None = None) -> str:
    record = run.steps.get(name)
    if record is None:
        return f"<i>no step {escape(name)!s}</i>"
    rows: list[tuple[str, str]] = [("status", record.status + (" (cached)" if record.cached else ""))]
    if record.reason:
        rows.append(("why", record.reason))
    if record.cache_note and not record.cached:
        rows.append(("cache", record.cache_note))
    if record.started is not None and run.started is not None:
        rows.append(("started", f"+{record.started - run.started:.3f}s"))
    if record.first_token is not None:
        wait = f"{record.first_token:.3f}s after the request"
        queued = run.queued().get(name, 0.0) if run.finished is not None else 0.0
        if queued >= 0.01:
            wait += f", {queued:.3f}s of it in the server's queue (not in the speed-up)"
        rows.append(("first token", wait))
    if record.waited is not None:
        rows.append(("waited", f"{record.waited:.3f}s for a cluster worker (not in its time)"))
    if record.duration is not None:
        rows.append(("took", f"{record.duration:.3f}s"))
    elif record.started is not None and now is not None:
        rows.append(("running for", f"{now - record.started:.1f}s"))
    if record.attempts > 1:
        rows.append(("attempts", str(record.attempts)))
    if record.deps:
        rows.append(("after", ", ".join(record.deps)))
    if record.kind == "loop":
        steps = [r for r in list(run.steps.values()) if r.map == name]
        bad = [r.name for r in steps if r.status == "failed"]
        count = f"{record.elements}" if record.elements is not None else "so far:"
        names = ", ".join(r.name for r in steps[:12]) + ("..." if len(steps) > 12 else "")
        text = f"{count} ({len(steps)} steps: {names})" + (f"; failed: {', '.join(bad[:10])}" if bad else "")
        rows.append(("iterations", text))
    elif any(r.map == name and r.name.startswith(name + "/") for r in list(run.steps.values())):
        inner = [r for r in list(run.steps.values()) if r.map == name]
        ok = sum(r.status == "succeeded" for r in inner)
        names = ", ".join(r.name for r in inner[:12]) + ("..." if len(inner) > 12 else "")
        rows.append(("subflow", f"{ok}/{len(inner)} steps succeeded: {names}"))
    elif record.elements is not None:
        elements = [r for r in list(run.steps.values()) if r.map == name]
        ok = sum(r.status == "succeeded" for r in elements)
        bad = [r.name for r in elements if r.status == "failed"]
        text = f"{ok}/{record.elements} succeeded"
        rows.append(("elements", text + (f"; failed: {', '.join(bad[:10])}" if bad else "")))
    llm = record.llm or {}
    if llm.get("model"):
        offline = " (offline: embedded model, no network)" if llm.get("offline") else ""
        if llm.get("replayed"):
            offline = f" (replayed from {llm['replayed']}: no network)"
        rows.append(("model", str(llm["model"]) + offline))
    if llm.get("prompt_tokens") is not None or llm.get("completion_tokens") is not None:
        spent = f"{llm.get('prompt_tokens', '-')} in, {llm.get('completion_tokens', '-')} out"
        if llm.get("cost") is not None:
            spent += f", ${llm['cost']:.4f}"
        if llm.get("tokens_estimated"):
            spent += " (estimated: the server reported no usage)" if not llm.get("offline") else " (estimated)"
        rows.append(("tokens", spent + (" (in the run that cached it)" if record.cached else "")))
    cell = "padding:1px 12px 1px 0;border:0;text-align:left;vertical-align:top"
    table = "".join(
        f'<tr><th style="{cell};color:{SOFT_INK};font-weight:500">{escape(k)}</th>'
        f'<td style="{cell};color:{INK}">{escape(v)}</td></tr>'
        for k, v in rows
    )
    blocks = [f'<table style="font-size:12px;border-collapse:collapse;margin:4px 0">{table}</table>']
    if llm.get("system"):
        blocks.append(_block("system", str(llm["system"])))
    if llm.get("prompt"):
        blocks.append(_block("prompt", str(llm["prompt"])))
    if llm.get("answer") and record.status != "succeeded":  # streaming in, or a schema failure's raw answer
        blocks.append(_block("answer so far" if record.status == "running" else "raw answer", str(llm["answer"])))
    if record.stdout:
        blocks.append(_block("printed", record.stdout))
    if record.stderr:
        blocks.append(_block("printed to stderr", record.stderr, tint=state_colour("cancelled")))
    if record.error is not None:
        blocks.append(_block("error", format_error(record.error), tint=state_colour("failed")))
    elif name in run.outputs:
        value = run.outputs[name]
        shown = rich(value)
        blocks.append(_rich_block("output", shown) if shown is not None else _block("output", preview(value)))
    # line-height: widget HTML boxes default to one widget row (28px) per line
    return f'<div class="fm-detail" data-step="{escape(name)}" style="line-height:1.4">{"".join(blocks)}</div>'


#: The largest rich output a detail shows (HTML characters, or an image's bytes); a larger one is text.
MAX_RICH = 200_000


def rich(value: Any) -> str | None:
    """``value`` as a notebook shows it, when it says how: its ``_repr_html_`` (a DataFrame's table)
    or its ``_repr_png_`` (an image), if not too large; else None (the detail shows text)."""
    if isinstance(value, (str, bytes, int, float, bool, list, tuple, dict, set, type(None))):
        return None
    try:
        html = getattr(value, "_repr_html_", None)
        if callable(html):
            text = html()
            if isinstance(text, str) and len(text) <= MAX_RICH:
                return text
        png = getattr(value, "_repr_png_", None)
        if callable(png):
            data = png()
            if isinstance(data, bytes) and len(data) <= MAX_RICH:
                encoded = base64.b64encode(data).decode()
                return f'<img alt="output" style="max-width:100%" src="data:image/png;base64,{encoded}"/>'
    except Exception:  # a broken _repr_ must not break the view: the text is shown instead
        return None
    return None


def _rich_block(title: str, html: str) -> str:
    return (
        f'<div style="font-size:12px;color:{SOFT_INK};margin-top:6px">{escape(title)}</div>'
        f'<div class="fm-rich" style="max-height:24em;overflow:auto;color:{INK}">{html}</div>'
    )


def _block(title: str, text: str, tint: str | None = None) -> str:
    """A titled box of text, in the theme's colours (``tint``: a colour mixed into its background)."""
    background = f"color-mix(in srgb,{tint} 14%,{PAPER})" if tint else f"color-mix(in srgb,{INK} 5%,{PAPER})"
    return (
        f'<div style="font-size:12px;color:{SOFT_INK};margin-top:6px">{escape(title)}</div>'
        '<pre style="white-space:pre-wrap;word-break:normal;overflow-wrap:break-word;margin:2px 0;padding:6px 8px;'
        f'background:#f9fafb;background:{background};color:#111827;color:{INK};font-size:12px;max-height:16em;'
        f'overflow:auto">{escape(preview(text))}</pre>'
    )
