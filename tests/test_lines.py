"""The %flow line magics in a real IPython shell: rerun, cancel, history, diff, show, config."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from test_cache import FOUR, cast_of

from flowmagic.engine.diff import diff_runs
from flowmagic.engine.history import History, HistoryTable, changes, default_history


@pytest.fixture
def movie(shell: InteractiveShell) -> InteractiveShell:
    shell.user_ns.update(cast_of=cast_of, topic="space cats")
    shell.run_cell_magic("flow", "movie", FOUR)
    shell.run_cell_magic("flow", "movie", FOUR.replace("A song for", "A sad song for"))
    return shell


def line(shell: InteractiveShell, text: str) -> Any:
    return shell.run_line_magic("flow", text)


def test_diff_after_editing_one_prompt_shows_exactly_the_changed_outputs(movie: InteractiveShell, capsys: Any) -> None:
    capsys.readouterr()
    line(movie, "diff movie")
    out = capsys.readouterr().out
    assert "--- song (#1)" in out and "+++ review (#2)" in out
    assert "title (#1)" not in out and "cast (#1)" not in out
    assert "unchanged: title, cast" in out
    first, second = default_history.get("movie", 1), default_history.get("movie", 2)
    diff = diff_runs(first, second, ("#1", "#2"))
    assert diff.changed == ["song", "review"] and diff.unchanged == ["title", "cast"]
    html = diff._repr_html_()
    assert html.count("<ins") >= 2 and 'data-step="song"' in html and 'data-step="title"' not in html


def test_history_lists_every_run_with_what_changed(movie: InteractiveShell, capsys: Any) -> None:
    movie.user_ns["topic"] = "robots"
    movie.run_cell_magic("flow", "movie --workers 4", FOUR.replace("A song for", "A sad song for"))
    capsys.readouterr()
    line(movie, "history movie")
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:3] == ["#", "when", "status"]
    assert rows[1].startswith("#1") and rows[1].endswith("first run")
    assert rows[2].startswith("#2") and rows[2].endswith("edited: song")
    assert " 3    1 " in rows[2]  # the edited step, its reader and the plain call ran; the title was cached
    assert rows[3].endswith("input changed: topic; workers default -> 4")
    html = HistoryTable("movie", default_history.entries("movie"))._repr_html_()
    assert html.count("<tr>") == 4 and "edited: song" in html


def test_rerun_runs_the_step_and_its_descendants_only(movie: InteractiveShell) -> None:
    before = movie.user_ns["movie"].last
    line(movie, "rerun movie cast")
    run = movie.user_ns["movie"].last
    assert run is not before
    assert [n for n, r in run.steps.items() if r.cached] == ["title", "song"]
    assert len(default_history.entries("movie")) == 3


def test_show_displays_the_last_run(movie: InteractiveShell, capsys: Any) -> None:
    capsys.readouterr()
    line(movie, "show movie")
    out = capsys.readouterr().out
    assert out.startswith("flow 'movie' succeeded") and "song" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("histroy movie", "no command 'histroy'. Did you mean 'history'?"),
        ("diff", "needs the name of a flow"),
        ("diff movi", "no flow named 'movi' in this notebook. Did you mean 'movie'?"),
        ("diff topic", "'topic' is a str, not a flow"),
        ("diff movie 1", "two run numbers"),
        ("diff movie 1 9", "no run #9; the history keeps runs #1 to #2"),
        ("diff movie one two", "whole numbers"),
        ("rerun movie", "needs the step to run again, one of: title, song, cast, review"),
        ("history movie extra", "takes one flow name"),
        ("config wrkers=3", "no setting 'wrkers'. Did you mean 'workers'?"),
        ("config workers=0", "workers must be a whole number of at least 1"),
        ("config workers", "'workers' is not SETTING=VALUE"),
        ("diff movie 'unclosed", "No closing quotation"),
        ("cancl movie", "no command 'cancl'. Did you mean 'cancel'?"),
        ("cancel", "needs the name of a flow"),
        ("cancel movi", "no flow named 'movi' in this notebook. Did you mean 'movie'?"),
        ("cancel movie now", "takes one flow name"),
    ],
)
def test_mistakes_are_usage_errors_that_say_what_to_type(movie: InteractiveShell, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=None) as info:
        line(movie, text)
    assert message in str(info.value)


def test_diff_needs_two_runs(shell: InteractiveShell) -> None:
    shell.run_cell_magic("flow", "once", "a = 1")
    with pytest.raises(UsageError, match="has run 1 time"):
        line(shell, "diff once")


def test_rerun_of_an_unknown_step_suggests_one(movie: InteractiveShell) -> None:
    result = movie.run_cell("%flow rerun movie titel")
    assert not result.success and "Did you mean 'title'" in str(result.error_in_exec)


def test_config_shows_and_changes_settings_but_never_the_key(
    shell: InteractiveShell, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-config")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://ada:pw-secret-config@127.0.0.1:9/v1?api-key=qk-secret-config")
    line(shell, "config workers=8 model=local-model")
    out = capsys.readouterr().out
    assert "workers    8" in out and "local-model (FlowMagics.model)" in out
    # the server's address and the names are shown; the password and the query's values are not
    assert "base URL   http://ada:***@127.0.0.1:9/v1?api-key=*** (OPENAI_BASE_URL)" in out
    assert "API key    set" in out and "secret-config" not in out
    magics = shell.magics_manager.registry["FlowMagics"]
    assert magics.workers == 8


def test_help_lists_every_command(shell: InteractiveShell, capsys: Any) -> None:
    line(shell, "")
    out = capsys.readouterr().out
    for command in ("rerun", "cancel", "history", "diff", "show", "config"):
        assert f"%flow {command}" in out
    line(shell, "diff -h")
    assert capsys.readouterr().out.startswith("%flow diff NAME [A B]")


def test_history_keeps_numbering_past_its_size() -> None:
    history = History(size=2)
    runs = [object() for _ in range(3)]
    for run in runs:
        history.add("f", run)  # type: ignore[arg-type]
    assert [e.number for e in history.entries("f")] == [2, 3]
    assert history.get("f", 3) is runs[2] and history.get("f", -2) is runs[1]
    with pytest.raises(LookupError, match="keeps runs #2 to #3"):
        history.get("f", 1)


@pytest.mark.usefixtures("echo_model")
def test_changes_name_edits_additions_removals_and_model(movie: InteractiveShell) -> None:
    first = default_history.get("movie", 1)
    renamed = FOUR.replace("cast = cast_of", "crew = cast_of").replace("{cast}", "{crew}")
    movie.run_cell_magic("flow", "movie --model echo-1", renamed)
    last = default_history.get("movie", -1)
    assert changes(first, last) == ["edited: review", "added: crew", "removed: cast", "model offline -> echo-1"]


# -- %flow cancel: a --background run ----------------------------------------------------------
BACKGROUND = """
first = 1 + 1
parallel:
    waiting = asleep(30)
    held = hold(first)
