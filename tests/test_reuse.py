"""The cache policy: a rerun reuses llm steps and pure expressions, runs calls again unless they
are opted in, and reuses what reads a rerun step whose value came out the same (early cut-off)."""

from __future__ import annotations

import json
import math
import random
import time
from typing import Any

import pytest

import flowmagic
from flowmagic import Flow
from flowmagic.engine import events as ev
from flowmagic.engine.runner import run_blocking
from flowmagic.errors import FlowDefinitionError


def ran(flow: Flow, **inputs: Any) -> tuple[Any, set[str]]:
    """Run; return the run and the steps that really started (a reused step never does)."""
    started: set[str] = set()

    def watch(event: ev.Event) -> None:
        if event.kind == ev.STARTED and event.step is not None:
            started.add(event.step)

    run = run_blocking(flow.execution(inputs, observers=[watch]))
    assert run.status == "succeeded", run.summary()
    return run, started


# -- the case: edit one prompt of a flow with tools, a clock and three llm steps ---------

CALLS: dict[str, int] = {"search": 0, "count": 0, "costly": 0}
CLOCK = {"now": "09:00"}


def search(topic: str) -> str:
    CALLS["search"] += 1
    return f"notes on {topic}"


def count(text: str) -> int:
    CALLS["count"] += 1
    return len(text.split())


def clock() -> str:
    return CLOCK["now"]


def costly(topic: str) -> str:  # keeps a call counter in a global, as notebooks do
    CALLS["costly"] += 1
    return topic.upper()


PIPELINE = """
notes = search(topic)
words = count(notes)
now = clock()
@cache
facts = costly(topic)
intro = llm("Introduce {topic}")
pitch = llm("PROMPT {notes}")
greeting = llm("Good day, it is {now}")
"""
LLM_STEPS = {"intro", "pitch", "greeting"}


def pipeline(prompt: str) -> Flow:
    namespace = {"search": search, "count": count, "clock": clock, "costly": costly, "topic": "otters"}
    return Flow.from_source(PIPELINE.replace("PROMPT", prompt), name="pipeline", namespace=namespace)


def test_editing_one_prompt_asks_the_model_again_for_that_step_only() -> None:
    for name in CALLS:
        CALLS[name] = 0
    CLOCK["now"] = "09:00"
    _, started = ran(pipeline("Pitch"))
    assert started == {"notes", "words", "now", "facts", *LLM_STEPS}

    run, started = ran(pipeline("Sell"))  # one prompt edited
    assert started & LLM_STEPS == {"pitch"}  # the model is asked again for the edited step only
    assert {"notes", "words", "now"} <= started  # plain tools and the clock run every time
    assert run.steps["pitch"].cache_note == "ran again: its expression changed"
    assert run.steps["greeting"].cached  # it reads the clock, whose value did not change

    CLOCK["now"] = "09:01"
    run, started = ran(pipeline("Sell"))
    assert started & LLM_STEPS == {"greeting"}  # the clock changed: the step reading it runs
    assert run.steps["greeting"].cache_note == "ran again: 'now' changed"
    assert CALLS == {"search": 3, "count": 3, "costly": 1}  # the @cache tool ran once in all
    summary = run.summary()
    assert "greeting: ran again: 'now' changed" in summary
    assert "notes: runs every time: it calls search()" in summary


# -- what is pure, what is a call ------------------------------------------------------------


def test_pure_expressions_and_calls_of_builtins_str_methods_and_pure_modules_are_reused() -> None:
    source = """
words = text.split()
n = len(words)
joined = ", ".join(sorted(words))
upper = text.upper()
encoded = json.dumps({"n": n})
root = math.sqrt(n)
label = f"{n} words" if n > 2 else "short"
"""
    flow = Flow.from_source(source, name="pure", namespace={"json": json, "math": math, "text": "b a c"})
    ran(flow)
    run, started = ran(flow)
    assert started == set(), {n: r.cache_note for n, r in run.steps.items()}


@pytest.mark.parametrize(
    ("expression", "callee"),
    [
        ("random.random()", "random.random"),
        ("time.time()", "time.time"),
        ("helper(text)", "helper"),
        ("box.read()", "box.read"),  # an object's method: its attribute is not even looked up
        ("[helper(t) for t in text]", "helper"),
        ("fs[0](text)", "a computed function"),
        ("len(helper(text))", "helper"),
    ],
)
def test_a_call_of_a_function_runs_every_time_and_says_so(expression: str, callee: str) -> None:
    looked: list[int] = []

    class Box:
        @property
        def read(self) -> Any:  # a property: looking it up runs code
            looked.append(1)
            return lambda: "read"

    namespace = {"random": random, "time": time, "helper": lambda t: t, "box": Box(), "fs": [str], "text": "ab"}
    source = f"a = {expression}\nb = 1"
    ran(Flow.from_source(source, name="uncached", namespace=namespace, cache=False))
    per_run = len(looked)  # what running the step looks up, with no cache policy at all
    flow = Flow.from_source(source, name="calls", namespace=namespace)
    ran(flow)
    run, started = ran(flow)
    assert {s for s in started if "[" not in s} == {"a"}  # (a map's elements are a[0], a[1])
    assert len(looked) == 3 * per_run  # the policy itself looked nothing up
    assert run.steps["a"].cache_note == (
        f"runs every time: it calls {callee}() (@cache on the step, or @flowmagic.cacheable on it, reuses it)"
    )


