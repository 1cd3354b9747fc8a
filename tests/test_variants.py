"""Variants: one flow over several inputs or settings at once (flow.map, --grid), compared side by side."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from llm_server import LLMServer, llm_server_fixture

from flowmagic import Flow
from flowmagic.errors import UnknownStepError
from flowmagic.flow.variants import grid, parse_axes

server = pytest.fixture(llm_server_fixture, name="server")

MOVIE = """
title = llm("A movie title about {topic}")
parallel:
    song = llm("A song for {title}")
    letters = len(title)
"""


def test_map_runs_every_variant_at_once_and_keeps_their_order() -> None:
    flow = Flow.from_source("a = nap(seconds)\nb = a * 2", name="naps", namespace={"nap": _nap})
    variants = flow.map([{"seconds": 0.3}, {"seconds": 0.2}, {"seconds": 0.1}])
    assert [run["b"] for run in variants] == [0.6, 0.4, 0.2]
    starts = [run.steps["a"].started for run in variants]
    ends = [run.steps["a"].finished for run in variants]
    assert max(starts) < min(ends)  # the three slept at the same time
    assert flow.variants is variants and variants.labels == ["seconds=0.3", "seconds=0.2", "seconds=0.1"]


def _nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_settings_in_a_variant_change_the_settings(echo_model: str) -> None:
    flow = Flow.from_source(MOVIE, name="movie", namespace={"topic": "cats"})
    variants = flow.map([{"model": "offline"}, {"model": "echo-1"}, {"model": "echo-1", "topic": "dogs"}])
    assert [run.model for run in variants] == ["offline", "echo-1", "echo-1"]
    assert variants[1]["title"] == "A movie title about cats" and variants[2]["title"] == "A movie title about dogs"
    assert variants[0].steps["title"].llm["offline"] is True


def test_a_temperature_grid_reaches_the_server(server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    flow = Flow.from_source(MOVIE, name="movie", namespace={"topic": "cats"}, model="m")
    variants = flow.map(grid({"temperature": [0, 0.7]}))
    assert all(run.status == "succeeded" for run in variants)
    temperatures = sorted(r.body["temperature"] for r in server.chat_requests)
    assert temperatures == [0, 0, 0.7, 0.7]
    again = flow.map([{"temperature": 0.7}, {"temperature": 0.2}])  # 0.7 is cached, 0.2 is new
    assert again[0].steps["title"].cached and not again[1].steps["title"].cached


def test_an_explicit_temperature_in_a_step_wins(server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    flow = Flow.from_source('a = llm("x", temperature=0.1)', name="t", model="m")
    flow.map([{"temperature": 0.9}])
    assert server.chat_requests[0].body["temperature"] == 0.1


def test_the_table_puts_chosen_outputs_side_by_side() -> None:
    flow = Flow.from_source(MOVIE, name="movie")
    variants = flow.map([{"topic": "cats"}, {"topic": "dogs"}])
    assert flow.final_steps == ("song", "letters")
    text = variants.table().text()
    assert text.startswith("flow 'movie': 2 variants, 2 succeeded\n\n== topic=cats\nstatus: succeeded")
    assert f"song: {variants[1]['song']}" in text and f"letters: {variants[0]['letters']}" in text
    html = variants.table("title")._repr_html_()
    assert html.count("<tr>") == 3 and variants[0]["title"] in html and "topic=dogs" in html
    with pytest.raises(UnknownStepError, match="Did you mean 'title'"):
        variants.table("titel")


def test_a_failed_variant_is_reported_and_the_rest_kept() -> None:
    flow = Flow.from_source("a = 10 // d", name="div")
    variants = flow.map([{"d": 2}, {"d": 0}, {"d": 5}])
    assert [run.status for run in variants] == ["succeeded", "failed", "succeeded"]
    assert "ZeroDivisionError" in variants.table().text()
    assert variants.table().text().startswith("flow 'div': 3 variants, 2 succeeded, 1 failed")


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([], "at least one variant"),
        ([{"topci": "cats"}], "'topci' is neither an input of flow 'movie' nor a setting. Did you mean 'topic'?"),
        ([{"workers": 0}], "workers=0: Input should be greater than or equal to 1"),
        ([{"workers": 2, "topic": "a"}, {"workers": 0, "topic": "b"}], "workers=0: Input should be greater"),
        ([{"topic": "a"}, {"workers": 2}], "name 'topic' is not defined"),
    ],
)
def test_bad_variants_are_refused_before_anything_runs(variants: list[dict[str, Any]], message: str) -> None:
    flow = Flow.from_source(MOVIE, name="movie")
    with pytest.raises(ValueError) as info:
        flow.map(variants)
    assert message in str(info.value) and flow.last is None and flow.history == []


def test_grid_axes() -> None:
    axes = parse_axes(["model=offline,gpt-4o-mini", "temperature=0,0.7", '"topic=space cats,dogs"', "n=None,'7'"])
    assert axes == {
        "model": ["offline", "gpt-4o-mini"],
        "temperature": [0, 0.7],
        "topic": ["space cats", "dogs"],
        "n": [None, "7"],
    }
    combos = grid({"a": [1, 2], "b": ["x", "y"]})
    assert combos == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    for bad, message in [(["model"], "is not NAME=VALUE"), (["a=1", "a=2"], "given twice"), (["2x=1"], "NAME=VALUE")]:
        with pytest.raises(ValueError, match=message):
            parse_axes(bad)


def test_grid_cell_runs_every_combination_and_shows_the_table(shell: InteractiveShell, capsys: Any) -> None:
    shell.user_ns["topic"] = "cats"
    result = shell.run_cell('%%flow movie --grid "topic=cats,space dogs" temperature=0,0.7\n' + MOVIE)
    assert result.success
    variants = shell.user_ns["movie"].variants
    assert len(variants) == 4 and all(run.status == "succeeded" for run in variants)
    assert variants.labels[1] == "topic=cats temperature=0.7" and variants[3].settings == {"temperature": 0.7}
    out = capsys.readouterr().out
    assert "== topic=space dogs temperature=0.7" in out and "of 4 variants finished" in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("--grid topic", "is not NAME=VALUE"),
        ("--grid topci=a", "Did you mean 'topic'?"),
        ("--grid workers=0,1", "workers=0"),
        ("--grid topic=a --background", "cannot also run in the --background"),
    ],
)
def test_grid_mistakes_are_usage_errors(shell: InteractiveShell, options: str, message: str) -> None:
    shell.user_ns["topic"] = "cats"
    result = shell.run_cell(f"%%flow movie {options}\n" + MOVIE)
    assert not result.success and message in str(result.error_in_exec)
    assert "movie" not in shell.user_ns
