"""The scheduler: which unit of work runs next, decided from facts alone.

A pure state machine: no threads, no event loop, no clock, no user code. The driver
(:mod:`flowmagic.engine.execution`) tells it what happened and it answers with
:class:`Decision` s. Every fact goes through one of its methods and every method returns
the decisions it made, in order:

========================  ===================================================================
fact (method)             what the scheduler may decide
========================  ===================================================================
``start()``               START the roots (or, ``sequential``, the first step)
``begin(unit)``           nothing; True if the unit may really start now (it was granted and
                          nothing settled it since): the driver's gate before user code runs
``succeeded(unit)``       START steps it made ready, or units its slots were handed to;
                          COLLECT a map whose last element this was; DONE
``chosen(cond, arm)``      condition ``cond`` succeeded with arm number ``arm``: SKIP the
                          steps of the other arms; START what that made ready
``failed(unit)``          SKIP what depends on it; with ``stop_on_error``, CANCEL the rest
``cancelled(unit)``       CANCEL it and what depends on it
``expanded(map, n)``      QUEUED and START the map's elements, as slots allow; COLLECT if n == 0
``cancel(reason)``        CANCEL every unit without a final state; DONE
========================  ===================================================================

A unit is a step's name, or ``(map, index)`` for an element of a map. A map step
holds a slot while its iterable is evaluated, lets it go when told ``expanded``, and
settles (through ``succeeded``/``failed``, like any step) once the driver has COLLECTed
its elements' outcomes.

The state, all of it here:

- ``state[step]``: PENDING (waits for what it reads), QUEUED (in a limit's line),
  GRANTED (holds its slots, not yet begun), RUNNING, then one final
  :class:`~flowmagic.engine.vocabulary.Status`. A map's elements keep theirs in
  ``maps[map].state``, a ``bytearray`` (a map of a million elements costs a megabyte).
- ``waiting[step]``: how many of the steps it reads have not succeeded.
- ``limits`` and ``claims``: slots and lines (:mod:`flowmagic.engine.limits`); a unit
  holds its claim from QUEUED until it settles.
- ``cursor`` (``sequential`` only): the position in topological order of the one step
  allowed to start; steps behind it wait even when ready, so a sequential run follows
  declaration order.
- ``unfinished``: steps without a final state; DONE when it reaches zero.

Invariants (checked by :meth:`check`, and after every rule of the stateful test):
every unit ends in exactly one final state; nothing is STARTed after it settled, and
:meth:`begin` refuses a settled unit; no limit is over its size; a limit with a free slot
has nobody live in its line; outside ``sequential``, no PENDING step has all it reads
done; a failure skips, and a cancel cancels, everything that depends on it; a condition
skips every step of the arms it did not choose, and nothing else.

Fairness: elements of a map queue one at a time, and a map that is handed a slot lines
up again at the back, so a step that becomes ready while a large map runs gets the next
free slot rather than waiting for the whole map.
"""

from __future__ import annotations

from collections import deque

from .decisions import Decision, MapState, Plan, Unit, Verdict, Wants, decision, new, only
from .limits import Claim, Limit, give, take
from .vocabulary import RunStatus, Status

# states before the final ones (the final ones are Status members)
PENDING = "pending"
QUEUED = "queued"
GRANTED = "granted"
RUNNING = "running"
_LIVE = (PENDING, QUEUED, GRANTED, RUNNING)

# a map element's state, one byte each
_E_WAIT, _E_QUEUED, _E_GRANTED, _E_RUNNING, _E_OK, _E_FAILED, _E_CANCELLED = range(7)
_E_FINAL = _E_OK