def test_a_cacheable_function_is_reused_until_its_code_changes() -> None:
    calls: list[str] = []

    @flowmagic.cacheable
    def shout(text: str) -> str:
        calls.append(text)
        return text.upper()

    flow = Flow.from_source("a = shout(x)", name="marked", namespace={"shout": shout})
    ran(flow, x="hi")
    run, started = ran(flow, x="hi")
    assert started == set() and run["a"] == "HI" and calls == ["hi"]
    _, started = ran(flow, x="ho")
    assert started == {"a"}

    @flowmagic.cacheable
    def shout(text: str) -> str:  # edited: the key follows its source
        return text.lower()

    flow = Flow.from_source("a = shout(x)", name="marked", namespace={"shout": shout})
    run, started = ran(flow, x="ho")
    assert started == {"a"} and run["a"] == "ho"
    assert run.steps["a"].cache_note == "ran again: 'shout' changed"


def test_cache_calls_reuses_every_call_and_cache_false_still_opts_out() -> None:
    ticks: list[int] = []

    def tick() -> int:
        ticks.append(1)
        return len(ticks)

    source = "a = tick()\n@cache(False)\nb = tick()"
    flow = Flow.from_source(source, name="all", namespace={"tick": tick}, cache_calls=True)
    ran(flow)
    run, started = ran(flow)
    assert started == {"b"} and run.steps["a"].cached
    plain = Flow.from_source(source, name="all", namespace={"tick": tick})
    _, started = ran(plain)
    assert started == {"a", "b"}


def test_early_cut_off_reuses_what_reads_a_value_that_came_out_the_same() -> None:
    pages = {"url": "same text"}

    def fetch(url: str) -> str:
        return pages["url"]

    flow = Flow.from_source(
        'page = fetch("url")\nsummary = llm("Summarise {page}")\nlength = len(summary)',
        name="fetch",
        namespace={"fetch": fetch},
    )
    ran(flow)
    run, started = ran(flow)  # re-fetched, unchanged: no new llm call, nor anything after it
    assert started == {"page"}
    assert run.steps["summary"].cached and run.steps["length"].cached
    pages["url"] = "new text"
    run, started = ran(flow)
    assert started == {"page", "summary", "length"}
    assert run.steps["summary"].cache_note == "ran again: 'page' changed"


def test_a_global_list_or_dict_a_function_keeps_is_its_state_not_its_definition() -> None:
    log: list[str] = []

    def noted(x: int) -> int:
        log.append(f"called with {x}")
        return x * 2

    flow = Flow.from_source("@cache\na = noted(x)", name="state", namespace={"noted": noted})
    ran(flow, x=1)
    _, started = ran(flow, x=1)
    assert started == set() and len(log) == 1  # the log grew, the function did not change


def test_bare_cache_parses_and_a_wrong_argument_says_how_to_write_it() -> None:
    flow = Flow.from_source("@cache\na = f(1)\n@cache(False)\nb = f(2)\nc = f(3)")
    assert [flow.steps[n].options.cache for n in "abc"] == [True, False, None]
    with pytest.raises(FlowDefinitionError, match=r"@cache reuses the step's value, @cache\(False\) never") as exc:
        Flow.from_source("@cache(1)\na = f(1)")
    assert exc.value.line == 1


def test_a_method_of_a_steps_value_is_pure_only_if_it_is_a_str_method() -> None:
    class Client:
        def __init__(self) -> None:
            self.pages = 0

        def get(self, url: str) -> str:  # reads the network, as far as the cache can tell
            self.pages += 1
            return f"page {self.pages} of {url}"

    flow = Flow.from_source(
        'client = make()\npage = client.get("u")\nshort = page.upper()\nname = info.get("name")',
        name="methods",
        namespace={"make": Client, "info": {"name": "Ada"}},
    )
    ran(flow)
    run, started = ran(flow)
    assert started == {"client", "page"}  # short reads the same page (a new client each run)
    assert run.steps["name"].cached  # a plain dict input's get() is a reading method
    assert run.steps["page"].cache_note == (
        "runs every time: it calls client.get() (@cache on the step, or @flowmagic.cacheable on it, reuses it)"
    )
