"""``%%flow`` in a real ipykernel, driven over ZMQ by jupyter_client.

One kernel serves the module. Its HOME, XDG_*, JUPYTER_* and IPYTHONDIR live in a
pytest temporary directory, so nothing is written to the user's real dirs. Without
ipykernel or jupyter_client these tests fail (the import below), never skip.
"""

from __future__ import annotations

import re
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_helpers import Kernel, Output, Result, interrupt_now, kernel_session

pytestmark = pytest.mark.timeout(90)

SETUP = '''
%load_ext flowmagic
import threading, time
from flowmagic.engine.runner import loops
from flowmagic.engine.workers import shared_pool

calls = []

def nap(i, seconds=0.3):
    """A plain notebook function: sleeps on a worker thread, returns its argument."""
    time.sleep(seconds)
    return i

def quick():
    return 42

def slow(x, seconds=5.0):
    time.sleep(seconds)
    return x

def fetch_user(user_id):
    calls.append(user_id)
    return {"id": user_id}

def flowmagic_threads():
    """flowmagic's threads at work: the shared pool's idle workers and idle run loops outlive runs, by design."""
    idle = set(loops.idle())
    return shared_pool().at_work(t.name for t in threading.enumerate() if "flowmagic" in t.name and t.name not in idle)

def working():
    """Threads alive but the shared pool's idle workers and the idle run loops."""
    return threading.active_count() - shared_pool().idle - len(loops.idle())

def wait_for_threads(count=None, timeout=10.0):
    """Poll until only `count` threads are at work (or no flowmagic threads if count is None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (working() == count) if count is not None else not flowmagic_threads():
            break
        time.sleep(0.05)
    return working()

def wait_for_end(flow, timeout=10.0):
    deadline = time.monotonic() + timeout
    while flow.last.status == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    return flow.last.status
'''

FILE_FRAME = re.compile(r'File "/')
CARET_LINE = re.compile(r"^\s*\^+\s*$", re.M)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    root = tmp_path_factory.mktemp("kernel")
    with kernel_session(root, {"FLOWMAGIC_OFFLINE_LATENCY": "0.02"}) as k:
        k.ok(SETUP)
        yield k
    # shut down: the kernel process is gone
    assert not k.km.is_alive()


def cell(text: str) -> str:
    """A cell's source from an indented triple-quoted string; its first line is line 1."""
    return textwrap.dedent(text).lstrip("\n")


def error_of(result: Result) -> Output:
    assert result.status == "error", f"expected an error, got {result.reply!r}\n{result.text}"
    errors = result.errors
    assert len(errors) == 1, result.outputs
    return errors[0]


def assert_no_flowmagic_frames(text: str) -> None:
    assert not FILE_FRAME.search(text), f"a traceback frame is shown:\n{text}"
    assert "flowmagic/" not in text and "Traceback" not in text, text


# -- the kernel itself ------------------------------------------------------------------------
def test_kernel_is_isolated_in_a_temporary_directory(kernel: Kernel) -> None:
    root = str(kernel.root)
    env = kernel.value(
        "{k: __import__('os').environ.get(k) for k in ("
        "'HOME', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'XDG_CACHE_HOME', 'JUPYTER_CONFIG_DIR', "
        "'JUPYTER_DATA_DIR', 'JUPYTER_RUNTIME_DIR', 'IPYTHONDIR', 'FLOWMAGIC_OFFLINE_LATENCY')}"
    )
    assert env.pop("FLOWMAGIC_OFFLINE_LATENCY") == "0.02"
    for key, value in env.items():
        assert value is not None and value.startswith(root), (key, value)
    assert kernel.value("get_ipython().profile_dir.location").startswith(root)
    assert kernel.value("__import__('sys').executable") == sys.executable
    assert Path(kernel.km.connection_file).is_relative_to(root)


