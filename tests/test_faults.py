"""Fault injection: a flaky server and buggy tools, in many seeded random runs, and nothing is lost.

``llm`` steps go through the real ``openai`` client to tests/llm_server.py, which
answers 429 with Retry-After, 500 (with or without Retry-After), a malformed
body, a connection dropped before any byte, slow answers and answers slower
than the step's ``@timeout``. Tool steps raise, raise asking to be retried
later (``retry_after``), hang on a thread or on the loop past their
``@timeout``, return huge values or print from threads. After every run:

- every step ends in a final state, and in ``continue`` runs exactly the one
  the faults call for, after exactly the attempts they call for;
- every step that finished keeps its value (the very object its tool made);
- the gaps between a step's requests at the server (and between a tool's
  calls) honour Retry-After and the backoff, and retries stop at their limit;
- timeouts end async steps (they see the cancel) and abandon thread steps
  (threads cannot be killed: they are counted in ``abandoned_threads`` and
  left to return on their own).

After all runs, threads, event loops, sockets and traced memory are back at
their baseline. ``FLOWMAGIC_FAULT_RUNS`` (default 30) and ``FLOWMAGIC_FAULT_SEED``
choose how many runs and which; the counts are printed at the end.

Which layer retries what (see flowmagic/llm/openai_provider.py): the SDK retries
one request (429, 5xx, dropped connections) up to ``max_retries`` times; a step's
``@retries(N)`` reruns the whole step. Each run picks the SDK's ``max_retries``
(0, 1 or 2) through a registered provider prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import random
import statistics
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, RecordedRequest

from flowmagic import Event, Flow, MapError, Run, StepTimeout
from flowmagic.engine import events as ev
from flowmagic.engine import runner
from flowmagic.engine.cache import default_cache
from flowmagic.engine.history import default_history
from flowmagic.engine.runner import run_blocking
from flowmagic.engine.workers import shared_pool
from flowmagic.llm import network, registry
from flowmagic.llm.openai_provider import LLMStatusError, OpenAIProvider
from flowmagic.llm.protocol import LLMError
from flowmagic.view.detail import step_html

RUNS = int(os.environ.get("FLOWMAGIC_FAULT_RUNS", "30"))
SEED = int(os.environ.get("FLOWMAGIC_FAULT_SEED", "5"))
API_KEY = "sk-faults-test-0123456789"
MODEL = "faulty-model"  # answered by the provider registered under "faulty-"
FINAL = {"succeeded", "failed", "skipped", "cancelled"}
SLACK = 1.0  # seconds a wait may overrun on a loaded two-core machine (upper bounds only)
TOOL_TIMEOUT = 0.25
LLM_TIMEOUT = 0.8  # above any wait an attempt makes when its step has a timeout (see StepPlan)
HANG = 30.0  # longer than any run: a hang ends only when the test releases it (or the server stops)
CHATTY_THREADS, CHATTY_LINES = 3, 20
HUGE = 5_000_000  # bytes in a huge value
RUN_LIMIT = 60.0  # seconds: far more than any scenario takes (its waits add up to a few seconds)


# -- the provider: the real client, the SDK's max_retries chosen per run ------------------


def use_endpoint(base_url: str, sdk_retries: int) -> None:
    """Answer "faulty-" models from this server; registering again closes the last one's client."""
    registry.register_provider(
        "faulty-", lambda: OpenAIProvider(base_url=base_url, api_key=API_KEY, max_retries=sdk_retries)
    )


@pytest.fixture(autouse=True)
def faulty_provider() -> Iterator[None]:
    try:
        yield
    finally:
        registry.unregister_provider("faulty-")


# -- what a run does: the plan --------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    """What one request meets at the server."""

    kind: str  # "429" | "500" | "drop" | "malformed" | "slow" | "hang"
    retry_after: float | None = None
    slow: float = 0.0  # a "slow" answer waits this long; a "hang" outlasts the step's timeout

    @property
    def sdk_retries_it(self) -> bool:
        return self.kind in ("429", "500", "drop")

    @property
    def answered(self) -> bool:
        return self.kind == "slow"


@dataclass
class Follow:
    """What comes after a request: the SDK's retry number ``n``, or the step's attempt ``n`` ended."""

    layer: str  # "sdk" | "step"
    n: int


