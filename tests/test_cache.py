"""The step cache: what a rerun reuses, what it runs again, and why a step was not cached."""

from __future__ import annotations

import importlib.util
import random
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowmagic
from flowmagic import Flow
from flowmagic.engine import events as ev
from flowmagic.engine.cache import MISS, StepCache, default_cache
from flowmagic.engine.fingerprint import Unfingerprintable, fingerprint
from flowmagic.engine.runner import run_blocking
from flowmagic.errors import UnknownStepError
from flowmagic.view.picture import run_html

ROOT = Path(__file__).resolve().parent.parent

FOUR = """
title = llm("A movie title about {topic}")
parallel:
    song = llm("A song for {title}")
    cast = cast_of(title)
review = llm("Review {title} with {song} and {cast}")
"""


def cast_of(title: str) -> list[str]:
    return [f"{title} hero", f"{title} villain"]


def ran(flow: Flow, rerun: tuple[str, ...] = (), **inputs: Any) -> tuple[Any, set[str]]:
    """Run and return the run and the steps that really started (cached ones never do)."""
    started: set[str] = set()

    def watch(event: ev.Event) -> None:
        if event.kind == ev.STARTED and event.step is not None:
            started.add(event.step)

    run = run_blocking(flow.execution(inputs, observers=[watch], rerun=rerun))
    assert run.status == "succeeded", run.summary()
    return run, started


def four(text: str = FOUR, **settings: Any) -> Flow:
    return Flow.from_source(text, name="movie", namespace={"cast_of": cast_of, "topic": "space cats"}, **settings)


# -- what reruns -------------------------------------------------------------------


def test_editing_one_prompt_reruns_it_and_its_descendants_only() -> None:
    first, started = ran(four())
    assert started == {"title", "song", "cast", "review"}
    again, started = ran(four())
    # cast_of is a plain function: it runs again, and as its value is unchanged the review is reused
    assert started == {"cast"}
    assert [n for n, r in again.steps.items() if r.cached] == ["title", "song", "review"]
    assert again.outputs == first.outputs
    edited, started = ran(four(FOUR.replace("A song for", "A sad song for")))
    assert started == {"song", "cast", "review"}
    assert [n for n, r in edited.steps.items() if r.cached] == ["title"]
    assert edited.steps["song"].cache_note == "ran again: its expression changed"
    assert edited.steps["review"].cache_note == "ran again: 'song' changed"
    assert edited["song"] != first["song"]


def test_no_cache_runs_everything_and_cache_false_opts_a_step_out() -> None:
    ran(four())
    _, started = ran(four(cache=False))
    assert started == {"title", "song", "cast", "review"}
    run, started = ran(four(FOUR.replace("    cast =", "    @cache(False)\n    cast =")))
    assert started == {"cast"}  # and the review, reading an unchanged value, is reused
    assert run.steps["cast"].cache_note == "not cached: @cache(False)"
    assert run.steps["review"].cached and run.steps["review"].cache_note is None
    ran(four(FOUR.replace("    cast =", "    @cache\n    cast =")))
    run, started = ran(four(FOUR.replace("    cast =", "    @cache\n    cast =")))
    assert started == set() and run.steps["cast"].cached  # @cache opts the call in


def test_layout_and_comments_do_not_count_as_edits() -> None:
    ran(four())
    spaced = FOUR.replace('llm("A song for {title}")', 'llm(  "A song for {title}"  )  # the song')
    _, started = ran(four(spaced))
    assert started == {"cast"}  # the plain call, which runs every time


def test_changed_input_value_reruns_what_reads_it() -> None:
    flow = Flow.from_source("a = x + 1\nb = len(y)\nc = a + b", name="inputs")
    ran(flow, x=1, y=[1])
    _, started = ran(flow, x=2, y=[1])
    assert started == {"a", "c"}
    _, started = ran(flow, x=2, y=[1, 2])
    assert started == {"b", "c"}





@pytest.mark.usefixtures("echo_model")
def test_model_change_reruns_llm_steps_not_python_ones() -> None:
    text = FOUR + "letters = len(topic)\n"
    ran(four(text, model="offline"))
    run, started = ran(four(text, model="echo-1"))
    assert started == {"title", "song", "cast", "review"}  # cast reads title
    assert run.steps["letters"].cached
    assert run["title"] == "A movie title about space cats"


def test_failed_steps_are_not_cached() -> None:
    attempts: list[int] = []

    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first time fails")
        return 7

    flow = Flow.from_source("a = flaky()\nb = a + 1", name="flaky", namespace={"flaky": flaky})
    first = flow.run()
    assert first.status == "failed"
    run, started = ran(flow)
    assert started == {"a", "b"} and run["b"] == 8


