"""The %flow line magics in a real IPython shell: rerun, history, diff, show, config."""

from __future__ import annotations

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
    assert " 2    2 " in rows[2]  # two steps ran, two were cached
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
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    line(shell, "config workers=8 model=local-model")
    out = capsys.readouterr().out
    assert "workers    8" in out and "local-model (FlowMagics.model)" in out
    assert "http://127.0.0.1:9/v1" in out and "API key    set" in out and "sk-secret-config" not in out
    magics = shell.magics_manager.registry["FlowMagics"]
    assert magics.workers == 8


def test_help_lists_every_command(shell: InteractiveShell, capsys: Any) -> None:
    line(shell, "")
    out = capsys.readouterr().out
    for command in ("rerun", "history", "diff", "show", "config"):
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