@dataclass
class StepPlan:
    name: str
    kind: str  # "llm" | "tool" | "map"
    deps: list[str]
    retries: int
    backoff: float
    timeout: float | None = None
    sync: bool = True  # tool and map steps: a sync function (worker thread) or a coroutine function
    tool_script: list[str] = field(default_factory=list)  # per attempt: "raise" | "busy" | "hang"
    busy_after: float = 0.05  # the retry_after of a "busy" failure
    end: str = "ok"  # "ok" | "huge" | "chatty": what the attempt after the script does
    requests: list[Req] = field(default_factory=list)  # llm: what each request meets, then answers
    elements: list[list[str]] = field(default_factory=list)  # map: each element's tool script

    def line(self) -> str:
        options = [f"@retries({self.retries}, backoff={self.backoff:g})"]
        if self.timeout is not None:
            options.append(f"@timeout({self.timeout:g})")
        if self.kind == "llm":
            body = f'llm("[{self.name}] ' + " ".join("{" + d + "}" for d in self.deps) + '")'
        elif self.kind == "map":
            body = f"[t_{self.name}(i{''.join(', ' + d for d in self.deps)}) for i in range({len(self.elements)})]"
        else:
            body = f"t_{self.name}({', '.join(self.deps)})"
        return " ".join(options) + f"\n{self.name} = {body}\n"


def simulate_tool(script: list[str], retries: int) -> tuple[bool, int]:
    """(succeeds, attempts) for a tool that fails as ``script`` says, then works."""
    if len(script) <= retries:
        return True, len(script) + 1
    return False, retries + 1


def simulate_llm(requests: list[Req], retries: int, sdk_retries: int) -> tuple[bool, int, list[Follow]]:
    """(succeeds, attempts, what follows each request but the last) for an llm step."""
    follows: list[Follow] = []
    i = 0
    for attempt in range(1, retries + 2):
        sdk = 0
        while True:
            req = requests[i] if i < len(requests) else None
            i += 1
            if req is None or req.answered:
                return True, attempt, follows
            if req.sdk_retries_it and sdk < sdk_retries:
                follows.append(Follow("sdk", sdk))
                sdk += 1
                continue
            break
        follows.append(Follow("step", attempt))
    follows.pop()  # the last attempt's failure is followed by nothing
    return False, retries + 1, follows


def random_requests(rng: random.Random, timeout: bool, sdk_retries: int) -> list[Req]:
    """Faults for an llm step's requests. With a timeout and SDK retries, no fault the SDK would
    back off from without a Retry-After (0.4 to 1 s), so only a hang can outlast the timeout."""
    kinds = ["429", "500", "malformed", "slow"]
    if not (timeout and sdk_retries):
        kinds.append("drop")
    if timeout:
        kinds.append("hang")
    out = []
    for _ in range(rng.choice([0, 0, 1, 2, 3, 4])):
        kind = rng.choice(kinds)
        retry_after = None
        if kind == "429" or (kind == "500" and ((timeout and sdk_retries) or rng.random() < 0.5)):
            retry_after = rng.choice([0.02, 0.05, 0.1, 0.15])
        out.append(Req(kind, retry_after, slow=rng.choice([0.05, 0.1, 0.2])))
    return out


def random_plan(rng: random.Random, sdk_retries: int) -> list[StepPlan]:
    plans: list[StepPlan] = []
    for index in range(rng.randint(3, 8)):
        name = f"s{index}"
        usable = [p.name for p in plans if p.end != "huge"]  # huge values stay leaves
        deps = rng.sample(usable, k=min(len(usable), rng.choice([0, 1, 1, 2])))
        kind = rng.choices(["llm", "tool", "map"], weights=[45, 45, 10])[0]
        plan = StepPlan(name, kind, deps, retries=rng.choice([0, 1, 2, 3]), backoff=rng.choice([0.01, 0.02, 0.04]))
        if kind == "llm":
            if rng.random() < 0.4:
                plan.timeout = LLM_TIMEOUT
            plan.requests = random_requests(rng, plan.timeout is not None, sdk_retries)
        elif kind == "tool":
            plan.sync = rng.random() < 0.6
            failing = rng.choice([0, 0, 1, 2, plan.retries + 1])
            plan.tool_script = [rng.choice(["raise", "busy", "hang"]) for _ in range(failing)]
            if "hang" in plan.tool_script or rng.random() < 0.2:
                plan.timeout = TOOL_TIMEOUT
            plan.busy_after = rng.choice([0.02, 0.05, 0.1])
            plan.end = rng.choices(["ok", "huge", "chatty"], weights=[70, 15, 15])[0]
        else:
            plan.sync = rng.random() < 0.5
            plan.elements = [
                [rng.choice(["raise", "busy"]) for _ in range(rng.choice([0, 0, 1, plan.retries + 1]))]
                for _ in range(rng.randint(1, 6))
            ]
        plans.append(plan)
    return plans