def test_rerun_runs_a_step_and_its_descendants_and_replaces_the_cached_value() -> None:
    flow = Flow.from_source(
        "@cache\nseed = random.random()\nparallel:\n    a = seed + 1\n    b = 2\nc = a + b",
        name="rerun",
        namespace={"random": random},
    )
    first, _ = ran(flow)
    assert flow.descendants("seed") == ["seed", "a", "c"]
    rerun, started = ran(flow, rerun=("seed",))
    assert started == {"seed", "a", "c"} and rerun.steps["b"].cached
    assert rerun["seed"] != first["seed"]
    after, started = ran(flow)
    assert started == set() and after["seed"] == rerun["seed"]  # the new value is the cached one now
    with pytest.raises(UnknownStepError, match=r"no step 'sed'.*Did you mean 'seed'"):
        flow.rerun("sed")


def test_a_step_that_reads_an_unfingerprintable_value_says_why() -> None:
    lock = threading.Lock()
    flow = Flow.from_source("a = str(lock)\nb = len(a)\nc = 3", name="lock", namespace={"lock": lock})
    run, _ = ran(flow)
    assert "input 'lock' cannot be fingerprinted" in (run.steps["a"].cache_note or "")
    assert "_thread.lock cannot be pickled" in (run.steps["a"].cache_note or "")
    _, started = ran(flow)
    assert started == {"a"}  # b reads a's value, a string, which is as good as a key
    assert "cache_note" in run.to_json() and "cannot be fingerprinted" in run.summary()
    flow = Flow.from_source("a = make()\nb = len(a)", name="lock2", namespace={"make": lambda: [lock]})
    run, _ = ran(flow)
    assert "the value of 'a' cannot be fingerprinted" in (run.steps["b"].cache_note or "")
    _, started = ran(flow)
    assert started == {"a", "b"}


def test_a_function_is_fingerprinted_by_its_source(tmp_path: Path) -> None:
    def load(text: str, name: str) -> Any:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(text))
        spec = importlib.util.spec_from_file_location("tools", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.tool

    same_a = load("SCALE = 2\ndef tool(x):\n    return x * SCALE\n", "a")
    same_b = load("SCALE = 2\ndef tool(x):\n    return x * SCALE\n", "b")
    edited = load("SCALE = 2\ndef tool(x):\n    return x * SCALE + 1\n", "c")
    rescaled = load("SCALE = 3\ndef tool(x):\n    return x * SCALE\n", "d")
    assert same_a is not same_b and fingerprint(same_a) == fingerprint(same_b)
    assert fingerprint(edited) != fingerprint(same_a)
    assert fingerprint(rescaled) != fingerprint(same_a)  # a global it reads changed


def test_fingerprints_follow_content() -> None:
    assert len({fingerprint(1), fingerprint(1.0), fingerprint(True), fingerprint("1")}) == 4
    assert fingerprint({"a": 1, "b": [2]}) == fingerprint({"b": [2], "a": 1})
    assert fingerprint({1, 2, 3}) == fingerprint({3, 2, 1}) != fingerprint(frozenset({1, 2, 3}))
    assert fingerprint([1, 2]) != fingerprint((1, 2)) != fingerprint([2, 1])
    assert fingerprint(Path("a")) != fingerprint(Path("b"))
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(Unfingerprintable, match="contains itself"):
        fingerprint(looped)
    with pytest.raises(Unfingerprintable, match="cannot be pickled"):
        fingerprint(threading.Lock())


# -- the view and the magic --------------------------------------------------------------


def test_cached_steps_show_as_cached_in_the_picture_and_the_summary() -> None:
    ran(four())
    run, _ = ran(four())
    html = run_html(run)
    assert len(re.findall(r'<g class="fm-node"[^>]*data-cached="true"', html)) == 3
    assert run.summary().count("cached") >= 3


def test_cell_rerun_shows_cached_steps_and_no_cache_reruns(shell: Any) -> None:
    shell.user_ns["cast_of"] = cast_of
    shell.user_ns["topic"] = "space cats"
    shell.run_cell_magic("flow", "movie", FOUR)
    shell.run_cell_magic("flow", "movie", FOUR.replace("Review {title}", "Rate {title}"))
    steps = shell.user_ns["movie"].last.steps
    assert [n for n, r in steps.items() if r.cached] == ["title", "song"]
    shell.run_cell_magic("flow", "movie --no-cache", FOUR)
    assert not any(r.cached for r in shell.user_ns["movie"].last.steps.values())


# -- on disk ---------------------------------------------------------------------------


def test_disk_cache_survives_a_new_process_and_ignores_broken_files(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        from flowmagic import Flow
        from flowmagic.engine.cache import default_cache
        default_cache.directory = __import__("pathlib").Path({str(tmp_path)!r})
        flow = Flow.from_source('a = llm("Name a colour")\\nb = a.upper()', name="disk")
        run = flow.run()
        print(json.dumps({{n: r.cached for n, r in run.steps.items()}}, separators=(",", ":")), run["b"])
        """
    )

    def process() -> tuple[dict[str, bool], str]:
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
        ).stdout
        cached, value = out.strip().split(" ", 1)
        import json

        return json.loads(cached), value

    first, value = process()
    assert first == {"a": False, "b": False}
    second, again = process()
    assert second == {"a": True, "b": True} and again == value
    for path in tmp_path.rglob("*.entry"):
        path.write_bytes(b"not an entry")
    third, _ = process()
    assert third == {"a": False, "b": False}


def test_two_processes_sharing_a_directory_never_read_half_a_value(tmp_path: Path) -> None:
    # two writers keep replacing the same keys with large values while a reader reads them
    script = textwrap.dedent(
        f"""
        import sys
        from flowmagic.engine.cache import MISS, StepCache
        cache = StepCache(size=1, directory={str(tmp_path)!r})
        role = sys.argv[1]
        bad = 0
        for i in range(300):
            key = f"{{i % 5:02d}}" + "k" * 30
            if role == "write":
                cache.put(key, ([key] * 20000, {{}}))
            else:
                cache.clear()
                value = cache.get(key)
                if value is not MISS and value != ([key] * 20000, {{}}):
                    bad += 1
        print(bad)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, role], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for role in ("write", "write", "read")
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[2] == "0"
    assert not list(tmp_path.rglob(".tmp-*"))


def test_values_that_cannot_be_pickled_stay_in_memory(tmp_path: Path) -> None:
    cache = StepCache(directory=tmp_path)
    assert cache.put("ab" + "0" * 30, (42, {})) is None
    note = cache.put("cd" + "0" * 30, (threading.Lock(), {}))
    assert note is not None and "cannot be pickled" in note
    fresh = StepCache(directory=tmp_path)
    assert fresh.get("ab" + "0" * 30) == (42, {}) and fresh.get("cd" + "0" * 30) is MISS


def test_memory_is_bounded() -> None:
    cache = StepCache(size=3)
    for i in range(5):
        cache.put(str(i), (i, {}))
    assert len(cache) == 3 and cache.get("0") is MISS and cache.get("4") == (4, {})


# -- the property ----------------------------------------------------------------------


@st.composite
def flows_and_edits(draw: st.DrawFn) -> tuple[list[tuple[int, list[int]]], set[int]]:
    n = draw(st.integers(2, 12))
    steps = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        steps.append((draw(st.integers(0, 9)), deps))
    edited = draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))
    return steps, edited