# -- 1. parallel steps overlap ---------------------------------------------------------------
def test_parallel_group_of_notebook_functions_overlaps(kernel: Kernel) -> None:
    result = kernel.execute(
        cell("""
        %%flow naps
        parallel:
            a = nap(1)
            b = nap(2)
            c = nap(3)
            d = nap(4)
        """)
    )
    assert result.status == "ok", result.text
    assert not result.errors
    assert kernel.value("type(naps).__module__ + '.' + type(naps).__name__") == "flowmagic.flow.flow.Flow"
    assert kernel.value("naps.last.status") == "succeeded"
    assert kernel.value("naps.last.outputs") == {"a": 1, "b": 2, "c": 3, "d": 4}
    steps = kernel.value("{n: [r.status, r.started, r.finished] for n, r in naps.last.steps.items()}")
    assert set(steps) == {"a", "b", "c", "d"}
    assert all(status == "succeeded" for status, _, _ in steps.values()), steps
    starts = [started for _, started, _ in steps.values()]
    finishes = [finished for _, _, finished in steps.values()]
    # all four were running at once: every one started before any one finished
    assert max(starts) < min(finishes), steps
    # the cell's display ends with the summary
    displays = [o for o in result.outputs if o.kind in ("display_data", "update_display_data")]
    assert displays and "succeeded" in displays[-1].text, displays


# -- 2. errors without a traceback ----------------------------------------------------------
def test_syntax_error_shows_caret_at_cell_line_without_traceback(kernel: Kernel) -> None:
    result = kernel.execute("%%flow broken\nx = quick()\na = fetch_user(1\n")
    error = error_of(result)
    assert result.reply is not None and result.reply["ename"] == "FlowSyntaxError"
    assert error.ename == "FlowSyntaxError"
    text = error.text
    assert_no_flowmagic_frames(text)
    # line 1 is the %%flow line, so the broken step is on line 3
    assert "line 3" in (error.evalue or ""), error.evalue
    assert re.search(r"<flow>\"?(?::|, line )3\b", text), text
    lines = text.splitlines()
    source = next(i for i, line in enumerate(lines) if "a = fetch_user(1" in line)
    caret = lines[source + 1]
    assert CARET_LINE.match(caret), text
    assert lines[source][caret.index("^")] == "(", f"the caret should point at the unclosed '(':\n{text}"
    # nothing bound, nothing called
    assert kernel.value("'broken' in globals()") is False


def test_unknown_name_suggests_the_close_one_without_traceback(kernel: Kernel) -> None:
    result = kernel.execute("%%flow users\nfirst = quick()\nuser = fetch_usr(first)\n")
    error = error_of(result)
    assert result.reply is not None and result.reply["ename"] == "FlowDefinitionError"
    text = error.text
    assert_no_flowmagic_frames(text)
    assert "fetch_usr" in text and "Did you mean 'fetch_user'?" in text, text
    assert "line 3" in text, text  # the cell line of 'user = fetch_usr(first)'
    lines = text.splitlines()
    source = next(i for i, line in enumerate(lines) if "user = fetch_usr(first)" in line)
    caret = lines[source + 1]
    assert CARET_LINE.match(caret), text
    assert lines[source][caret.index("^") :].startswith("fetch_usr"), text
    assert kernel.value("calls") == []

    # no suggestion when nothing is close
    result = kernel.execute("%%flow users\nuser = zqxjvw(1)\n")
    error = error_of(result)
    assert error.ename == "FlowDefinitionError"
    assert "zqxjvw" in error.text and "Did you mean" not in error.text, error.text
    assert_no_flowmagic_frames(error.text)


# -- 6. --dry-run ----------------------------------------------------------------------------
def test_dry_run_shows_every_step_and_runs_nothing(kernel: Kernel) -> None:
    names = ["profile", "orders", "reviews", "title", "report"]
    result = kernel.execute(
        cell("""
        %%flow plan --dry-run
        profile = fetch_user(7)
        parallel:
            orders = fetch_user(profile['id'])
            reviews = slow(profile, 30)
            title = llm("A title for {profile}")
        report = [orders, reviews, title]
        """)
    )
    assert result.status == "ok", result.text
    shown = "\n".join(o.text for o in result.outputs if o.kind in ("display_data", "stream", "execute_result"))
    for name in names:
        assert re.search(rf"\b{name}\b", shown), f"{name} missing from the outline:\n{shown}"
    assert kernel.value("plan.last is None") is True
    assert kernel.value("calls") == []
    assert kernel.value("flowmagic_threads()") == []