# -- the tools of one run, recording what happened ------------------------------------------


class ToolError(RuntimeError):
    pass


class Busy(RuntimeError):
    """A failure that asks to be retried no sooner than ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Tools:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, list[float]] = {}  # label -> monotonic time of each call
        self.made: dict[str, Any] = {}  # label -> the value its successful call returned
        self.release = threading.Event()
        self.thread_hangs = 0  # sync calls that hung (each blocks its thread until release)
        self.async_hangs = 0
        self.async_cancelled = 0  # async hangs that saw the cancel
        self.met: Counter[str] = Counter()

    def namespace(self, plans: list[StepPlan]) -> dict[str, Any]:
        ns: dict[str, Any] = {}
        for plan in plans:
            if plan.kind == "tool":
                ns[f"t_{plan.name}"] = self.tool(plan, lambda args, plan=plan: (plan.name, plan.tool_script))
            elif plan.kind == "map":
                ns[f"t_{plan.name}"] = self.tool(
                    plan, lambda args, plan=plan: (f"{plan.name}[{args[0]}]", plan.elements[args[0]])
                )
        return ns

    def _call(self, label: str, script: list[str]) -> tuple[int, str]:
        with self.lock:
            times = self.calls.setdefault(label, [])
            times.append(time.monotonic())
            attempt = len(times)
        return attempt, script[attempt - 1] if attempt <= len(script) else "end"

    def count(self, kind: str) -> None:
        with self.lock:
            self.met[kind] += 1

    def _result(self, plan: StepPlan, label: str, attempt: int) -> Any:
        end = plan.end if plan.kind == "tool" else "ok"
        if end != "ok":
            self.count(f"tool {end}")
        if end == "huge":
            value: Any = bytes([attempt]) * HUGE
        else:
            if end == "chatty":
                printers = [
                    threading.Thread(
                        target=lambda j=j: [print(f"{label} thread {j} line {i}") for i in range(CHATTY_LINES)]
                    )
                    for j in range(CHATTY_THREADS)
                ]
                for t in printers:
                    t.start()
                for t in printers:
                    t.join()
            value = f"{label} done on attempt {attempt}"
        with self.lock:
            self.made[label] = value
        return value

    def _failure(self, plan: StepPlan, label: str, attempt: int, action: str) -> Exception:
        self.count(f"tool {action}")
        if action == "busy":
            return Busy(f"{label} is busy (attempt {attempt})", plan.busy_after)
        return ToolError(f"{label} broke on attempt {attempt}")

    def tool(self, plan: StepPlan, which: Any) -> Any:
        if plan.sync:

            def sync_tool(*args: Any) -> Any:
                label, script = which(args)
                attempt, action = self._call(label, script)
                if action == "hang":
                    with self.lock:
                        self.thread_hangs += 1
                    self.count("tool hang (thread)")
                    self.release.wait(HANG)
                    return "too late"
                if action != "end":
                    raise self._failure(plan, label, attempt, action)
                return self._result(plan, label, attempt)

            return sync_tool

        async def async_tool(*args: Any) -> Any:
            label, script = which(args)
            attempt, action = self._call(label, script)
            if action == "hang":
                self.async_hangs += 1
                self.count("tool hang (async)")
                try:
                    await asyncio.sleep(HANG)
                except asyncio.CancelledError:
                    self.async_cancelled += 1
                    raise
                return "too late"
            if action != "end":
                raise self._failure(plan, label, attempt, action)
            return self._result(plan, label, attempt)

        return async_tool


# -- one run and its checks -------------------------------------------------------------------


@dataclass
class Tally:
    runs: int = 0
    steps: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    jitter: list[float] = field(default_factory=list)  # step-layer waits over their nominal backoff
    retry_after_waits: int = 0  # gaps checked against a Retry-After
    leaks: list[str] = field(default_factory=list)


def expected_status(plans: list[StepPlan], sdk_retries: int) -> dict[str, tuple[str, int]]:
    """Each step's final status and attempts in a ``continue`` run."""
    out: dict[str, tuple[str, int]] = {}
    for plan in plans:
        if any(out[d][0] != "succeeded" for d in plan.deps):
            out[plan.name] = ("skipped", 0)
            continue
        if plan.kind == "llm":
            ok, attempts, _ = simulate_llm(plan.requests, plan.retries, sdk_retries)
        elif plan.kind == "tool":
            ok, attempts = simulate_tool(plan.tool_script, plan.retries)
        else:
            ok, attempts = all(simulate_tool(s, plan.retries)[0] for s in plan.elements), 1
        out[plan.name] = ("succeeded" if ok else "failed", attempts)
    return out