after = [waiting, held]
"""


@pytest.fixture
def gated(shell: InteractiveShell) -> Iterator[InteractiveShell]:
    """``asleep`` (a coroutine) and ``hold`` (a thread blocked until the test ends) in the namespace."""
    gate = threading.Event()

    def hold(x: int) -> int:
        gate.wait(10)
        return x

    shell.user_ns.update(asleep=asyncio.sleep, hold=hold)
    try:
        yield shell
    finally:
        gate.set()  # the abandoned thread returns and exits


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def printed(capsys: Any) -> list[str]:
    return list(capsys.readouterr().out.splitlines())


def started(shell: InteractiveShell, name: str, *steps: str) -> Any:
    """Run the BACKGROUND cell as ``name`` and return its flow once ``steps`` are running."""
    shell.run_cell_magic("flow", f"{name} --background", BACKGROUND)
    flow = shell.user_ns[name]
    wait_for(lambda: all(flow.last.steps[s].status == "running" for s in steps))
    return flow


def test_cancel_stops_a_background_run_and_keeps_what_finished(gated: InteractiveShell, capsys: Any) -> None:
    flow = started(gated, "later", "waiting", "held")
    capsys.readouterr()
    begun = time.monotonic()
    line(gated, "cancel later")
    assert time.monotonic() - begun < 2
    # (the run's own summary may print too, from its thread)
    assert "flow 'later' cancelled: 1 finished step(s) kept in later.last" in printed(capsys)
    run = flow.last
    assert run.status == "cancelled" and run.outputs == {"first": 2} and run["first"] == 2
    assert {n: r.status for n, r in run.steps.items()} == {
        "first": "succeeded",
        "waiting": "cancelled",
        "held": "cancelled",
        "after": "cancelled",
    }
    line(gated, "cancel later")  # nothing is running any more: said plainly, not an error
    message = "nothing to cancel: flow 'later' has no run going on in the background (its last run cancelled)"
    assert message in printed(capsys)


def test_cancel_from_python_says_whether_a_run_was_going_on(gated: InteractiveShell, capsys: Any) -> None:
    flow = started(gated, "later", "waiting")
    assert flow.cancel() is True and flow.last.status == "cancelled"  # settled when cancel returns
    assert flow.cancel() is False
    gated.run_cell_magic("flow", "once", "a = 1")  # a run in the cell, over: nothing to cancel
    assert gated.user_ns["once"].cancel() is False
    gated.run_cell_magic("flow", "drawn --dry-run", "a = 1")
    capsys.readouterr()
    line(gated, "cancel once")
    line(gated, "cancel drawn")
    out = printed(capsys)
    assert "nothing to cancel: flow 'once' has no run going on in the background (its last run succeeded)" in out
    assert "nothing to cancel: flow 'drawn' has no run going on in the background (it has not run yet)" in out


def stuck_for(seconds: float) -> Callable[[], Any]:
    async def stuck() -> int:
        time.sleep(seconds)  # a blocking call inside async def: the run's loop cannot act on a cancel meanwhile
        return 1

    return stuck


def test_cancel_says_so_when_a_step_holds_the_event_loop(shell: InteractiveShell, capsys: Any) -> None:
    shell.user_ns.update(stuck=stuck_for(3), asleep=asyncio.sleep)
    shell.run_cell_magic("flow", "jammed --background", "parallel:\n    a = stuck()\n    b = asleep(30)\n")
    flow = shell.user_ns["jammed"]
    wait_for(lambda: flow.last.steps["a"].status == "running")
    capsys.readouterr()
    line(shell, "cancel jammed")
    assert "flow 'jammed' was asked to stop; its run is running (see jammed.last)" in printed(capsys)
    wait_for(lambda: flow.last.status != "running")
    # the cancel settled every unfinished step at once: what 'a' returned afterwards is dropped
    assert flow.last.status == "cancelled"
    assert flow.last.steps["a"].status == "cancelled" and flow.last.steps["b"].status == "cancelled"


def test_cancel_ends_the_run_when_it_lands_as_a_step_queues_the_next(shell: InteractiveShell, capsys: Any) -> None:
    shell.user_ns["stuck"] = stuck_for(0.5)
    shell.run_cell_magic("flow", "jammed --background", "a = stuck()\nb = a + 1\n")
    flow = shell.user_ns["jammed"]
    try:
        wait_for(lambda: flow.last.steps["a"].status == "running")
        capsys.readouterr()
        line(shell, "cancel jammed")  # lands while 'a' holds the loop: the run ends once 'a' lets go
        assert "flow 'jammed' cancelled: 0 finished step(s) kept in jammed.last" in printed(capsys)
        assert [flow.last.steps[n].status for n in "ab"] == ["cancelled", "cancelled"]
    finally:
        if not flow.session.handle.done():  # the hung run: stop its loop so no thread outlives the test
            flow.session.handle._lent.stop()