class Scheduler:
    """Decides when each unit of a run starts and settles; see the module's docstring."""

    def __init__(
        self,
        plan: Plan,
        workers: int,
        *,
        sequential: bool = False,
        stop_on_error: bool = False,
        announce: bool = False,
    ) -> None:
        self.plan = plan
        self.sequential = sequential
        self.stop_on_error = stop_on_error
        self.announce = announce  # emit QUEUED decisions (someone watches)
        self.state: dict[str, str] = dict.fromkeys(plan.order, PENDING)
        self.waiting: dict[str, int] = dict(plan.indegree)
        self.run_limit = Limit(1 if sequential else workers)
        self.group_limits = {g: Limit(n) for g, n in plan.group_workers.items()}
        self._chains: dict[str | None, tuple[Limit, ...]] = {}
        self.claims: dict[Unit, Claim] = {}
        self.maps: dict[str, MapState] = {}
        self.unfinished = len(self.state)
        self.cursor = 0
        self.reason: str | None = None  # why the run was cancelled
        self.stopped_by: str | None = None  # the failed step that cancelled the rest (stop_on_error)
        self.failures = 0  # steps (not elements) that failed
        self.out: list[Decision] = []

    # -- facts --------------------------------------------------------------------------
    def start(self) -> list[Decision]:
        if not self.unfinished:
            self.out.append(decision(Verdict.DONE))
        elif self.sequential:
            self._advance()
        else:
            waiting = self.waiting
            for step in self.plan.order:
                if not waiting[step] and self.state[step] is PENDING:
                    self._ready(step)
        return self._decisions()

    def begin(self, unit: Unit) -> bool:
        """Whether ``unit`` may start running now; it is RUNNING from here on."""
        if type(unit) is tuple:
            m = self.maps.get(unit[0])
            if m is None or m.state[unit[1]] != _E_GRANTED:
                return False
            m.state[unit[1]] = _E_RUNNING
            return True
        if self.state.get(unit) is not GRANTED:  # type: ignore[call-overload]
            return False
        self.state[unit] = RUNNING  # type: ignore[index]
        return True

    def succeeded(self, unit: Unit) -> list[Decision] | None:
        """``unit`` succeeded. None if it had settled already (a late report: nothing changes)."""
        if type(unit) is tuple:  # a map's element: the common case of a large map, kept short
            m = self.maps.get(unit[0])
            if m is None or m.state[unit[1]] >= _E_FINAL:
                return None
            self._settle_element(unit, _E_OK, Status.SUCCEEDED)
            return self._after()
        state = self.state
        if state.get(unit) not in _LIVE:  # type: ignore[call-overload]
            return None
        step: str = unit  # type: ignore[assignment]
        self._settle(step, Status.SUCCEEDED)
        waiting = self.waiting
        for child in self.plan.children[step]:
            left = waiting[child] = waiting[child] - 1
            if not left and state[child] is PENDING and not self.sequential:
                self._ready(child)
        if self.sequential:
            return self._after()
        out, self.out = self.out, []
        return out

    def chosen(self, cond: str, arm: int) -> list[Decision] | None:
        """Condition ``cond`` succeeded and chose arm ``arm`` (past the last: none). The steps of
        the other arms are SKIPPED; a join counts a skipped arm's step as done, since it takes
        the chosen arm's. None if late."""
        if self.state.get(cond) not in _LIVE:
            return None
        arms = self.plan.arms[cond]
        label = arms[arm][0] if 0 <= arm < len(arms) else None
        reason = f"'{cond}' chose '{label}'" if label else f"'{cond}': no condition was true"
        joins, state, waiting = self.plan.joins, self.state, self.waiting
        freed: list[str] = []
        for index, (_, steps) in enumerate(arms):
            if index == arm:
                continue
            for step in steps:
                if state[step] is PENDING:
                    self._settle(step, Status.SKIPPED, reason)
                for child in self.plan.children[step]:
                    if joins.get(child) == cond:
                        waiting[child] -= 1
                        freed.append(child)
        self._settle(cond, Status.SUCCEEDED)
        for child in self.plan.children[cond]:
            waiting[child] -= 1
            freed.append(child)
        if not self.sequential:
            for child in dict.fromkeys(freed):
                if not waiting[child] and state[child] is PENDING:
                    self._ready(child)
        return self._after()

    def pass_on(self, unit: tuple[str, int]) -> tuple[str, int] | None:
        """Running map element ``unit`` succeeded, and nobody else waits for its slots: they go
        straight to the map's next element, which is RUNNING at once. Returns that element; or
        None, and nothing changed, when that is not the case (then report through :meth:`succeeded`).

        The common case of a large map, in one call: no decision to make but this one.
        """
        step, index = unit
        m = self.maps.get(step)
        if m is None or m.state[index] != _E_RUNNING or self.reason is not None or m.next >= m.n:
            return None
        claim = self.claims.get(unit)
        if claim is None or not only(m.line, claim.limits):
            return None
        m.state[index] = _E_OK
        m.left -= 1
        del self.claims[unit]
        following = m.next
        m.next = following + 1
        m.state[following] = _E_RUNNING
        claim.unit = nxt = (step, following)
        self.claims[nxt] = claim
        return nxt

    def failed(self, unit: Unit, stop: str | None = None) -> list[Decision] | None:
        """``unit`` failed; with ``stop`` (a reason), the rest of the run is cancelled whatever
        ``stop_on_error`` says (a step that cannot be sent to a cluster, say). None if late."""
        if not self.live(unit):
            return None
        if type(unit) is tuple:
            self._settle_element(unit, _E_FAILED, Status.FAILED)
            return self._after()
        step: str = unit  # type: ignore[assignment]
        self.failures += 1
        self._settle(step, Status.FAILED)
        self._descendants(step, Status.SKIPPED, f"'{step}' failed")
        if (stop or self.stop_on_error) and self.reason is None:
            self.stopped_by = step
            self._cancel(stop or f"'{step}' failed and on_error is 'stop'")
        return self._after()

    def cancelled(self, unit: Unit, reason: str = "cancelled") -> list[Decision] | None:
        """One unit was cancelled on its own (not by :meth:`cancel`): it and its descendants. None if late."""
        if not self.live(unit):
            return None
        if type(unit) is tuple:
            self._settle_element(unit, _E_CANCELLED, Status.CANCELLED, reason)
            return self._after()
        step: str = unit  # type: ignore[assignment]
        self._settle(step, Status.CANCELLED, reason)
        self._descendants(step, Status.CANCELLED, f"'{step}' was cancelled")
        return self._after()

    def expanded(self, step: str, n: int) -> list[Decision]:
        """Map ``step`` knows its ``n`` elements: its own slots go, its elements queue."""
        if self.state.get(step) is not RUNNING or step in self.maps:
            return []
        self._release(step)
        m = self.maps[step] = MapState(n)
        if self.announce:
            self.out.extend(decision(Verdict.QUEUED, (step, i)) for i in range(n))
        if n:
            self._feed(step, m)
        else:
            self.out.append(decision(Verdict.COLLECT, step))
        return self._decisions()

    def cancel(self, reason: str) -> list[Decision]:
        """Cancel the run: every unit without a final state is settled as cancelled."""
        if self.reason is None:
            self._cancel(reason)
        return self._after()

    # -- questions ------------------------------------------------------------------------
    def live(self, unit: Unit) -> bool:
        """Whether ``unit`` has no final state yet."""
        if type(unit) is tuple:
            m = self.maps.get(unit[0])
            return m is not None and 0 <= unit[1] < m.n and m.state[unit[1]] < _E_FINAL
        return self.state.get(unit) in _LIVE  # type: ignore[call-overload]

    def status(self, unit: Unit) -> str:
        """A unit's state: a final :class:`Status`, or pending/queued/granted/running."""
        if type(unit) is tuple:
            m = self.maps[unit[0]]
            code = m.state[unit[1]]
            return ("pending", QUEUED, GRANTED, RUNNING, *_ELEMENT_FINAL)[code]
        return self.state[unit]  # type: ignore[index]

    @property
    def over(self) -> bool:
        return not self.unfinished

    def outcome(self) -> RunStatus:
        """The run's status so far: failed, cancelled or succeeded."""
        if self.stopped_by is not None or (self.reason is None and self.failures):
            return RunStatus.FAILED
        return RunStatus.CANCELLED if self.reason is not None else RunStatus.SUCCEEDED

    # -- rules --------------------------------------------------------------------------
    def _decisions(self) -> list[Decision]:
        out, self.out = self.out, []
        return out

    def _after(self) -> list[Decision]:
        if self.sequential and self.reason is None:
            self._advance()
        return self._decisions()

    def _chain(self, step: str) -> tuple[Limit, ...]:
        """The limits a step (or its elements) takes: its groups', innermost first, then the run's.

        Innermost first: a claim that waits holds only slots no one outside its group could use,
        so a step beside a busy inner group is not kept waiting by the inner group's line.
        """
        group = self.plan.group_of[step]
        chain = self._chains.get(group)
        if chain is None:
            limits = []
            g = group
            while g is not None:
                if g in self.group_limits:
                    limits.append(self.group_limits[g])
                g = self.plan.parent_of[g]
            limits.append(self.run_limit)
            chain = self._chains[group] = tuple(limits)
        return chain

    def _ready(self, step: str) -> None:
        self.state[step] = QUEUED
        if self.announce:
            self.out.append(decision(Verdict.QUEUED, step))
        chain = self._chains.get(self.plan.group_of[step]) or self._chain(step)
        claim = self.claims[step] = Claim(step, chain)
        if take(claim):
            self._grant(claim)

    def _grant(self, claim: Claim) -> None:
        unit = claim.unit
        if type(unit) is Wants:  # a map's claim from its line: the next element gets it
            m = self.maps[unit]
            m.line = None
            if m.next < m.n:
                self._start_element(unit, m, claim)
                self._feed(unit, m)
            else:  # its elements all started meanwhile
                for granted in give(claim):
                    self._grant(granted)
            return
        self.state[unit] = GRANTED  # type: ignore[index]
        self.out.append(new(Decision, (Verdict.START, unit, None)))

    def _feed(self, step: str, m: MapState) -> None:
        """Claim slots for the map's next elements, until its claim has to wait in a line.

        The claim that waits is the map's, not one element's: whichever element is next
        when it is granted gets it, so elements always start in order.
        """
        chain = self._chain(step)
        while m.line is None and m.next < m.n:
            claim = Claim(Wants(step), chain)
            if take(claim):
                self._start_element(step, m, claim)
            else:
                m.line = claim

    def _start_element(self, step: str, m: MapState, claim: Claim) -> None:
        index = m.next
        m.next += 1
        m.state[index] = _E_GRANTED
        unit = claim.unit = (step, index)
        self.claims[unit] = claim
        self.out.append(new(Decision, (Verdict.START, unit, None)))

    def _release(self, unit: Unit) -> None:
        claim = self.claims.pop(unit, None)
        if claim is None or self.reason is not None:
            return  # (once the run is cancelled nothing starts again: the slots need not move)
        # only a cancel settles a unit that waits in a line, so what is released here is held
        assert claim.held == len(claim.limits), f"{unit} settled while it waited for its slots"
        for granted in give(claim):
            self._grant(granted)

    def _settle(self, step: str, status: Status, reason: str | None = None) -> None:
        self.state[step] = status
        self.unfinished -= 1
        self._release(step)
        if status is Status.SKIPPED:
            self.out.append(decision(Verdict.SKIP, step, reason))
        elif status is Status.CANCELLED:
            self.out.append(decision(Verdict.CANCEL, step, reason))
        if not self.unfinished:
            self.out.append(decision(Verdict.DONE))

    def _settle_element(self, unit: tuple[str, int], code: int, status: Status, reason: str | None = None) -> None:
        step = unit[0]
        m = self.maps[step]
        m.state[unit[1]] = code
        m.left -= 1
        if code == _E_FAILED:
            m.failed += 1
        claim = self.claims.get(unit)
        if claim is not None and self.reason is None and m.next < m.n and only(m.line, claim.limits):
            # nobody else waits for these slots: they go straight to the map's next element
            del self.claims[unit]
            index = m.next
            m.next = index + 1
            m.state[index] = _E_GRANTED
            following = claim.unit = (step, index)
            self.claims[following] = claim
            self.out.append(new(Decision, (Verdict.START, following, None)))
        else:
            self._release(unit)
        if status is Status.CANCELLED:
            self.out.append(decision(Verdict.CANCEL, unit, reason))
        if not m.left and self.reason is None:
            self.out.append(decision(Verdict.COLLECT, step))

    def _descendants(self, step: str, status: Status, reason: str) -> None:
        """Settle every live step that depends on ``step`` (they can never run)."""
        todo = deque(self.plan.children[step])
        while todo:
            child = todo.popleft()
            if self.state[child] is PENDING:
                self._settle(child, status, reason)
                todo.extend(self.plan.children[child])

    def _cancel(self, reason: str) -> None:
        self.reason = reason
        for step in self.plan.order:
            if self.state[step] in _LIVE:
                m = self.maps.get(step)
                if m is not None:  # its elements first, so a map is never final before them
                    for index in range(m.n):
                        if m.state[index] < _E_FINAL:
                            self._settle_element((step, index), _E_CANCELLED, Status.CANCELLED, reason)
                self._settle(step, Status.CANCELLED, reason)

    def _advance(self) -> None:
        """``sequential``: start the first step in order that has no final state, once it is ready."""
        order, state = self.plan.order, self.state
        while self.cursor < len(order):
            step = order[self.cursor]
            if state[step] not in _LIVE:
                self.cursor += 1
                continue
            if state[step] is PENDING and not self.waiting[step]:
                self._ready(step)
            return

    # -- invariants ---------------------------------------------------------------------
    def check(self) -> None:
        """Raise AssertionError if an invariant does not hold (for tests; O(size of the run))."""
        limits = [self.run_limit, *self.group_limits.values()]
        held: dict[int, int] = {id(limit): 0 for limit in limits}
        waiting_maps = [m.line for m in self.maps.values() if m.line is not None]
        for claim in [*self.claims.values(), *waiting_maps]:
            for limit in claim.limits[: claim.held]:
                held[id(limit)] += 1
        for limit in limits:
            assert 0 <= limit.free <= limit.size, "a limit's free slots are out of range"
            if self.reason is None:
                assert limit.size - limit.free == held[id(limit)], "slots held do not add up"
                assert not (limit.free and limit.line), "a slot is free while a claim waits in line"
        finals = 0
        for step, state in self.state.items():
            if state not in _LIVE:
                finals += 1
                assert step not in self.claims, f"settled step '{step}' still holds a claim"
            elif state is PENDING and not self.sequential and self.reason is None:
                assert self.waiting[step] > 0, f"step '{step}' is ready but PENDING"
            elif state in (GRANTED, RUNNING) and step not in self.maps and self.reason is None:
                assert self.claims[step].granted, f"step '{step}' runs without its slots"
        assert finals + self.unfinished == len(self.state), "unfinished does not count the live steps"
        for name, m in self.maps.items():
            assert m.left == sum(code < _E_FINAL for code in m.state), f"map '{name}' miscounts its elements left"
            assert m.failed == m.state.count(_E_FAILED), f"map '{name}' miscounts its failures"
            if self.reason is None:  # (a cancel settles the elements not started too)
                assert all(code == _E_WAIT for code in m.state[m.next :]), f"map '{name}' started one out of order"


_ELEMENT_FINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


__all__ = ["Decision", "MapState", "Plan", "Scheduler", "Unit", "Verdict"]