def check_gaps(
    times: list[float], follows: list[Follow], reqs: list[Req], plan: StepPlan, tally: Tally, where: str
) -> None:
    """The waits between consecutive requests (or calls) of one step: Retry-After, backoff, limits."""
    for j, (before, after) in enumerate(itertools.pairwise(times)):
        gap = after - before
        follow, req = follows[j], reqs[j] if j < len(reqs) else None
        asked = req.retry_after if req is not None else None
        if follow.layer == "sdk":  # the SDK's own wait: Retry-After, else 0.5 s * 2^n less up to 25 %
            low = asked if asked is not None else 0.5 * 2**follow.n * 0.75
            high = asked if asked is not None else 0.5 * 2**follow.n
        else:  # the step's @retries: backoff * 2^(attempt-1) with jitter, never sooner than Retry-After
            nominal = plan.backoff * 2 ** (follow.n - 1)
            low = max(asked or 0.0, nominal * 0.5)
            high = max(asked or 0.0, nominal) * 1.5
            if asked is None and (req is None or req.kind != "hang"):
                tally.jitter.append(gap / nominal)
        if req is not None and req.kind == "hang":
            continue  # the wait includes the rest of the timeout
        if asked is not None:
            tally.retry_after_waits += 1
        assert low <= gap <= high + SLACK, (
            f"{where}: wait {j + 1} of {plan.name} was {gap:.3f} s; expected {low:.3f} to {high:.3f} s "
            f"after {req or 'a failure'} ({follow.layer} retry {follow.n})"
        )


@dataclass
class Scenario:
    """One run: its steps and faults, the SDK's retries, and how the run may end early."""

    plans: list[StepPlan]
    sdk_retries: int
    mode: str = "continue"  # "continue" | "stop" (on_error="stop") | "deadline" (a run timeout)
    deadline: float = 0.6
    where: str = "warm-up"


def random_scenario(seed: int) -> Scenario:
    rng = random.Random(seed)
    sdk_retries = rng.choice([0, 1, 1, 2])
    mode = rng.choices(["continue", "stop", "deadline"], weights=[70, 15, 15])[0]
    deadline = rng.choice([0.3, 0.6])
    where = f"run seed={seed} mode={mode} sdk_retries={sdk_retries}"
    return Scenario(random_plan(rng, sdk_retries), sdk_retries, mode, deadline, where)


def every_fault() -> Scenario:
    """Each kind of fault at least once: the warm-up before memory is measured."""
    llm = [Req("429", 0.02), Req("500", 0.02), Req("500"), Req("drop"), Req("malformed"), Req("slow", slow=0.05)]
    plans = [
        StepPlan("s0", "llm", [], retries=3, backoff=0.01, requests=llm),
        StepPlan("s1", "llm", ["s0"], retries=1, backoff=0.01, timeout=LLM_TIMEOUT, requests=[Req("hang")]),
        StepPlan("s2", "tool", [], 3, 0.01, timeout=TOOL_TIMEOUT, tool_script=["raise", "busy", "hang"]),
        StepPlan("s3", "tool", [], retries=1, backoff=0.01, timeout=TOOL_TIMEOUT, tool_script=["hang"], sync=False),
        StepPlan("s4", "tool", ["s2"], retries=0, backoff=0.01, end="huge"),
        StepPlan("s5", "tool", ["s3"], retries=0, backoff=0.01, end="chatty"),
        StepPlan("s6", "map", ["s1"], retries=1, backoff=0.01, elements=[[], ["raise"], ["busy", "busy"]]),
    ]
    return Scenario(plans, sdk_retries=1)