# -- 5. --background ------------------------------------------------------------------------
def test_background_returns_at_once_and_updates_its_display(kernel: Kernel) -> None:
    result = kernel.execute(
        cell("""
        %%flow later --background
        parallel:
            a = nap(1, 1.0)
            b = nap(2, 1.0)
        total = a + b
        """)
    )
    assert result.status == "ok", result.text
    # the reply came while the steps still sleep
    assert kernel.value("later.last.status") == "running"
    assert kernel.value("later.last.steps['total'].status") == "pending"
    first = next(o for o in result.outputs if o.kind == "display_data")
    assert first.display_id, first

    assert kernel.value("wait_for_end(later)") == "succeeded"
    assert kernel.value("later.last.outputs") == {"a": 1, "b": 2, "total": 3}

    def summary_arrived() -> bool:
        return any(
            o.kind == "update_display_data" and o.display_id == first.display_id and "succeeded" in o.text
            for o in [*result.outputs, *kernel.stray]
        )

    kernel.wait_until(summary_arrived, 5.0, "the summary update of the background display")
    updates = [o for o in [*result.outputs, *kernel.stray] if o.kind == "update_display_data"]
    final = [o for o in updates if o.display_id == first.display_id][-1]
    assert "later" in final.text and "succeeded" in final.text, final.text
    assert kernel.value("wait_for_threads()") and kernel.value("flowmagic_threads()") == []


# -- 4. no leaked threads --------------------------------------------------------------------
def interrupt(kernel: Kernel, code: str, after: float = 0.5) -> tuple[Result, float]:
    """Send ``code``, interrupt it ``after`` seconds after the kernel went busy; (result, seconds to reply)."""
    result = kernel.send(code)
    kernel.wait_busy(result)
    time.sleep(max(0.0, result.busy_time + after - time.monotonic()))  # type: ignore[operator]
    return result, interrupt_now(kernel, result)


def test_no_threads_leak_after_a_normal_or_an_interrupted_run(kernel: Kernel) -> None:
    # threads left sleeping by earlier tests must be gone before counting
    kernel.value("wait_for_threads()")
    assert kernel.value("flowmagic_threads()") == []
    before = kernel.value("working()")

    result = kernel.execute("%%flow normal\nparallel:\n    a = nap(1, 0.1)\n    b = nap(2, 0.1)\n    c = nap(3, 0.1)\n")
    assert result.status == "ok", result.text
    assert kernel.value("normal.last.status") == "succeeded"
    kernel.value("wait_for_threads()")  # a worker hands its step back a moment before it is idle again
    assert kernel.value("flowmagic_threads()") == []
    assert kernel.value(f"wait_for_threads({before})") == before  # the idle workers took the next run

    code = "%%flow stopped\nfirst = quick()\nparallel:\n    x = slow(first, 1.5)\n    y = slow(first, 1.5)\n"
    result, _ = interrupt(kernel, code)
    assert result.status == "error" and result.reply is not None and result.reply["ename"] == "FlowInterrupted"
    # the abandoned steps sleep 1.5 s; once they return their threads must exit
    assert kernel.value(f"wait_for_threads({before}, timeout=6.0)") == before
    assert kernel.value("flowmagic_threads()") == []


# -- 3. interrupt ----------------------------------------------------------------------------
INTERRUPTED = cell("""
    %%flow chain
    a = quick()
    parallel:
        s1 = slow(a)
        s2 = slow(a)
        s3 = slow(a)
    c = [s1, s2, s3]
    """)


def test_interrupt_cancels_keeps_finished_steps_and_kernel_goes_on(kernel: Kernel) -> None:
    for cycle in range(5):
        result, waited = interrupt(kernel, INTERRUPTED)
        assert waited < 2.0, f"cycle {cycle}: the reply came {waited:.2f} s after the interrupt"
        assert result.status == "error", result.reply
        assert result.reply is not None and result.reply["ename"] == "FlowInterrupted", result.reply
        error = error_of(result)
        # a one-line message, no traceback
        assert len(error.traceback) == 1 and "\n" not in error.traceback[0].strip(), error.traceback
        assert error.traceback[0].startswith("KeyboardInterrupt") and "chain" in error.traceback[0], error.traceback
        assert_no_flowmagic_frames(error.text)

        state = kernel.value(
            "{'status': chain.last.status, 'steps': {n: r.status for n, r in chain.last.steps.items()}, "
            "'outputs': chain.last.outputs, 'a': chain.last['a']}"
        )
        assert state["status"] == "cancelled", (cycle, state)
        assert state["steps"]["a"] == "succeeded", (cycle, state)
        assert state["outputs"] == {"a": 42} and state["a"] == 42, (cycle, state)
        for name in ("s1", "s2", "s3", "c"):
            assert state["steps"][name] == "cancelled", (cycle, name, state)

        after = kernel.execute("1+1")
        assert after.status == "ok", after.text
        assert [o.text for o in after.of_kind("execute_result")] == ["2"]