def _text(steps: list[tuple[int, list[int]]], edited: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    lines = []
    for i, (k, deps) in enumerate(steps):
        constant = k + 100 if i in edited else k
        lines.append(f"s{i} = add({constant}{''.join(f', s{d}' for d in deps)})")
    return "\n".join(lines)


@flowmagic.cacheable
def add(*values: int) -> int:
    return sum(values)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flows_and_edits())
def test_after_a_random_edit_exactly_the_edited_steps_and_their_descendants_run(
    case: tuple[list[tuple[int, list[int]]], set[int]],
) -> None:
    steps, edited = case
    default_cache.clear()
    ran(Flow.from_source(_text(steps), name="prop", namespace={"add": add}))
    flow = Flow.from_source(_text(steps, edited), name="prop", namespace={"add": add})
    _, started = ran(flow)
    assert started == set(flow.descendants(*(f"s{i}" for i in edited)))


def test_cache_dir_setting_points_the_cache_at_a_directory(shell: Any, tmp_path: Path) -> None:
    shell.run_line_magic("config", f"FlowMagics.cache_dir = {str(tmp_path / 'c')!r}")
    try:
        assert default_cache.directory == tmp_path / "c"
        shell.run_cell_magic("flow", "disk", "a = 6 * 7")
        assert len(list((tmp_path / "c").rglob("*.entry"))) == 1
    finally:
        shell.run_line_magic("config", "FlowMagics.cache_dir = ''")
    assert default_cache.directory is None


def test_descendants_follow_reads_not_declaration_order() -> None:
    flow = Flow.from_source("c = b * 2\nb = a + 1\na = x\nd = 5", name="order")
    assert flow.descendants("a") == ["c", "b", "a"]
    ran(flow, x=1)
    again, started = ran(flow, rerun=("a",), x=1)
    assert started == {"a", "b", "c"} and again.steps["d"].cached