def one_run(scenario: Scenario, tally: Tally, capsys: pytest.CaptureFixture[str]) -> None:
    sdk_retries = scenario.sdk_retries
    plans, mode, where = scenario.plans, scenario.mode, scenario.where
    source = "".join(p.line() for p in plans)
    tools = Tools()
    settings: dict[str, Any] = {"model": MODEL, "cache": False}
    if mode == "stop":
        settings["on_error"] = "stop"
    elif mode == "deadline":
        settings["timeout"] = scenario.deadline
    events: list[Event] = []
    with LLMServer() as server:
        use_endpoint(server.base_url, sdk_retries)
        for plan in plans:
            for req in plan.requests:
                if req.kind in ("429", "500"):
                    server.fail_next(int(req.kind), retry_after=req.retry_after, match=f"[{plan.name}]")
                elif req.kind in ("drop", "malformed"):
                    server.fail_next(drop=req.kind == "drop", malformed=req.kind == "malformed", match=f"[{plan.name}]")
                else:  # a slow answer, or one slower than the step's timeout
                    server.fail_next(200, slow=HANG if req.kind == "hang" else req.slow, match=f"[{plan.name}]")
        flow = Flow.from_source(source, name="faults", namespace=tools.namespace(plans), **settings)
        handle = flow.session.start(flow.execution(observers=[events.append]))
        try:
            run = handle.wait(RUN_LIMIT)  # a run that never ends is a failure here, not a stuck suite
            statuses = {n: r.status for n, r in run.steps.items()}
            assert handle.done(), f"{where}: the run did not end in {RUN_LIMIT:g} s: {statuses}\n{source}"
        finally:
            tools.release.set()  # hung threads may return now: they were abandoned, not killed
        requests = {p.name: server.requests_for(f"[{p.name}]") for p in plans if p.kind == "llm"}
    printed = capsys.readouterr().out
    try:
        check_run(run, events, plans, tools, requests, printed, mode, sdk_retries, tally, where)
    except AssertionError:
        print(f"{where}\n{source}")
        raise
    tally.runs += 1
    tally.steps += len(plans)
    tally.faults.update(tools.met)
    for plan in plans:
        for req in plan.requests[: len(requests.get(plan.name, []))]:
            tally.faults[f"llm {req.kind}" + (" with Retry-After" if req.retry_after else "")] += 1
    default_cache.clear()
    default_history.clear()


