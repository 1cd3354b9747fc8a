"""The pure scheduler: table-driven cases, and a stateful property test over random runs.

The stateful test plays the driver: it builds a random DAG (groups with limits, nested
groups, maps, an if block with its arms and a join), then applies facts in a random
order (a unit begins, succeeds, fails, is cancelled; a condition chooses an arm; a map
expands; the run is cancelled; late reports for settled units) and checks after every
rule that every unit has at most one final state, that nothing was started after it
settled, that only a condition's chosen arm runs, that the limits hold, that no ready
unit waits while a slot is free, and that the run never stalls: while it is not over,
something is running.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from flowmagic.engine.scheduler import Decision, Plan, Scheduler, Unit, Verdict


def plan_of(
    deps: dict[str, Iterable[str]],
    groups: dict[str, str | None] | None = None,
    parents: dict[str, str | None] | None = None,
    workers: dict[str, int] | None = None,
    arms: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] | None = None,
    joins: dict[str, str] | None = None,
) -> Plan:
    order = list(deps)
    children: dict[str, list[str]] = {n: [] for n in order}
    for name, reads in deps.items():
        for d in reads:
            children[d].append(name)
    return Plan(
        order=order,
        children={n: tuple(c) for n, c in children.items()},
        indegree={n: len(tuple(r)) for n, r in deps.items()},
        group_of={n: (groups or {}).get(n) for n in order},
        parent_of=parents or {},
        group_workers=workers or {},
        arms=arms or {},
        joins=joins or {},
    )


def starts(decisions: list[Decision]) -> list[Unit]:
    return [d.unit for d in decisions if d.verdict is Verdict.START]


def finish(s: Scheduler, unit: Unit) -> list[Decision]:
    assert s.begin(unit)
    decisions = s.succeeded(unit)
    assert decisions is not None
    return decisions


# -- table-driven, in graphlib's manner ----------------------------------------------

DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}


@pytest.mark.parametrize(
    ("deps", "workers", "expected"),
    [
        (DIAMOND, 4, [["a"], ["b", "c"], [], ["d"], []]),
        ({"x": (), "y": (), "z": ()}, 2, [["x", "y"], ["z"], [], []]),
        ({"a": (), "b": ("a",), "c": ()}, 8, [["a", "c"], ["b"], [], []]),
    ],
    ids=["diamond", "three roots, two workers", "chain beside a root"],
)
def test_starts_follow_readiness_and_the_worker_limit(
    deps: dict[str, tuple[str, ...]], workers: int, expected: list[list[str]]
) -> None:
    s = Scheduler(plan_of(deps), workers)
    rounds = [starts(s.start())]
    running = list(rounds[0])
    while running:
        unit = running.pop(0)
        new = starts(finish(s, unit))
        rounds.append(new)
        running.extend(new)
    assert rounds == expected
    assert s.over and s.outcome() == "succeeded"


def test_a_failure_skips_what_depends_on_it_and_nothing_else() -> None:
    s = Scheduler(plan_of({"a": (), "b": ("a",), "c": ("b",), "other": ()}), 4)
    assert starts(s.start()) == ["a", "other"]
    assert s.begin("a")
    decisions = s.failed("a")
    assert [(d.verdict, d.unit, d.reason) for d in decisions] == [
        (Verdict.SKIP, "b", "'a' failed"),
        (Verdict.SKIP, "c", "'a' failed"),
    ]
    assert finish(s, "other")[-1].verdict is Verdict.DONE
    assert s.outcome() == "failed"


def test_stop_on_error_cancels_the_rest_and_the_run_has_failed() -> None:
    s = Scheduler(plan_of({"a": (), "b": (), "c": ("b",)}), 4, stop_on_error=True)
    s.start()
    assert s.begin("a") and s.begin("b")
    decisions = s.failed("a")
    assert {(d.verdict, d.unit) for d in decisions} == {
        (Verdict.CANCEL, "b"),
        (Verdict.CANCEL, "c"),
        (Verdict.DONE, None),
    }
    assert s.outcome() == "failed"
    assert s.succeeded("b") is None  # a late report changes nothing


def test_a_unit_cancelled_while_queued_never_begins() -> None:
    s = Scheduler(plan_of({"a": (), "b": ()}), 1)
    assert starts(s.start()) == ["a"]
    decisions = s.cancel("interrupted")
    assert [d.verdict for d in decisions] == [Verdict.CANCEL, Verdict.CANCEL, Verdict.DONE]
    assert not s.begin("a") and not s.begin("b")
    assert s.outcome() == "cancelled"


def test_sequential_follows_declaration_order_not_readiness() -> None:
    s = Scheduler(plan_of({"a": (), "b": ("a",), "c": ()}), 8, sequential=True)
    order = starts(s.start())
    while not s.over:
        order += starts(finish(s, order[-1]))
    assert order == ["a", "b", "c"]


def test_group_limits_nest_inside_the_run_limit() -> None:
    deps = {f"s{i}": () for i in range(6)}
    groups = {f"s{i}": "inner" if i < 4 else "outer" for i in range(6)}
    plan = plan_of(deps, groups, parents={"inner": "outer", "outer": None}, workers={"inner": 1, "outer": 3})
    s = Scheduler(plan, 8)
    # one of inner's at a time, three of outer's: inner's waiting steps hold none of outer's slots
    assert starts(s.start()) == ["s0", "s4", "s5"]
    assert starts(finish(s, "s4")) == []
    assert starts(finish(s, "s0")) == ["s1"]
    s.check()


def test_a_map_lets_its_slot_go_and_its_elements_share_the_limit_fairly() -> None:
    s = Scheduler(plan_of({"m": (), "late": ()}), 2, announce=True)
    assert starts(s.start()) == ["m", "late"]
    assert s.begin("m")
    decisions = s.expanded("m", 5)
    assert [d.unit for d in decisions if d.verdict is Verdict.QUEUED] == [("m", i) for i in range(5)]
    assert starts(decisions) == [("m", 0)]  # 'late' holds the other slot
    assert starts(finish(s, "late")) == [("m", 1)]
    assert starts(finish(s, ("m", 0))) == [("m", 2)]
    for unit in [("m", 1), ("m", 2), ("m", 3)]:
        finish(s, unit)
    assert [d.verdict for d in finish(s, ("m", 4))] == [Verdict.COLLECT]
    assert s.succeeded("m")[-1].verdict is Verdict.DONE


def test_a_step_that_becomes_ready_during_a_large_map_waits_for_one_element_not_the_map() -> None:
    s = Scheduler(plan_of({"m": (), "first": (), "then": ("first",)}), 2)
    s.start()
    s.begin("m")
    assert starts(s.expanded("m", 1000)) == [("m", 0)]
    assert starts(finish(s, "first")) == [("m", 1)]  # the map's next element was in line first
    assert starts(finish(s, ("m", 0))) == [("m", 2)]
    assert starts(finish(s, ("m", 1))) == ["then"]  # then it is the step's turn, not after 1,000


def test_an_empty_map_is_collected_at_once() -> None:
    s = Scheduler(plan_of({"m": ()}), 2)
    s.start()
    s.begin("m")
    assert [d.verdict for d in s.expanded("m", 0)] == [Verdict.COLLECT]


def test_cancelling_a_map_cancels_every_element_without_an_outcome_first() -> None:
    s = Scheduler(plan_of({"m": ()}), 2)
    s.start()
    s.begin("m")
    s.expanded("m", 4)
    finish(s, ("m", 0))
    decisions = s.cancel("timed out")
    assert [d.unit for d in decisions if d.verdict is Verdict.CANCEL] == [("m", 1), ("m", 2), ("m", 3), "m"]
    assert decisions[-1].verdict is Verdict.DONE


def test_an_empty_flow_is_done_at_once() -> None:
    assert Scheduler(plan_of({}), 1).start() == [Decision(Verdict.DONE)]


ROUTED = {"k": (), "c": ("k",), "a1": ("c",), "a2": ("c", "a1"), "b1": ("c",), "j": ("c", "a2", "b1"), "out": ("j",)}
ROUTED_ARMS = {"c": (("if x", ("a1", "a2")), ("else", ("b1",)))}


@pytest.mark.parametrize(("arm", "ran", "skipped"), [(0, ["a1", "a2"], ["b1"]), (1, ["b1"], ["a1", "a2"])])
def test_a_condition_starts_its_chosen_arm_and_skips_the_others_and_the_join_waits_for_the_arm(
    arm: int, ran: list[str], skipped: list[str]
) -> None:
    s = Scheduler(plan_of(ROUTED, arms=ROUTED_ARMS, joins={"j": "c"}), 4)
    assert starts(s.start()) == ["k"]
    assert starts(finish(s, "k")) == ["c"]
    assert s.begin("c")
    decisions = s.chosen("c", arm)
    label = ROUTED_ARMS["c"][arm][0]
    assert [(d.unit, d.reason) for d in decisions if d.verdict is Verdict.SKIP] == [
        (n, f"'c' chose '{label}'") for n in skipped
    ]
    running = starts(decisions)
    assert running == ran[:1]
    while running:
        running += starts(finish(s, running.pop(0)))
        s.check()
    assert s.status("j") == "succeeded" and s.status("out") == "succeeded" and s.over


def test_a_condition_that_chooses_no_arm_skips_every_arm_and_the_rest_goes_on() -> None:
    deps = {"c": (), "a": ("c",), "after": ()}
    s = Scheduler(plan_of(deps, arms={"c": (("if x", ("a",)),)}), 4)
    assert starts(s.start()) == ["c", "after"]
    assert s.begin("c")
    decisions = s.chosen("c", 1)
    assert [(d.verdict, d.unit, d.reason) for d in decisions] == [(Verdict.SKIP, "a", "'c': no condition was true")]
    assert finish(s, "after")[-1].verdict is Verdict.DONE and s.outcome() == "succeeded"


# -- the stateful property test --------------------------------------------------------


@st.composite
def flows(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(1, 9))
    names = [f"s{i}" for i in range(n)]
    deps = {
        name: tuple(sorted(draw(st.sets(st.sampled_from(names[:i]), max_size=3)))) if i else ()
        for i, name in enumerate(names)
    }
    groups = {"g0": None, "g1": "g0", "g2": None}
    group_of = {name: draw(st.sampled_from([None, "g0", "g1", "g2"])) for name in names}
    workers = {g: draw(st.integers(1, 3)) for g in groups if draw(st.booleans())}
    arms: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {}
    joins: dict[str, str] = {}
    if draw(st.booleans()):  # an if block after the steps: a condition, its arms, maybe a join
        deps["c"] = tuple(sorted(draw(st.sets(st.sampled_from(names[:2]), max_size=1))))
        lasts = []
        for a in range(draw(st.integers(1, 3))):
            steps = [f"a{a}_{j}" for j in range(draw(st.integers(1, 2)))]
            for j, step in enumerate(steps):
                deps[step] = ("c", *steps[:j], *sorted(draw(st.sets(st.sampled_from(names), max_size=1))))
                group_of[step] = draw(st.sampled_from([None, "g1"]))
            arms["c"] = (*arms.get("c", ()), (f"arm {a}", tuple(steps)))
            lasts.append(steps[-1])
        if draw(st.booleans()):  # every arm assigns it: a join, and a step after the block
            deps["j"] = ("c", *lasts)
            joins["j"] = "c"
            deps["after"] = ("j",)
    return {
        "plan": plan_of(deps, group_of, groups, workers, arms, joins),
        "maps": frozenset(draw(st.sets(st.sampled_from(names), max_size=3))),
        "workers": draw(st.integers(1, 4)),
        "sequential": draw(st.booleans()),
        "stop": draw(st.booleans()),
        "announce": draw(st.booleans()),
    }


class SchedulerMachine(RuleBasedStateMachine):
    """Plays the driver against a random flow, checking the invariants after every rule."""

    @initialize(flow=flows())
    def build(self, flow: dict[str, object]) -> None:
        self.plan: Plan = flow["plan"]  # type: ignore[assignment]
        self.maps: frozenset[str] = flow["maps"]  # type: ignore[assignment]
        self.s = Scheduler(
            self.plan,
            flow["workers"],  # type: ignore[arg-type]
            sequential=bool(flow["sequential"]),
            stop_on_error=bool(flow["stop"]),
            announce=bool(flow["announce"]),
        )
        self.granted: list[Unit] = []  # STARTed, not begun
        self.running: list[Unit] = []  # begun, no outcome reported
        self.expanding: list[str] = []  # maps begun, not yet expanded
        self.settled: dict[Unit, str] = {}
        self.started: set[Unit] = set()
        self.element_outcomes: dict[str, dict[int, str]] = {}
        self.chosen: dict[Unit, int] = {}  # each condition that succeeded, and the arm it chose
        self.done = 0
        self.apply(self.s.start())

    # -- the driver's side ---------------------------------------------------------------
    def apply(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if d.verdict is Verdict.START:
                assert d.unit not in self.settled, f"{d.unit} started after it settled"
                assert d.unit not in self.started, f"{d.unit} started twice"
                self.started.add(d.unit)
                self.granted.append(d.unit)
            elif d.verdict in (Verdict.SKIP, Verdict.CANCEL):
                self.settle(d.unit, "skipped" if d.verdict is Verdict.SKIP else "cancelled")
            elif d.verdict is Verdict.COLLECT:
                assert isinstance(d.unit, str)
                outcomes = self.element_outcomes.get(d.unit, {})
                ok = all(o == "succeeded" for o in outcomes.values())
                self.settle(d.unit, "succeeded" if ok else "failed")
                decisions = self.s.succeeded(d.unit) if ok else self.s.failed(d.unit)
                assert decisions is not None
                self.apply(decisions)
            elif d.verdict is Verdict.DONE:
                self.done += 1

    def settle(self, unit: Unit, status: str) -> None:
        assert unit not in self.settled, f"{unit} settled twice: {self.settled[unit]}, then {status}"
        self.settled[unit] = status
        for pool in (self.granted, self.running):
            if unit in pool:
                pool.remove(unit)
        if unit in self.expanding:
            self.expanding.remove(unit)
        if isinstance(unit, tuple):
            self.element_outcomes.setdefault(unit[0], {})[unit[1]] = status

    # -- rules --------------------------------------------------------------------------
    @precondition(lambda self: self.granted)
    @rule(data=st.data())
    def begin(self, data: st.DataObject) -> None:
        unit = data.draw(st.sampled_from(self.granted))
        assert self.s.begin(unit)
        self.granted.remove(unit)
        if unit in self.maps:
            self.expanding.append(unit)
        else:
            self.running.append(unit)

    @precondition(lambda self: self.expanding)
    @rule(data=st.data(), n=st.integers(0, 5))
    def expand(self, data: st.DataObject, n: int) -> None:
        unit = data.draw(st.sampled_from(self.expanding))
        self.expanding.remove(unit)
        self.apply(self.s.expanded(unit, n))

    @precondition(lambda self: self.running)
    @rule(data=st.data(), outcome=st.sampled_from(["succeeded", "succeeded", "succeeded", "failed", "cancelled"]))
    def report(self, data: st.DataObject, outcome: str) -> None:
        unit = data.draw(st.sampled_from(self.running))
        if outcome != "cancelled":  # a CANCEL decision records a cancel, whoever asked for it
            self.settle(unit, outcome)
        if outcome == "succeeded" and unit in self.plan.arms:  # a condition: it chooses an arm, or none
            arm = data.draw(st.integers(0, len(self.plan.arms[unit])))
            self.chosen[unit] = arm
            decisions = self.s.chosen(unit, arm)  # type: ignore[arg-type]
            assert decisions is not None
            self.apply(decisions)
            return
        fact = {"succeeded": self.s.succeeded, "failed": self.s.failed, "cancelled": self.s.cancelled}[outcome]
        decisions = fact(unit)
        assert decisions is not None, f"{unit} was live, yet its report came too late"
        self.apply(decisions)

    @precondition(lambda self: any(isinstance(u, tuple) for u in self.running))
    @rule(data=st.data())
    def pass_on(self, data: st.DataObject) -> None:
        """An element's slots handed straight to its map's next element, when nobody else waits."""
        unit = data.draw(st.sampled_from([u for u in self.running if isinstance(u, tuple)]))
        before = self.s.status(unit)
        following = self.s.pass_on(unit)
        if following is None:
            assert self.s.status(unit) == before  # nothing changed
            return
        assert following[0] == unit[0] and following not in self.started and following not in self.settled
        self.settle(unit, "succeeded")
        self.started.add(following)
        self.running.append(following)
        assert not self.s.begin(following)  # it runs already

    @precondition(lambda self: self.settled)
    @rule(data=st.data())
    def late_report(self, data: st.DataObject) -> None:
        unit = data.draw(st.sampled_from(sorted(self.settled, key=repr)))
        assert not self.s.begin(unit), f"{unit} began after it settled"
        assert self.s.succeeded(unit) is None and self.s.failed(unit) is None

    @rule(data=st.data())
    def begin_too_soon(self, data: st.DataObject) -> None:
        waiting = [n for n in self.plan.order if n not in self.started]
        if waiting:
            unit = data.draw(st.sampled_from(waiting))
            assert not self.s.begin(unit), f"{unit} began before it was started"

    @rule(reason=st.sampled_from(["interrupted", "timed out"]), now=st.integers(0, 7))
    def cancel(self, reason: str, now: int) -> None:
        if now == 0:  # (rarely: runs that are cancelled at once would never reach their later steps)
            self.apply(self.s.cancel(reason))

    # -- invariants ---------------------------------------------------------------------
    @invariant()
    def holds(self) -> None:
        if not hasattr(self, "s"):
            return
        self.s.check()
        assert self.done <= 1, "DONE twice"
        if self.s.over:
            assert self.done == 1
            assert set(self.plan.order) <= set(self.settled)
        else:
            # never stalled: some unit can still move
            assert self.granted or self.running or self.expanding, "nothing runs, yet the run is not over"
        for unit in self.started:
            if unit not in self.settled:
                assert self.s.live(unit)

    @invariant()
    def skips_and_cancels_propagate(self) -> None:
        if not hasattr(self, "s"):
            return
        for step, status in self.settled.items():
            if isinstance(step, str) and status in ("failed", "cancelled", "skipped"):
                for child in self.plan.children[step]:
                    untaken = status == "skipped" and self.plan.joins.get(child) in self.chosen
                    if not untaken:  # (a join waits for the chosen arm, not for the arms skipped)
                        assert child in self.settled or not self.s.live(child), f"{child} still live after {step}"

    @invariant()
    def only_the_chosen_arm_runs(self) -> None:
        if not hasattr(self, "s"):
            return
        for cond, arm in self.chosen.items():
            for index, (_, steps) in enumerate(self.plan.arms[cond]):
                for step in steps:
                    if index != arm:  # (cancelled if a cancel reached it before the condition chose)
                        assert self.settled.get(step) in ("skipped", "cancelled") and step not in self.started, step


SchedulerMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("FLOWMAGIC_SCHEDULER_EXAMPLES", "300")),
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_scheduler_state_machine = SchedulerMachine.TestCase
