"""``for`` loops as Agent Spec's one form of a loop: a branch back to an earlier node.

A loop exports when it is ``for NAME in range(N):`` and its body ends its iterations by
``break`` under one ``if`` whose test compares one name with strings (as an ``if`` block
that exports does, see ``agentspec_blocks``): ``if verdict == "good": break``. The loop
is laid out in the flow around it as

- the body's nodes up to that ``if``, one after another: WayFlow (26.x) runs the subflows
  of a ``ParallelFlowNode`` once per run, so one inside a loop would give its first
  round's values again (its finished sub-conversations are kept under another key than
  the one it clears), and the loop would never end;
- a ``BranchingNode`` on its test (the latch), whose breaking branches go on to what
  follows the loop, and whose other branch runs the rest of the body and goes back to
  the body's first node.

A name the body reads before it assigns it is carried: the node that reads it has a data
edge from what gives it before the loop and one from each node of the body that gives
it. Agent Spec runtimes (WayFlow among them) give an input the value its sources wrote
last, so the first round reads the value from before the loop and each other round the
one the round before made. A name after the loop reads the body's nodes that give it the
same way (and, for a carried name, the value from before the loop).

``range(N)`` has no Agent Spec form: N is kept in the latch's ``metadata.flowmagic.rounds``,
which flowmagic's import reads back; other runtimes run the loop until it breaks.
Anything else (a loop over a list or a step's value, a loop with no ``break`` or with a
test a ``BranchingNode`` cannot make, a loop inside a loop, a body that reads the loop's
variable) is refused with :class:`Refused`, which the exporter turns into an
``AgentSpecError`` naming the loop's step.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..flow.loops import CARRIED, MAX_ITERATIONS
from .agentspec_blocks import Refused
from .agentspec_graph import Component, Graph, Sources, Tail
from .agentspec_nodes import Node, Schema, typed

if TYPE_CHECKING:
    from ..flow.compiled import CompiledFlow, CompiledStep
    from ..flow.flow import Flow
    from ..flow.loops import Loop
    from .agentspec_blocks import Nesting
    from .agentspec_export import _Exporter

FORM = (
    "a loop exports as a branch back to its first step: write it 'for NAME in range(N):' with a body that "
    "ends its iterations by 'break' as the only line of an arm of one 'if' comparing one name with strings, "
    "e.g. 'if verdict == \"good\": break'"
)


@dataclass(frozen=True)
class LoopPlan:
    """How a loop that exports is laid out."""

    step: str  # the loop's step, 'for@3'
    rounds: int  # N of range(N): at most that many rounds here
    latch: str  # the condition of the body's 'if' that breaks, 'if@5'
    stops: tuple[int, ...]  # its arms that break
    goes_on: int  # its arm that goes on (the rest of the body)


def loop_plan(compiled: CompiledFlow, name: str) -> LoopPlan:
    """The plan of loop ``name``; :class:`Refused` when it has no Agent Spec form."""
    loop = compiled.loops[name]
    rounds = _rounds(compiled.steps[name].source)
    if loop.body.loops:
        raise Refused(f"a 'for' loop has no Agent Spec form with a loop inside it; {FORM}")
    conds = list(dict.fromkeys(cond for cond, _ in loop.breaks))
    if not conds:
        raise Refused(f"a 'for' loop has no Agent Spec form without a 'break' (it would never stop); {FORM}")
    if len(conds) > 1:
        raise Refused(f"a 'for' loop has no Agent Spec form with 'break' in {len(conds)} 'if' blocks; {FORM}")
    latch = conds[0]
    arms = loop.body.arms[latch]
    stops = tuple(arm for cond, arm in loop.breaks if cond == latch)
    for arm in stops:
        label, steps = arms[arm]
        if steps:
            raise Refused(
                f"its arm '{label}' runs steps before 'break'; the BranchingNode's branch that leaves the loop "
                f"goes straight on: move them after the loop; {FORM}"
            )
    going_on = [i for i in range(len(arms)) if i not in stops]
    if len(going_on) != 1:
        raise Refused(
            f"its 'if' that breaks goes on by {len(going_on)} arms; the loop goes back by one: "
            f"make the other choices an 'if' inside its 'else'; {FORM}"
        )
    return LoopPlan(name, rounds, latch, stops, going_on[0])


def _rounds(source: str) -> int:
    """The rounds of ``for NAME in range(...)``, its bounds whole numbers written in the cell."""
    try:
        (node,) = ast.parse(f"{source.strip()}:\n    pass").body
    except (SyntaxError, ValueError):  # pragma: no cover - the line was parsed once already
        raise Refused(f"a 'for' loop has no Agent Spec form here; {FORM}") from None
    assert isinstance(node, ast.For)
    bound = node.iter
    if not (isinstance(bound, ast.Call) and isinstance(bound.func, ast.Name) and bound.func.id == "range"):
        why = f"over '{ast.unparse(bound)}' (a BranchingNode goes back until a test stops it)"
        raise Refused(f"a 'for' loop has no Agent Spec form {why}; {FORM}")
    numbers = [a.value for a in bound.args if isinstance(a, ast.Constant) and type(a.value) is int]
    if bound.keywords or len(numbers) != len(bound.args) or not 1 <= len(numbers) <= 3 or 0 in numbers[2:]:
        why = f"over '{ast.unparse(bound)}': its bounds must be whole numbers written in the cell"
        raise Refused(f"a 'for' loop has no Agent Spec form {why}; {FORM}")
    rounds = len(range(*numbers))
    if not 1 <= rounds <= MAX_ITERATIONS:
        why = f"over '{ast.unparse(bound)}', of {rounds} rounds (a loop runs from 1 to {MAX_ITERATIONS})"
        raise Refused(f"a 'for' loop has no Agent Spec form {why}; {FORM}")
    return rounds


def loop_node(compiled: CompiledFlow, name: str, body: _Exporter) -> tuple[Node, list[str]]:
    """The node of loop ``name`` (it reads what its body, exported by ``body``, reads from outside), and the
    names after it that are no outputs of the flow (see :func:`given_sometimes`); :class:`Refused` when it
    has no Agent Spec form."""
    loop, code = compiled.loops[name], compiled.code[name]
    reads = body.reads(list(body.flow.steps))
    if loop.target in reads:
        raise Refused(f"its body reads the loop's variable '{loop.target}', which a branch back does not count; {FORM}")
    for value in reads:
        if outer_value(code, value) in compiled.groups and outer_value(code, value) not in compiled.steps:
            why = f"its body reads group '{outer_value(code, value)}' as a dict; Agent Spec passes single values"
            raise Refused(why + ": read its members")
    partial: list[str] = []
    for given in given_sometimes(loop, body.nesting):  # like a step inside an arm: no output of the flow
        pick = next(p for p, (lp, n) in compiled.picks.items() if lp == name and n == given)
        readers = [s for s, step in compiled.steps.items() if pick in step.deps]
        if readers:
            raise Refused(
                f"step '{readers[0]}' reads '{given}' after it, which its body gives only past its 'break' "
                "or in an arm of an 'if': a loop that stops in its first round leaves it no value "
                "(an Agent Spec flow reads only what every way to the node gives); assign it before the 'if' "
                "that breaks, in every arm"
            )
        partial.append(pick)
    node = Node("loop", [(v, body.schemas.get(v, {})) for v in reads], {v: outer_value(code, v) for v in reads})
    return node, partial


def pick_schemas(compiled: CompiledFlow, bodies: dict[str, _Exporter]) -> dict[str, Schema]:
    """The type of each name after a loop that its body types."""
    found: dict[str, Schema] = {}
    for pick, (name, given) in compiled.picks.items():
        schema = bodies[name].schemas.get(compiled.loops[name].outputs[given][-1], {})
        if typed(schema):
            found[pick] = schema
    return found


def given_sometimes(loop: Loop, nesting: Nesting) -> list[str]:
    """The names the body gives only past its ``break`` or in an arm of an ``if``, and does not carry: after
    a loop that stops in its first round they have no value."""
    return [n for n, units in loop.outputs.items() if n not in loop.carried and units[-1] in nesting.arm_step]


def body_flow(flow: Flow, name: str) -> Flow:
    """The body of loop ``name`` as a flow of its own (its steps, the cell's text and settings)."""
    body = flow.compiled.loops[name].body
    copy = flow.model_copy(update={"steps": body.steps, "groups": body.groups})
    copy._compiled = body
    copy._shape = None
    copy._session = None
    return copy


def outer_value(code: CompiledStep, value: str) -> str:
    """What the loop's step reads for a value its body reads from outside (the first round's, for a carried one)."""
    return code.unit_of(value.removesuffix(CARRIED))


def emit_loop(
    outer: _Exporter, body: _Exporter, plan: LoopPlan, tails: list[Tail], producer: dict[str, Sources], graph: Graph
) -> list[Tail]:
    """Lay out the loop of ``plan`` after ``tails`` (see the module's docstring); where the control flow leaves it.
    ``producer`` learns the nodes that give the names after the loop."""
    compiled = outer.flow.compiled
    loop, code = compiled.loops[plan.step], compiled.code[plan.step]
    inner = {v: producer[outer_value(code, v)] for v in body.reads(list(body.flow.steps))}
    first, read_from = len(graph.nodes), len(graph.reads)
    saved, graph.made = graph.made, {}
    try:
        level, deps = body.nesting.level(body.flow.steps, None)
        before = [u for u in level if u != plan.latch]
        tails = body.emit(body.staged(before, deps), tails, inner, graph)
        found = body.blocks[plan.latch]
        latch = body.branching(found, tails, inner, graph)
        latch["metadata"] = {"flowmagic": {"rounds": plan.rounds}}
        arm = found.arms[plan.goes_on]
        level, deps = body.nesting.level(arm.steps, plan.latch)
        back = body.emit(body.staged(level, deps), [(latch, arm.branch)], inner, graph)
        body.link(graph, graph.nodes[first], back)
        made = graph.made
    finally:
        graph.made = saved
    # a carried name: what the round before made, from each node of the body that gives it
    for value, node, title in graph.reads[read_from:]:
        if value.endswith(CARRIED):
            units = loop.outputs.get(value.removesuffix(CARRIED), ())
            for source, output in _unique([s for u in units for s in made.get(u, [])]):
                graph.data.append(body.data_edge(source, output, node, title))
    for pick, (step, name) in compiled.picks.items():
        if step == plan.step:
            first_round = producer[outer_value(code, name)] if name in loop.carried else []
            sources = [*first_round, *(s for u in loop.outputs.get(name, ()) for s in made.get(u, []))]
            outer.make(graph, producer, pick, _unique(sources))
    return [(latch, found.arms[i].branch) for i in plan.stops]


def _unique(sources: Sources) -> Sources:
    found: dict[tuple[str, str], tuple[Component, str]] = {}
    for node, output in sources:
        found.setdefault((node["id"], output), (node, output))
    return list(found.values())


__all__ = ["FORM", "LoopPlan", "body_flow", "emit_loop", "given_sometimes", "loop_node", "loop_plan", "pick_schemas"]