def check_run(
    run: Run,
    events: list[Event],
    plans: list[StepPlan],
    tools: Tools,
    requests: dict[str, list[RecordedRequest]],
    printed: str,
    mode: str,
    sdk_retries: int,
    tally: Tally,
    where: str,
) -> None:
    assert run.status in ("succeeded", "failed", "cancelled"), where
    statuses = {n: r.status for n, r in run.steps.items()}
    assert set(statuses.values()) <= FINAL, f"{where}: {statuses}"

    # nothing that finished is lost: the very value each step's FINISHED event carried
    for event in events:
        if event.kind != ev.FINISHED:
            continue
        assert event.step is not None
        record = run.steps[event.step]
        assert record.status == "succeeded", where
        if record.map is None:
            assert run.outputs[event.step] is event.value, where
        else:
            index = int(event.step.rsplit("[", 1)[1].rstrip("]"))
            parent = run.steps[record.map]
            values = run.outputs[record.map] if parent.status == "succeeded" else None
            if parent.status == "failed":
                assert isinstance(parent.error, MapError), where
                values = parent.error.results
            if values is not None:
                assert values[index] is event.value, where
    for label, value in tools.made.items():
        record = run.steps.get(label)
        if record is not None and record.status == "succeeded" and record.map is None:
            assert run.outputs[label] is value, f"{where}: {label} lost its value"
    for plan in plans:
        if plan.kind == "tool" and plan.end == "huge" and run.steps[plan.name].status == "succeeded":
            assert len(step_html(run, plan.name)) < 10_000, "the view shows a bounded preview of a huge value"
        if plan.kind == "tool" and plan.end == "chatty" and plan.name in tools.made:
            for j in range(CHATTY_THREADS):
                assert f"{plan.name} thread {j} line {CHATTY_LINES - 1}" in printed, where

    finished = [e for e in events if e.kind == ev.RUN_FINISHED]
    assert len(finished) == 1 and finished[0].detail is not None, where
    abandoned = finished[0].detail["abandoned_threads"]
    assert abandoned >= tools.thread_hangs, f"{where}: every hung thread is counted as abandoned"
    assert tools.async_cancelled == tools.async_hangs, f"{where}: every timed-out coroutine saw its cancel"

    expected = expected_status(plans, sdk_retries)
    for plan in plans:
        record = run.steps[plan.name]
        status, attempts = expected[plan.name]
        assert record.attempts <= plan.retries + 1, f"{where}: {plan.name} went past its retry limit"
        retried = [e for e in events if e.kind == ev.RETRIED and e.step == plan.name]
        # a step cancelled while it waits to retry has announced a retry it never started
        assert len(retried) - max(record.attempts - 1, 0) in ((0, 1) if record.status == "cancelled" else (0,)), where
        if mode == "continue":
            assert record.status == status, f"{where}: {plan.name} is {record.status}, expected {status}"
        else:  # a stop or a deadline may cancel or skip anything, but never fakes a result
            allowed = {status, "cancelled"} | ({"skipped"} if plan.deps else set())
            assert record.status in allowed, f"{where}: {plan.name} is {record.status}, expected {allowed}"
        if record.status in ("succeeded", "failed") and plan.kind != "map":
            assert record.attempts == attempts, f"{where}: {plan.name} took {record.attempts} attempts"
        if record.status == "failed" and plan.kind != "map":
            if plan.kind == "tool":
                last = plan.tool_script[record.attempts - 1]
            else:  # the request the last attempt ended on
                last = plan.requests[len(simulate_llm(plan.requests, plan.retries, sdk_retries)[2])].kind
            if last == "hang":
                assert isinstance(record.error, StepTimeout), where
                if plan.kind == "tool" and plan.sync:
                    assert "threads cannot be stopped" in str(record.error), where
            elif plan.kind == "llm":
                assert isinstance(record.error, LLMError) and API_KEY not in str(record.error), where
        if plan.kind == "tool" and record.status == "succeeded":
            assert run.outputs[plan.name] is tools.made[plan.name], where
        if plan.kind == "map" and mode == "continue" and status != "skipped":
            for i, script in enumerate(plan.elements):
                element = run.steps[f"{plan.name}[{i}]"]
                ok, tries = simulate_tool(script, plan.retries)
                assert (element.status, element.attempts) == ("succeeded" if ok else "failed", tries), where
        if plan.kind == "llm":
            check_llm(plan, record.status, requests[plan.name], sdk_retries, mode, tally, where)
        if plan.kind in ("tool", "map"):
            check_tool_waits(plan, tools, tally, where)
    if mode == "continue":  # every hang was an attempt that timed out, and nothing else was left behind
        hangs = Counter[bool]()
        for p in plans:
            if p.kind == "tool" and expected[p.name][0] != "skipped":
                hangs[p.sync] += p.tool_script[: expected[p.name][1]].count("hang")
        assert (abandoned, tools.async_hangs) == (hangs[True], hangs[False]), where


def check_llm(
    plan: StepPlan, status: str, seen: list[RecordedRequest], sdk_retries: int, mode: str, tally: Tally, where: str
) -> None:
    follows = simulate_llm(plan.requests, plan.retries, sdk_retries)[2]
    most = len(follows) + 1
    assert len(seen) <= most <= (plan.retries + 1) * (sdk_retries + 1), where
    if mode == "continue" and status in ("succeeded", "failed"):
        assert len(seen) == most, f"{where}: {plan.name} sent {len(seen)} requests, expected {most}"
    check_gaps([r.at for r in seen], follows, plan.requests, plan, tally, where)


def check_tool_waits(plan: StepPlan, tools: Tools, tally: Tally, where: str) -> None:
    scripts = (
        {plan.name: plan.tool_script}
        if plan.kind == "tool"
        else {f"{plan.name}[{i}]": s for i, s in enumerate(plan.elements)}
    )
    for label, script in scripts.items():
        times = tools.calls.get(label, [])
        assert len(times) <= plan.retries + 1, f"{where}: {label} was called {len(times)} times"
        reqs = [Req("busy", plan.busy_after) if a == "busy" else Req(a) for a in script]
        follows = [Follow("step", n) for n in range(1, len(times))]
        check_gaps(times, follows, reqs, plan, tally, where)


# -- what a process holds -----------------------------------------------------------------------


def sockets() -> int:
    """Open sockets of this process, from its file descriptors."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # closed while we looked
            count += os.readlink(fd).startswith("socket:")
    return count


def open_loops() -> int:
    """Event loops not closed, but the idle run loops (they outlive runs, by design).
    ``type()``, not ``isinstance``: the SDK's lazy proxies import on ``__class__``."""
    gc.collect()
    found = [o for o in gc.get_objects() if issubclass(type(o), asyncio.AbstractEventLoop)]
    return sum(1 for loop in found if not loop.is_closed()) - len(runner.loops.idle())


