"""What a step prints is kept in its record, shown in its detail, and printed under its own cell,
never under another one: in the engine, and in a real kernel where a background run prints
while another cell runs."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kernel_helpers import Kernel, kernel_session

from flowmagic import Flow
from flowmagic.engine import capture
from flowmagic.view.detail import step_html


def shout(word: str) -> str:
    print("shouting", word)
    print("careful", word, file=sys.stderr)
    return word.upper()


async def later(word: str) -> str:
    print("async", word)
    await asyncio.sleep(0.01)
    print("async done")
    return word


def test_each_step_keeps_what_it_printed(capsys: Any) -> None:
    source = "a = shout('hi')\nb = later(a)\n@retries(1)\n@timeout(5)\nc = shout(b)\nd = [shout(w) for w in ['x', 'y']]"
    run = Flow.from_source(source, namespace={"shout": shout, "later": later}).run()
    steps = run.steps
    assert (steps["a"].stdout, steps["a"].stderr) == ("shouting hi\n", "careful hi\n")
    assert (steps["b"].stdout, steps["b"].stderr) == ("async HI\nasync done\n", None)
    assert steps["c"].stdout == "shouting HI\n"  # through retries and a deadline: another path
    assert (steps["d[0]"].stdout, steps["d[1]"].stdout, steps["d"].stdout) == ("shouting x\n", "shouting y\n", None)
    out = capsys.readouterr()
    assert out.out.count("shouting") == 4 and out.err.count("careful") == 4  # and printed as they came
    assert run.to_dict()["steps"]["a"]["stdout"] == "shouting hi\n"
    html = step_html(run, "a")
    assert "printed" in html and "shouting hi" in html and "careful hi" in html


def test_parallel_steps_print_into_their_own_records() -> None:
    barrier = threading.Barrier(2)

    def talk(name: str) -> str:
        for i in range(200):
            print(f"{name} {i}")
            if i == 100:
                barrier.wait(5)  # both are printing at once here
        return name

    source = "parallel:\n    a = talk('left')\n    b = talk('right')"
    run = Flow.from_source(source, namespace={"talk": talk}).run()
    for name, word in (("a", "left"), ("b", "right")):
        lines = (run.steps[name].stdout or "").splitlines()
        assert lines == [f"{word} {i}" for i in range(200)]


def test_a_step_that_prints_a_lot_keeps_a_bounded_record(monkeypatch: Any) -> None:
    monkeypatch.setattr(capture, "LIMIT", 1000)
    run = Flow.from_source("a = spam()", namespace={"spam": lambda: [print("x" * 99) for _ in range(50)]}).run()
    kept = run.steps["a"].stdout or ""
    assert len(kept) == 1000 + len(capture.CUT) and kept.endswith(capture.CUT)


def test_after_its_run_ended_a_step_left_behind_is_recorded_not_printed(capsys: Any) -> None:
    go, done = threading.Event(), threading.Event()

    def lingering() -> None:
        go.wait(5)
        print("too late")
        done.set()

    run = Flow.from_source("@timeout(0.1)\na = lingering()", namespace={"lingering": lingering}).run()
    assert run.status == "failed"
    go.set()
    assert done.wait(5)
    assert "too late" not in capsys.readouterr().out
    assert run.steps["a"].stdout == "too late\n"


def test_text_written_outside_any_step_passes_through(capsys: Any) -> None:
    Flow.from_source("a = 1").run()  # the streams are wrapped from here on
    print("plain")
    sys.stderr.write("plain err\n")
    assert capsys.readouterr() == ("plain\n", "plain err\n")


# -- in a real kernel ------------------------------------------------------------------------
SETUP = """
%load_ext flowmagic
import time
def speak(word, wait=0.0):
    time.sleep(wait)
    print("said", word)
    return word
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    with kernel_session(tmp_path_factory.mktemp("printing")) as k:
        k.ok(SETUP)
        yield k


def test_in_a_kernel_a_foreground_step_prints_under_its_cell(kernel: Kernel) -> None:
    result = kernel.ok("%%flow hello --quiet\na = speak('hello')")
    assert "said hello" in result.stdout


@pytest.mark.timeout(60)
def test_in_a_kernel_a_background_step_prints_under_its_own_cell_not_the_running_one(kernel: Kernel) -> None:
    first = kernel.ok(
        textwrap.dedent("""
        %%flow chatty --background --quiet
        a = speak('from the background', 1.0)
        """)
    )
    # another cell runs while the background step prints
    second = kernel.ok("time.sleep(2.0)\nprint('second cell')")
    # no stream of the running cell has it (display updates find their display wherever it is)
    assert second.stdout == "second cell\n" and not [
        o for o in second.outputs if o.kind == "stream" and "said" in o.text
    ]
    (block,) = [o for o in first.outputs if o.kind == "display_data"]

    def arrived() -> bool:
        updates = [*first.outputs, *second.outputs, *kernel.stray]
        return any(
            o.kind == "update_display_data"
            and o.display_id == block.display_id
            and "said from the background" in o.text
            for o in updates
        )

    kernel.wait_until(arrived, 5.0, "the background print under its own cell")
    assert kernel.value("chatty.last.steps['a'].stdout") == "said from the background\n"
