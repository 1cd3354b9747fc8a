"""The live view's cost: the same flow run with and without the view watching it.

"With the view" is what a notebook cell does: build the widget, show its first
bundle, paint in the background while the run goes on, then stop painting and
build the static picture that replaces the widget in the cell. Outside a kernel
the widgets' comm discards the messages, so the cost of sending them over
ZeroMQ is not in these numbers; building and serialising them is.

The workload: 1,000 independent steps of 10 ms (``time.sleep``) in one
``parallel`` group, 32 workers: about 0.35 s a run and more than 3,000 events.
The layout is computed once per flow shape, so the repeats reuse it; its
first-time cost is reported on its own.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from typing import Any

from flowmagic import Flow
from flowmagic.engine.runner import run_blocking
from flowmagic.view import layout as layout_module
from flowmagic.view.widget import FlowView

from .workloads import SYNC_NS

TARGET = 1.10


def view_flow(n: int, seconds: float) -> Flow:
    body = "\n".join(f"    s{i} = work({seconds})" for i in range(n))
    return Flow.from_source("parallel:\n" + body + "\n", name="view", namespace=SYNC_NS, workers=32, cache=False)


def without_view(flow: Flow) -> tuple[float, int]:
    t0 = time.perf_counter()
    run = flow.run()
    wall = time.perf_counter() - t0
    assert run.status == "succeeded", run
    return wall, 0


class _Counted:
    """Counts the bytes of every widget message, serialised as the kernel would (JSON)."""

    sent = 0

    @classmethod
    def install(cls) -> None:
        import comm

        target = comm.DummyComm  # no kernel here: the comm a widget gets outside one
        if getattr(target.publish_msg, "_counted", False):
            return
        original = target.publish_msg

        def publish_msg(self: Any, msg_type: str, data: Any = None, *args: Any, **kwargs: Any) -> None:
            cls.sent += len(json.dumps(data, default=str))
            original(self, msg_type, data, *args, **kwargs)

        publish_msg._counted = True  # type: ignore[attr-defined]
        target.publish_msg = publish_msg  # type: ignore[method-assign]


def with_view(flow: Flow) -> tuple[float, int]:
    _Counted.install()
    _Counted.sent = 0
    t0 = time.perf_counter()
    execution = flow.execution()
    view = FlowView(execution.run, flow.shape)
    execution.watch()
    view.mimebundle()
    view.start()
    run = run_blocking(execution)
    bundle = view.final_bundle()  # what the cell keeps when the run is over (as a cell does it)
    wall = time.perf_counter() - t0
    assert run.status == "succeeded" and bundle["text/html"].count('class="fm-node"') == len(flow.steps)
    with_view.sent = _Counted.sent  # type: ignore[attr-defined]  # bytes of every widget message
    return wall, view.updates


def measure(repeat: int, n: int = 1000, seconds: float = 0.01) -> dict[str, Any]:
    flow = view_flow(n, seconds)
    layout_module._cache.clear()
    t0 = time.perf_counter()
    first = layout_module.layout(flow.shape)
    cold_layout = time.perf_counter() - t0
    without_view(flow)  # warm-up, both ways
    with_view(flow)
    plain: list[float] = []
    viewed: list[float] = []
    updates: list[int] = []
    sent: list[int] = []
    for _ in range(repeat):  # interleaved, so drift hits both alike
        gc.collect()
        plain.append(without_view(flow)[0])
        gc.collect()
        wall, count = with_view(flow)
        viewed.append(wall)
        updates.append(count)
        sent.append(with_view.sent)  # type: ignore[attr-defined]
    p, v = statistics.median(plain), statistics.median(viewed)
    return {
        "steps": n,
        "step_seconds": seconds,
        "without_s": p,
        "with_s": v,
        "ratio": v / p,
        "updates": statistics.median(updates),
        "sent_bytes": statistics.median(sent),
        "layout_engine": first.engine,
        "cold_layout_s": cold_layout,
        "samples_without_s": plain,
        "samples_with_s": viewed,
    }


def report(result: dict[str, Any]) -> str:
    ok = "met" if result["ratio"] <= TARGET else "MISSED"
    return "\n".join(
        [
            "| workload | without the view, s | with the view, s | with ÷ without | repaints sent | bytes sent |",
            "|---|---|---|---|---|---|",
            f"| {result['steps']:,} steps of {result['step_seconds'] * 1e3:g} ms, one parallel group | "
            f"{result['without_s']:.3f} | {result['with_s']:.3f} | {result['ratio']:.3f} | {result['updates']:.0f} | "
            f"{result['sent_bytes']:,.0f} |",
            "",
            f"view-overhead ratio {result['ratio']:.3f} (target <= {TARGET}): {ok}. "
            f"First layout of this shape ({result['layout_engine']}): {result['cold_layout_s'] * 1e3:.0f} ms, "
            "then reused.",
        ]
    )