def thread_names() -> Counter[str]:
    """Threads at work: not the network loop and its resolvers (at most 1 + RESOLVER_THREADS,
    checked), nor the shared pool's idle workers and idle run loops; all of them outlive runs, by design."""
    idle = set(runner.loops.idle())
    names = sorted(t.name for t in threading.enumerate() if t.name not in idle)
    assert sum(n.startswith(network.THREAD_NAME) for n in names) <= 1 + network.RESOLVER_THREADS, names
    return Counter(shared_pool().at_work(n for n in names if not n.startswith(network.THREAD_NAME)))


def settle(baseline: Counter[str], timeout: float = 5.0) -> Counter[str]:
    """Threads that outlive the baseline; abandoned threads get ``timeout`` seconds to return first."""
    deadline = time.monotonic() + timeout
    while thread_names() - baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    return thread_names() - baseline


#: Traced memory may grow this much over all runs. The warm-up run meets every fault first, so
#: what fills once (the SDK's lazy imports, regex and typing caches) is in the baseline; what
#: still grows is small and bounded (measured: about 30 kB over 30 runs, 40 kB over 100, some of
#: it this test's own tally). A huge value is 5 MB, so keeping even one is caught, and so is a
#: leak of 35 kB or more per run over the default 30 runs.
MEMORY_TOLERANCE = 1_000_000


def test_randomized_fault_runs_lose_nothing_and_leak_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    tally = Tally()
    gc.collect()
    tracemalloc.start()
    try:
        one_run(every_fault(), Tally(), capsys)  # warm-up: lazy imports, SDK clients, caches
        gc.collect()
        threads, loops, socks = thread_names(), open_loops(), sockets()
        memory = tracemalloc.get_traced_memory()[0]
        before = tracemalloc.take_snapshot()
        for i in range(RUNS):
            one_run(random_scenario(SEED * 1000 + i), tally, capsys)
        left = settle(threads)
        if left:
            tally.leaks.append(f"threads {dict(left)}")
        if open_loops() > loops:
            tally.leaks.append(f"event loops {open_loops() - loops}")
        if sockets() > socks:
            tally.leaks.append(f"sockets {sockets() - socks}")
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - memory
        if grown > MEMORY_TOLERANCE:
            top = tracemalloc.take_snapshot().compare_to(before, "lineno")[:5]
            tally.leaks.append(f"memory +{grown:,} B: " + "; ".join(str(s) for s in top))
    finally:
        tracemalloc.stop()
    faults = sum(tally.faults.values())
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(tally.faults.items()))
    with capsys.disabled():
        print(
            f"\nfault suite: {tally.runs} runs tried ({tally.steps} steps, seed {SEED}), {faults} faults injected "
            f"({kinds}); {tally.retry_after_waits} Retry-After waits checked; memory +{grown:,} B; "
            f"{len(tally.leaks)} leaks found{': ' + '; '.join(tally.leaks) if tally.leaks else ''}"
        )
    assert tally.runs == RUNS
    assert not tally.leaks
    # the step layer's backoff is jittered: its waits over their nominal backoff spread out
    if RUNS >= 20:  # enough retries to judge: the default runs make some 30 of them
        assert len(tally.jitter) >= 10, tally.jitter
    if len(tally.jitter) >= 10:  # uniform jitter spreads; a fixed wait would give one ratio
        assert max(tally.jitter) - min(tally.jitter) > 0.3 and statistics.pstdev(tally.jitter) > 0.1, tally.jitter


# -- each fault on its own ------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as local:
        use_endpoint(local.base_url, sdk_retries=0)
        yield local


def run_flow(source: str, **ns: Any) -> tuple[Run, list[Event]]:
    events: list[Event] = []
    flow = Flow.from_source(source, name="one", namespace=ns, model=MODEL, cache=False)
    return run_blocking(flow.execution(observers=[events.append])), events


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"status": 500, "message": "upstream broke"}, "InternalServerError: Error code: 500 - upstream broke"),
        ({"status": 429, "retry_after": 7}, "RateLimitError: Error code: 429"),
        ({"malformed": True}, "no choices"),
        ({"drop": True}, "Server disconnected"),  # the transport's cause is named: the SDK's own words vary
        ({"drop": True, "after_chunks": 2}, "APIConnectionError"),
        ({"malformed": True, "after_chunks": 2}, "not JSON"),
    ],
)
def test_each_server_fault_fails_only_its_step_with_a_clear_error(
    server: LLMServer, fault: dict[str, Any], message: str
) -> None:
    server.fail_next(**fault, match="[a]")
    run, _ = run_flow('a = llm("[a] hi")\nb = llm("[b] {a}")\nc = llm("[c] hello")\n')
    assert [run.steps[n].status for n in "abc"] == ["failed", "skipped", "succeeded"]
    assert run["c"] == "echo: [c] hello"
    error = run.steps["a"].error
    assert isinstance(error, LLMError) and message in str(error)
    assert (error.__cause__, error.__context__) == (None, None)  # the SDK's error (and its request) is not kept
    if fault.get("retry_after"):
        assert isinstance(error, LLMStatusError) and (error.status, error.retry_after) == (429, 7.0)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"retry-after-ms": "1500"}, 1.5), ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0), ({}, None)],
)
def test_an_error_status_carries_its_retry_after(server: LLMServer, headers: dict[str, str], seconds: Any) -> None:
    server.fail_next(503, headers=headers)
    run, _ = run_flow('a = llm("hi")\n')
    error = run.steps["a"].error
    assert isinstance(error, LLMStatusError) and error.status == 503 and error.retry_after == seconds


def test_a_slow_answer_within_the_timeout_arrives_and_one_past_it_times_out(server: LLMServer) -> None:
    server.fail_next(200, slow=0.2, match="[a]")
    server.fail_next(200, slow=HANG, match="[b]")
    run, _ = run_flow('@timeout(0.6)\nparallel:\n    a = llm("[a] x")\n    b = llm("[b] y")\n')
    assert run["a"] == "echo: [a] x"
    assert isinstance(run.steps["b"].error, StepTimeout) and (run.steps["b"].duration or 99) < 0.6 + SLACK


def test_retry_after_is_honoured_by_the_sdk_and_by_the_steps_retries(server: LLMServer) -> None:
    # Needs the executor patch in the report (_retry_delay): the executor jitters the step's wait
    # down to half of the Retry-After it was given, so without it some of these waits are too short.
    use_endpoint(server.base_url, sdk_retries=1)
    server.fail_next(429, retry_after=0.2, times=8)
    run, events = run_flow('@retries(3, backoff=0.01)\na = llm("hi")\n')
    seen = server.chat_requests
    assert run.steps["a"].status == "failed" and run.steps["a"].attempts == 4
    assert len(seen) == 8  # (3 + 1) attempts, each the first request and the SDK's one retry
    gaps = [b.at - a.at for a, b in itertools.pairwise(seen)]
    assert all(gap >= 0.2 for gap in gaps), gaps
    assert all(gap <= 0.2 * 1.5 + SLACK for gap in gaps), gaps
    assert [e.attempt for e in events if e.kind == ev.RETRIED] == [1, 2, 3]
    error = run.steps["a"].error
    assert isinstance(error, LLMStatusError) and error.retry_after == 0.2


def test_a_tool_asking_to_wait_is_retried_no_sooner() -> None:
    # Needs the executor patch in the report (_retry_delay), as above.
    calls: list[float] = []

    def busy() -> str:
        calls.append(time.monotonic())
        if len(calls) < 5:
            raise Busy("busy", retry_after=0.1)
        return "done"

    run, _ = run_flow("@retries(4, backoff=0.001)\na = busy()\n", busy=busy)
    assert run["a"] == "done" and run.steps["a"].attempts == 5
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(gap >= 0.1 for gap in gaps), gaps


def test_a_stop_right_after_the_first_steps_were_queued_still_ends_the_run() -> None:
    # The randomized runs found this one (seed 12002, before the executor's rewrite): 'a' fails on
    # the loop at once, on_error="stop" cancelled 'b' before its task began, so _step's handler
    # never settled 'b' and the run waited for it for ever. The rewrite settles such a step (or
    # lets it finish first); either way the run must end.
    flow = Flow.from_source("parallel:\n    a = 1 / 0\n    b = 2\n", on_error="stop", cache=False)
    handle = flow.start()
    run = handle.wait(5)
    assert handle.done(), f"the run never ended: {[(n, r.status) for n, r in run.steps.items()]}"
    assert run.status == "failed" and isinstance(run.steps["a"].error, ZeroDivisionError)
    assert run.steps["b"].status in ("succeeded", "cancelled")
